import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import * as fs from "fs";
import * as path from "path";
import { ConfigError, PROJECT, Settings } from "./config";
import { StackSecrets, readStackConfig } from "./config/secrets";
import { loadAlicloud } from "./components/alicloud";
import {
    CanaryIngress,
    CanaryProviders,
    SlbConfig,
    TcpEchoCanary,
    TcpEchoCanaryArgs,
} from "./components";
import { INGRESS_GATEWAY_NAMESPACE, VERSIONS } from "./components/model";
import {
    ExistingGateway,
    KubeApi,
    KubeconfigError,
    PreflightError,
    checkTarget,
    kubeApiFromKubeconfig,
    reusedClbProblems,
} from "./preflight";
import { checkRolloutLock } from "./preflight/rolloutLock";

// The stack's config as the engine hands it over lives in config/secrets.ts; the tests and tools import it here.
export { SECRET_CAPABLE_KEYS, SECRET_KEYS, readStackConfig } from "./config/secrets";
export type { StackSecrets } from "./config/secrets";

/** Whether the stack talks to the alicloud API: to create its CLB, or to read the tags of the one it reuses. */
export function needsAlicloud(settings: Settings): boolean {
    return (
        settings.target === "asm" &&
        !settings.asm.useExistingGateway &&
        (settings.slb.mode === "create" || settings.slb.mode === "reuse")
    );
}

/** Builds the providers for the stack's target; only `asm` with a created or reused CLB gets an alicloud provider. */
export function makeProviders(settings: Settings, secrets: StackSecrets): CanaryProviders {
    switch (settings.target) {
        case "render": {
            const render = new k8s.Provider("render", {
                renderYamlToDirectory: settings.renderDir,
            });
            return { dataPlane: render, controlPlane: render };
        }
        case "local": {
            const file = path.resolve(settings.localKubeconfig);
            if (!fs.existsSync(file)) {
                throw new ConfigError([
                    {
                        key: "localKubeconfig",
                        message: `no kubeconfig at ${file}; start the local cluster with \`npm run cluster:up\``,
                    },
                ]);
            }
            const local = new k8s.Provider("local", {
                kubeconfig: pulumi.secret(fs.readFileSync(file, "utf8")),
            });
            return { dataPlane: local, controlPlane: local };
        }
        case "asm":
            return {
                dataPlane: new k8s.Provider("ack", { kubeconfig: secrets.dataPlaneKubeconfig! }),
                controlPlane: new k8s.Provider("asm", {
                    kubeconfig: secrets.controlPlaneKubeconfig!,
                }),
                alicloud: needsAlicloud(settings)
                    ? new (loadAlicloud().Provider)("alicloud", {})
                    : undefined,
            };
    }
}

/** What `pulumi stack output` shows; the rollout tools read `v2Weight`, `gatewayPort` and `ingressAddress`. */
export interface StackOutputs {
    v2Weight: number;
    weights: Record<string, number>;
    gatewayPort: number;
    namespace: string;
    images: Record<string, string> | pulumi.Output<Record<string, string>>;
    virtualService: pulumi.Output<string>;
    /** The gateway's address, absent until known (ASM reports it in the IstioGateway status once the CLB has one). */
    ingressAddress: pulumi.Output<string | undefined>;
    /** Where the address comes from, on targets where it is known only after the cloud has made the CLB. */
    ingressAddressHint?: string;
    ncCommand: pulumi.Output<string | undefined>;
    gatewayName: string;
    slbMode: string;
    slbId: pulumi.Output<string>;
}

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

