import * as alicloud from "@pulumi/alicloud";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import * as fs from "fs";
import * as path from "path";
import { ConfigError, ConfigProblem, PROJECT, Settings, parseSettings } from "./config";
import { CanaryProviders, TcpEchoCanary } from "./components";
import { INGRESS_GATEWAY_LABEL, INGRESS_GATEWAY_NAMESPACE, VERSIONS } from "./components/model";

/** Secret config, read only through Pulumi's secret channel. */
export interface StackSecrets {
    /** kubeconfig of the ACK cluster (data plane). */
    dataPlaneKubeconfig?: pulumi.Output<string>;
    /** kubeconfig of the ASM instance (control plane); see README for the intranet-endpoint caveat. */
    controlPlaneKubeconfig?: pulumi.Output<string>;
    /** An image key is stored as a secret (e.g. a private registry path): images stay secret in the state too. */
    secretImages?: boolean;
}

export const SECRET_KEYS = ["dataPlaneKubeconfig", "controlPlaneKubeconfig"] as const;
/** Settings that may be stored as secrets; the program keeps them secret in every resource and output. */
export const SECRET_CAPABLE_KEYS = ["image", "imageV1", "imageV2"] as const;

// Internal to the SDK but stable for years; it is how `Config.get` decides to warn about secrets.
const isConfigSecret: (key: string) => boolean = require("@pulumi/pulumi/runtime/config").isConfigSecret;

/** Reads and validates the stack config; throws a {@link ConfigError} naming each bad key before any resource exists. */
export function readStackConfig(): { settings: Settings; secrets: StackSecrets } {
    const config = new pulumi.Config(PROJECT);
    const secretKeys = new Set<string>(SECRET_KEYS);
    // Every problem at once, settings and secrets alike, so one round of edits fixes them all.
    const problems: ConfigProblem[] = [];
    let settings: Settings | undefined;
    try {
        settings = parseSettings((key) => (secretKeys.has(key) ? undefined : config.get(key)));
    } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        problems.push(...err.problems);
    }
    const target = settings?.target ?? config.get("target") ?? "asm";
    const secrets: StackSecrets = {};
    for (const key of SECRET_KEYS) {
        const fullKey = `${PROJECT}:${key}`;
        // Read raw: Config.get on a secret key would log a warning for doing exactly this check.
        const present = pulumi.runtime.getConfig(fullKey) !== undefined;
        if (present && !isConfigSecret(fullKey)) {
            problems.push({ key, message: `holds a kubeconfig in plain text; set it with \`pulumi config set --secret ${key} < file\`` });
        } else if (present) {
            secrets[key] = config.requireSecret(key);
        } else if (target === "asm") {
            problems.push({ key, message: 'is required when target is "asm": a kubeconfig, stored with `pulumi config set --secret`' });
        }
    }
    secrets.secretImages = SECRET_CAPABLE_KEYS.some((key) => isConfigSecret(`${PROJECT}:${key}`));
    // Any other setting stored as a secret would be written in plain text into the objects and outputs in the
    // state (a shared bucket, for a team): refuse it rather than leak it.
    const capable = new Set<string>([...SECRET_KEYS, ...SECRET_CAPABLE_KEYS]);
    for (const fullKey of Object.keys(pulumi.runtime.allConfig())) {
        const key = fullKey.startsWith(`${PROJECT}:`) ? fullKey.slice(PROJECT.length + 1) : undefined;
        if (key && !capable.has(key) && isConfigSecret(fullKey)) {
            problems.push({ key, message: "is stored as a secret, but its value is written in plain text into Kubernetes objects and stack outputs; set it without --secret (only kubeconfigs and images can be kept secret)" });
        }
    }
    if (problems.length > 0 || !settings) throw new ConfigError(problems);
    return { settings, secrets };
}

/** Builds the providers for the stack's target; only `asm` with `slb.mode: create` gets an alicloud provider. */
export function makeProviders(settings: Settings, secrets: StackSecrets): CanaryProviders {
    switch (settings.target) {
        case "render": {
            const render = new k8s.Provider("render", { renderYamlToDirectory: settings.renderDir });
            return { dataPlane: render, controlPlane: render };
        }
        case "local": {
            const file = path.resolve(settings.localKubeconfig);
            if (!fs.existsSync(file)) {
                throw new ConfigError([{ key: "localKubeconfig", message: `no kubeconfig at ${file}; start the local cluster with \`npm run cluster:up\`` }]);
            }
            const local = new k8s.Provider("local", { kubeconfig: pulumi.secret(fs.readFileSync(file, "utf8")) });
            return { dataPlane: local, controlPlane: local };
        }
        case "asm":
            return {
                dataPlane: new k8s.Provider("ack", { kubeconfig: secrets.dataPlaneKubeconfig! }),
                controlPlane: new k8s.Provider("asm", { kubeconfig: secrets.controlPlaneKubeconfig! }),
                alicloud: settings.slb.mode === "create" ? new alicloud.Provider("alicloud", {}) : undefined,
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
    ingressAddress: pulumi.Output<string>;
    ncCommand: pulumi.Output<string>;
    slbMode: string;
    slbId: pulumi.Output<string>;
}

const PENDING_ADDRESS = `$(kubectl -n ${INGRESS_GATEWAY_NAMESPACE} get svc istio-${INGRESS_GATEWAY_LABEL} -o jsonpath='{.status.loadBalancer.ingress[0].ip}')`;

/** Where `npm run dataplane` listens for the `local` and `render` targets. */
export const LOCAL_DATA_PLANE_ADDRESS = "127.0.0.1";

export function defineStack(settings: Settings, secrets: StackSecrets): StackOutputs {
    const providers = makeProviders(settings, secrets);
    const canary = new TcpEchoCanary("tcp-echo", { settings, providers, secretImages: secrets.secretImages });
    // Where the CLB is not this stack's, its address is known only once the cloud controller has run.
    // On the local cluster nothing serves the gateway; `npm run dataplane` answers on loopback instead.
    const images: Record<string, string> = { [VERSIONS.stable.subset]: settings.images.stable, [VERSIONS.canary.subset]: settings.images.canary };
    const address = canary.ingress.address.apply((a) => a ?? (settings.target === "asm" ? PENDING_ADDRESS : LOCAL_DATA_PLANE_ADDRESS));
    return {
        v2Weight: settings.v2Weight,
        weights: { [VERSIONS.stable.subset]: settings.weights.stable, [VERSIONS.canary.subset]: settings.weights.canary },
        gatewayPort: settings.gatewayPort,
        namespace: settings.namespace,
        images: secrets.secretImages ? pulumi.secret<Record<string, string>>(images) : images,
        virtualService: pulumi.interpolate`${settings.namespace}/${canary.routing.virtualService.metadata.name}`,
        ingressAddress: address,
        ncCommand: pulumi.interpolate`for i in $(seq 1 10); do echo hello | nc ${address} ${settings.gatewayPort}; done`,
        slbMode: settings.slb.mode,
        slbId: canary.ingress.loadBalancerId.apply((id) => id ?? "(chosen by the cluster's cloud controller)"),
    };
}
