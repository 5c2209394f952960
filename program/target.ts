/**
 * The program's side of the checks against the live target (`preflight/` holds the checks themselves): the API
 * servers the stack's kubeconfigs point at, the facts the components need, and the reused CLB's tags through the
 * alicloud provider. Every refusal is a problem of the config key that resolves it.
 */
import * as pulumi from "@pulumi/pulumi";
import * as fs from "fs";
import * as path from "path";
import { ConfigError, PROJECT, Settings } from "../config";
import { loadAlicloud } from "../components/alicloud";
import { CanaryProviders } from "../components";
import {
    ExistingGateway,
    KubeApi,
    KubeconfigError,
    Plane,
    PreflightError,
    PreflightInput,
    PREVIEW_BEFORE_UPDATE_ENV,
    checkAccess,
    checkTarget,
    kubeApiFromKubeconfig,
    reusedClbProblems,
} from "../preflight";

/** The address off the cloud: the local mesh's gateway Service answers on loopback (see scripts/mesh.sh). */
export const LOCAL_DATA_PLANE_ADDRESS = "127.0.0.1";

/** What the checks against the live target found (see `preflight/`). */
export interface TargetFacts {
    /** This stack's stamp on every object it creates. */
    owner: string;
    /** The gateway the stack routes through when `asm.useExistingGateway` is true. */
    existingGateway?: ExistingGateway;
}

/** `<organization>/<project>/<stack>`: tells this stack's objects from anyone else's. */
export function stackOwner(): string {
    return `${pulumi.getOrganization()}/${pulumi.getProject()}/${pulumi.getStack()}`;
}

/** A client of the API server a kubeconfig key points at; a kubeconfig it cannot use is a problem of that key. */
function plane(text: string, key: string): Plane {
    try {
        return { api: kubeApiFromKubeconfig(text), key };
    } catch (err) {
        if (err instanceof KubeconfigError) throw new ConfigError([{ key, message: err.message }]);
        throw err;
    }
}

/** The same client, for the checks after the access checks: a server that stops answering is still its key's problem. */
function keyed({ api, key }: Plane): KubeApi {
    const refuse = (err: Error) => {
        throw new ConfigError([{ key, message: err.message }]);
    };
    return {
        server: api.server,
        get: (apiPath) => api.get(apiPath).catch(refuse),
        post: api.post && ((apiPath, body) => api.post!(apiPath, body).catch(refuse)),
    };
}

/**
 * Checks the live target before any resource is registered (see `preflight/`): a refusal leaves everything as it
 * was. The `render` target has no live target; its objects are only written to files.
 */
export async function checkStackTarget(
    settings: Settings,
    providers: CanaryProviders,
): Promise<TargetFacts> {
    const owner = stackOwner();
    if (settings.target === "render") {
        // Nothing exists to take over; an existing gateway can only be described, not read.
        const existingGateway = settings.asm.useExistingGateway
            ? { podSelector: { istio: settings.asm.gatewayName } }
            : undefined;
        return { owner, existingGateway };
    }
    let planes: { dataPlane: Plane; controlPlane: Plane };
    if (settings.target === "local") {
        const local = plane(
            fs.readFileSync(path.resolve(settings.localKubeconfig), "utf8"),
            "localKubeconfig",
        );
        planes = { dataPlane: local, controlPlane: local };
    } else {
        // The decrypted values, in memory only: the engine hands secrets to the program in plain text.
        const raw = (key: string) => pulumi.runtime.getConfig(`${PROJECT}:${key}`) ?? "";
        planes = {
            dataPlane: plane(raw("dataPlaneKubeconfig"), "dataPlaneKubeconfig"),
            controlPlane: plane(raw("controlPlaneKubeconfig"), "controlPlaneKubeconfig"),
        };
    }
    const apis = { dataPlane: keyed(planes.dataPlane), controlPlane: keyed(planes.controlPlane) };
    const stack: PreflightInput = {
        namespace: settings.namespace,
        gatewayName: settings.asm.gatewayName,
        useExistingGateway: settings.asm.useExistingGateway,
        gatewayPort: settings.gatewayPort,
        istioApiVersion: settings.istioApiVersion,
        owner,
    };
    // The CLB's tags are read beside the access checks, so that their problems are reported together.
    const [access, clbProblems] = await Promise.all([
        checkAccess({
            target: settings.target,
            writes:
                pulumi.runtime.isDryRun() && process.env[PREVIEW_BEFORE_UPDATE_ENV] !== "1"
                    ? "warn"
                    : "refuse",
            stack,
            ...planes,
        }),
        reusedClbTagProblems(settings, providers),
    ]);
    for (const w of access.warnings) pulumi.log.warn(`${PROJECT}:${w.key}: ${w.message}`);
    if (access.problems.length > 0) throw new PreflightError([...access.problems, ...clbProblems]);
    const facts = await checkTarget(stack, apis).then(
        (found) => ({ found, problems: [] as PreflightError["problems"] }),
        (err) => {
            if (err instanceof PreflightError) return { found: undefined, problems: err.problems };
            throw err;
        },
    );
    const problems = [...facts.problems, ...clbProblems];
    if (problems.length > 0) throw new PreflightError(problems);
    return { owner, existingGateway: facts.found?.existingGateway };
}

/** Where the stack has the alicloud provider, a reused CLB's tags are read and judged as the cloud controller would. */
export async function reusedClbTagProblems(settings: Settings, providers: CanaryProviders) {
    if (settings.slb.mode !== "reuse" || !providers.alicloud || settings.asm.useExistingGateway)
        return [];
    const id = settings.slb.id!;
    const found = await loadAlicloud()
        .slb.getApplicationLoadBalancers(
            { ids: [id] },
            { provider: providers.alicloud, async: true },
        )
        .catch((err: Error) => {
            // A refusal naming the key (fast, no stack trace): usually credentials or region, not the id itself.
            throw new ConfigError([
                {
                    key: "slb.id",
                    message: `cannot read CLB ${id} through the Alibaba Cloud API (credentials ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET, region alicloud:region): ${err.message}`,
                },
            ]);
        });
    return reusedClbProblems(id, found.balancers.find((b) => b.id === id)?.tags);
}