/** The API server a kubeconfig key points at; a bad kubeconfig, or a server that does not answer, is a problem of that key. */
function kubeApi(text: string, key: string): KubeApi {
    let api: KubeApi;
    try {
        api = kubeApiFromKubeconfig(text);
    } catch (err) {
        if (err instanceof KubeconfigError) throw new ConfigError([{ key, message: err.message }]);
        throw err;
    }
    return {
        server: api.server,
        get: (apiPath) =>
            api.get(apiPath).catch((err: Error) => {
                throw new ConfigError([{ key, message: err.message }]);
            }),
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
    let apis: { dataPlane: KubeApi; controlPlane: KubeApi };
    if (settings.target === "local") {
        const local = kubeApi(
            fs.readFileSync(path.resolve(settings.localKubeconfig), "utf8"),
            "localKubeconfig",
        );
        apis = { dataPlane: local, controlPlane: local };
    } else {
        // The decrypted values, in memory only: the engine hands secrets to the program in plain text.
        const raw = (key: string) => pulumi.runtime.getConfig(`${PROJECT}:${key}`) ?? "";
        apis = {
            dataPlane: kubeApi(raw("dataPlaneKubeconfig"), "dataPlaneKubeconfig"),
            controlPlane: kubeApi(raw("controlPlaneKubeconfig"), "controlPlaneKubeconfig"),
        };
    }
    const [facts, clbProblems] = await Promise.all([
        checkTarget(
            {
                namespace: settings.namespace,
                gatewayName: settings.asm.gatewayName,
                useExistingGateway: settings.asm.useExistingGateway,
                gatewayPort: settings.gatewayPort,
                istioApiVersion: settings.istioApiVersion,
                owner,
            },
            apis,
        ).then(
            (found) => ({ found, problems: [] as PreflightError["problems"] }),
            (err) => {
                if (err instanceof PreflightError)
                    return { found: undefined, problems: err.problems };
                throw err;
            },
        ),
        reusedClbTagProblems(settings, providers),
    ]);
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

/** Maps the stack's settings to the component's arguments. */
export function canaryArgs(
    settings: Settings,
    providers: CanaryProviders,
    facts: TargetFacts,
): TcpEchoCanaryArgs {
    return {
        namespace: settings.namespace,
        images: settings.images,
        secretImages: settings.secretImages ?? false,
        replicas: settings.replicas,
        servicePort: settings.servicePort,
        gatewayPort: settings.gatewayPort,
        hosts: settings.hosts,
        weights: settings.weights,
        istioApiVersion: settings.istioApiVersion,
        ingress: canaryIngress(settings, providers, facts),
        providers,
        owner: facts.owner,
    };
}

function canaryIngress(
    settings: Settings,
    providers: CanaryProviders,
    facts: TargetFacts,
): CanaryIngress {
    const name = settings.asm.gatewayName;
    if (settings.asm.useExistingGateway) {
        if (!facts.existingGateway)
            throw new Error("asm.useExistingGateway needs the preflight's reading of the gateway");
        return { kind: "existing", name, ...facts.existingGateway };
    }
    return {
        kind: "owned",
        name,
        clusterIds: settings.asm.clusterIds,
        replicas: settings.asm.gatewayReplicas,
        slb: slbConfig(settings, providers),
    };
}

function slbConfig(settings: Settings, providers: CanaryProviders): SlbConfig {
    const { slb } = settings;
    switch (slb.mode) {
        case "create":
            if (!providers.alicloud)
                throw new Error('slb.mode "create" needs an alicloud provider');
            return {
                mode: "create",
                addressType: slb.addressType,
                vswitchId: slb.vswitchId,
                provider: providers.alicloud,
            };
        case "reuse":
            return {
                mode: "reuse",
                id: slb.id!,
                acknowledgeListenerOverride: slb.acknowledgeListenerOverride,
                otherListenerPorts: slb.otherListenerPorts,
            };
        case "managed":
            return { mode: "managed", addressType: slb.addressType, vswitchId: slb.vswitchId };
    }
}

export function defineStack(
    settings: Settings,
    providers: CanaryProviders,
    facts: TargetFacts,
): StackOutputs {
    const canary = new TcpEchoCanary("tcp-echo", canaryArgs(settings, providers, facts));
    // Off the cloud nothing but the local data plane serves the gateway; it answers on loopback.
    const address = canary.ingressAddress.apply(
        (a) => a ?? (settings.target === "asm" ? undefined : LOCAL_DATA_PLANE_ADDRESS),
    );
    const serviceName = `istio-${settings.asm.gatewayName}`;
    const images: Record<string, string> = {
        [VERSIONS.stable.subset]: settings.images.stable,
        [VERSIONS.canary.subset]: settings.images.canary,
    };
    return {
        v2Weight: settings.v2Weight,
        weights: {
            [VERSIONS.stable.subset]: settings.weights.stable,
            [VERSIONS.canary.subset]: settings.weights.canary,
        },
        gatewayPort: settings.gatewayPort,
        namespace: settings.namespace,
        images: settings.secretImages ? pulumi.secret<Record<string, string>>(images) : images,
        virtualService: pulumi.interpolate`${settings.namespace}/${canary.routing.virtualService.metadata.name}`,
        ingressAddress: address,
        ingressAddressHint:
            settings.target === "asm" &&
            (settings.asm.useExistingGateway || settings.slb.mode !== "create")
                ? `ASM reports the address in the status of IstioGateway ${INGRESS_GATEWAY_NAMESPACE}/${settings.asm.gatewayName} once its CLB has one; \`pulumi refresh\` then sets ingressAddress. On the ACK cluster: kubectl -n ${INGRESS_GATEWAY_NAMESPACE} get svc ${serviceName} -o jsonpath='{.status.loadBalancer.ingress[0].ip}'`
                : undefined,
        ncCommand: address.apply((a) =>
            a
                ? `for i in $(seq 1 10); do echo hello | nc ${a} ${settings.gatewayPort}; done`
                : undefined,
        ),
        gatewayName: settings.asm.gatewayName,
        slbMode: settings.asm.useExistingGateway ? "existing-gateway" : settings.slb.mode,
        slbId: canary.loadBalancerId.apply(
            (id) =>
                id ??
                (settings.asm.useExistingGateway
                    ? "(the existing gateway's own)"
                    : "(chosen by the cluster's cloud controller)"),
        ),
    };
}

/** The whole program, as index.ts runs it: settings, then the checks against the target, then the resources. */
export async function main(): Promise<StackOutputs> {
    // Config is validated before the first resource is registered, so a bad value changes nothing.
    const { settings, secrets } = readStackConfig();
    // Before the providers, the first resources: an update is refused while someone else's rollout holds the stack.
    await checkRolloutLock(pulumi.getStack());
    const providers = makeProviders(settings, secrets);
    const facts = await checkStackTarget(settings, providers);
    return defineStack(settings, providers, facts);
}
