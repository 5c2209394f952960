import {
    CLB_CHARGE_TYPE,
    DEFAULT_GATEWAY_PORT,
    DEFAULT_IMAGE,
    DEFAULT_INGRESS_GATEWAY_NAME,
    DEFAULT_ISTIO_API_VERSION,
    DEFAULT_SERVICE_PORT,
    INGRESS_GATEWAY_NAMESPACE,
    ISTIO_API_VERSIONS,
    IstioApiVersion,
    Track,
} from "./components/model";
import { MAX_WEIGHT, MIN_WEIGHT, WeightSplit, splitWeights } from "./components/weights";

export const PROJECT = "asm-tcp-shift";

/** Where the stack's resources go. */
export const TARGETS = ["asm", "local", "render"] as const;
export type Target = (typeof TARGETS)[number];

/** How the ASM ingress gateway gets its Classic Load Balancer. */
export const SLB_MODES = ["create", "reuse", "managed"] as const;
export type SlbMode = (typeof SLB_MODES)[number];

export const SLB_ADDRESS_TYPES = ["internet", "intranet"] as const;
export type SlbAddressType = (typeof SLB_ADDRESS_TYPES)[number];

/** Validated settings of one stack: everything the components need except secrets. */
export interface Settings {
    readonly target: Target;
    readonly namespace: string;
    readonly v2Weight: number;
    readonly weights: WeightSplit;
    readonly images: Readonly<Record<Track, string>>;
    readonly replicas: number;
    readonly servicePort: number;
    readonly gatewayPort: number;
    readonly hosts: readonly string[];
    /** Version of networking.istio.io the mesh serves for Gateway, DestinationRule and VirtualService. */
    readonly istioApiVersion: IstioApiVersion;
    readonly slb: SlbSettings;
    readonly asm: AsmSettings;
    readonly renderDir: string;
    readonly localKubeconfig: string;
}

export interface SlbSettings {
    readonly mode: SlbMode;
    /** Existing CLB id, only in `reuse` mode. */
    readonly id?: string;
    readonly addressType: SlbAddressType;
    /** vSwitch (in the cluster's VPC) of an intranet CLB; required for an intranet CLB the stack creates. */
    readonly vswitchId?: string;
    /** The user's explicit "yes" to the cloud controller rewriting listeners of a reused CLB. */
    readonly acknowledgeListenerOverride: boolean;
    /** Frontend ports other Services already use on the reused CLB; ours must not collide. */
    readonly otherListenerPorts: readonly number[];
}

export interface AsmSettings {
    readonly clusterIds: readonly string[];
    readonly gatewayReplicas: number;
    /** Name of the IstioGateway in istio-system (its Service is `istio-<name>`). */
    readonly gatewayName: string;
    /** Route through an IstioGateway the stack does not own: it is checked, never changed or deleted. */
    readonly useExistingGateway: boolean;
}

/** Reads one raw config value as the CLI stores it (objects and arrays as JSON text). */
export type RawConfigReader = (key: string) => string | undefined;

export interface ConfigProblem {
    readonly key: string;
    readonly message: string;
}

/** Every problem found in the stack's config, reported together so one edit fixes them all. */
export class ConfigError extends Error {
    constructor(public readonly problems: readonly ConfigProblem[]) {
        super(
            `Invalid stack configuration (nothing was changed):\n` +
                problems.map((p) => `  - ${PROJECT}:${p.key}: ${p.message}`).join("\n"),
        );
        this.name = "ConfigError";
    }
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const SLB_ID = /^lb-[a-z0-9]{8,32}$/;
const VSWITCH_ID = /^vsw-[a-z0-9]{8,32}$/;
/** The IstioGateway's Service is `istio-<name>`, a DNS label of at most 63 characters. */
const GATEWAY_NAME = /^[a-z0-9]([-a-z0-9]{0,55}[a-z0-9])?$/;
const ACK_CLUSTER_ID = /^c[a-z0-9]{8,40}$/;
const HOST = /^(\*|(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*|[a-z0-9-]+\/.+)$/;

/**
 * An image reference counts as pinned with an explicit tag other than `latest`, or a sha256 digest.
 * A registry port (`host:5000/repo`) is not a tag.
 */
export function imagePinProblem(image: string): string | undefined {
    const [name, digest] = image.split("@", 2);
    if (digest !== undefined) {
        return /^sha256:[a-f0-9]{64}$/.test(digest) ? undefined : `digest "${digest}" is not sha256:<64 hex>`;
    }
    const lastSegment = name.slice(name.lastIndexOf("/") + 1);
    const colon = lastSegment.indexOf(":");
    if (colon < 0) return "has no tag or digest; pin it as repo:tag or repo@sha256:<digest>";
    const tag = lastSegment.slice(colon + 1);
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) return `tag "${tag}" is not a valid image tag`;
    if (tag === "latest") return 'uses the moving tag "latest"; pin a version tag or a sha256 digest';
    if (!/^[a-z0-9]+([._\-/:][a-z0-9]+)*$/.test(name.slice(0, name.length - tag.length - 1))) {
        return "repository name is not a valid image reference";
    }
    return undefined;
}

/** Parses and validates the stack config. Throws {@link ConfigError} listing every bad key. */
export function parseSettings(read: RawConfigReader): Settings {
    const problems: ConfigProblem[] = [];
    const fail = (key: string, message: string): undefined => {
        problems.push({ key, message });
        return undefined;
    };

    const integer = (key: string, raw: unknown, min: number, max: number, meaning = ""): number | undefined => {
        const value = typeof raw === "string" && /^-?\d+$/.test(raw.trim()) ? Number(raw) : raw;
        if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
            return fail(key, `must be an integer from ${min} to ${max}${meaning}; got ${JSON.stringify(raw)}`);
        }
        return value;
    };
    const oneOf = <T extends string>(key: string, raw: unknown, allowed: readonly T[], fallback: T): T | undefined => {
        if (raw === undefined) return fallback;
        if (typeof raw !== "string" || !(allowed as readonly string[]).includes(raw)) {
            return fail(key, `must be one of ${allowed.map((a) => `"${a}"`).join(", ")}; got ${JSON.stringify(raw)}`);
        }
        return raw as T;
    };
    const object = (key: string): Record<string, unknown> => {
        const raw = read(key);
        if (raw === undefined) return {};
        try {
            const parsed: unknown = JSON.parse(raw);
            if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
        } catch {
            /* reported below */
        }
        fail(key, `must be an object (set it with --path, e.g. ${key}.mode); got ${JSON.stringify(raw)}`);
        return {};
    };
    const stringList = (key: string, raw: unknown, pattern: RegExp, what: string): string[] | undefined => {
        let value = raw;
        if (typeof raw === "string") {
            try {
                value = JSON.parse(raw);
            } catch {
                value = raw;
            }
        }
        if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
            return fail(key, `must be a list of ${what}; got ${JSON.stringify(raw)}`);
        }
        const bad = value.filter((v: string) => !pattern.test(v));
        if (bad.length > 0) return fail(key, `entries ${JSON.stringify(bad)} are not ${what}`);
        return value as string[];
    };
    const withDefault = <T>(raw: unknown, parse: (raw: unknown) => T | undefined, fallback: T): T | undefined =>
        raw === undefined ? fallback : parse(raw);

    const target = oneOf("target", read("target"), TARGETS, "asm");

    const rawWeight = read("v2Weight");
    const v2Weight =
        rawWeight === undefined
            ? fail("v2Weight", `is required: an integer from ${MIN_WEIGHT} to ${MAX_WEIGHT} (0 = all traffic to v1, 100 = all to v2)`)
            : integer("v2Weight", rawWeight, MIN_WEIGHT, MAX_WEIGHT, " (percent of new connections sent to v2)");

    const namespace = read("namespace") ?? "default";
    if (!DNS_LABEL.test(namespace)) fail("namespace", `must be a DNS-1123 label (lowercase letters, digits, '-'); got ${JSON.stringify(namespace)}`);

    const image = read("image") ?? DEFAULT_IMAGE;
    const images = { stable: read("imageV1") ?? image, canary: read("imageV2") ?? image };
    const imageKeys: Record<Track, string> = { stable: read("imageV1") ? "imageV1" : "image", canary: read("imageV2") ? "imageV2" : "image" };
    const reportedImageKeys = new Set<string>();
    for (const track of ["stable", "canary"] as const) {
        const problem = imagePinProblem(images[track]);
        if (problem && !reportedImageKeys.has(imageKeys[track])) {
            reportedImageKeys.add(imageKeys[track]);
            fail(imageKeys[track], `image ${JSON.stringify(images[track])} ${problem}`);
        }
    }

    const replicas = withDefault(read("replicas"), (r) => integer("replicas", r, 1, 50), 1);
    const servicePort = withDefault(read("servicePort"), (r) => integer("servicePort", r, 1, 65535), DEFAULT_SERVICE_PORT);
    const gatewayPort = withDefault(read("gatewayPort"), (r) => integer("gatewayPort", r, 1, 65535), DEFAULT_GATEWAY_PORT);
    const hosts = withDefault(read("hosts"), (r) => stringList("hosts", r, HOST, 'hostnames or "*"'), ["*"]);
    if (hosts && hosts.length === 0) fail("hosts", 'must list at least one host (use ["*"] for any)');

    const slbRaw = object("slb");
    const slbMode = oneOf("slb.mode", slbRaw.mode, SLB_MODES, "managed");
    if (slbRaw.spec !== undefined) {
        fail(
            "slb.spec",
            `is retired; remove it: pay-by-specification CLBs are no longer sold and the cloud controller applies a spec only to them, so every CLB of this stack is pay-by-CLCU ("${CLB_CHARGE_TYPE}", billed by capacity used); got ${JSON.stringify(slbRaw.spec)}`,
        );
    }
    const addressType = oneOf("slb.addressType", slbRaw.addressType, SLB_ADDRESS_TYPES, "internet");
    const acknowledge = slbRaw.acknowledgeListenerOverride ?? false;
    if (typeof acknowledge !== "boolean") fail("slb.acknowledgeListenerOverride", `must be true or false; got ${JSON.stringify(acknowledge)}`);
    const otherPortsRaw = slbRaw.otherListenerPorts ?? [];
    let otherListenerPorts: number[] = [];
    if (!Array.isArray(otherPortsRaw)) {
        fail("slb.otherListenerPorts", `must be a list of integers from 1 to 65535; got ${JSON.stringify(otherPortsRaw)}`);
    } else {
        otherListenerPorts = otherPortsRaw.map((p, i) => integer(`slb.otherListenerPorts[${i}]`, p, 1, 65535)).filter((p): p is number => p !== undefined);
    }
    const vswitchId = slbRaw.vswitchId;
    if (vswitchId !== undefined && (typeof vswitchId !== "string" || !VSWITCH_ID.test(vswitchId))) {
        fail("slb.vswitchId", `must be a vSwitch id in the cluster's VPC, like "vsw-bp1example12345678" (vsw- and 8..32 lowercase letters or digits); got ${JSON.stringify(vswitchId)}`);
    } else if (vswitchId !== undefined && slbMode === "reuse") {
        fail("slb.vswitchId", 'is not used with slb.mode "reuse" (the reused CLB already has its network); remove it');
    } else if (vswitchId !== undefined && addressType !== "intranet") {
        fail("slb.vswitchId", `is only used with slb.addressType "intranet" (it is "${addressType}"); remove it or set slb.addressType to "intranet"`);
    }
    if (slbMode === "create" && addressType === "intranet" && vswitchId === undefined) {
        fail("slb.vswitchId", 'is required with slb.mode "create" and slb.addressType "intranet": a VPC CLB needs a vSwitch in the cluster\'s VPC, e.g. "vsw-bp1example12345678"');
    }
    const slbId = slbRaw.id;
    if (slbMode === "reuse") {
        if (typeof slbId !== "string" || !SLB_ID.test(slbId)) {
            fail("slb.id", `must be the id of the CLB to reuse, like "lb-2ze8x7example1234" (lb- and 8..32 lowercase letters or digits); got ${JSON.stringify(slbId)}`);
        }
        if (acknowledge !== true) {
            fail(
                "slb.acknowledgeListenerOverride",
                `must be true when slb.mode is "reuse": the cloud controller takes over the listener on port ${gatewayPort ?? DEFAULT_GATEWAY_PORT} of ${String(slbId)} and may delete listeners it does not manage; set it to true to accept that, or use slb.mode "create" or "managed"`,
            );
        }
        if (gatewayPort !== undefined && otherListenerPorts.includes(gatewayPort)) {
            fail("gatewayPort", `${gatewayPort} is already a frontend port of another Service on ${String(slbId)} (slb.otherListenerPorts); Services sharing a CLB need distinct ports`);
        }
    } else if (slbId !== undefined) {
        fail("slb.id", `is only used with slb.mode "reuse" (mode is "${slbMode}"); remove it or set slb.mode to "reuse"`);
    }

    const asmRaw = object("asm");
    const clusterIds =
        asmRaw.clusterIds === undefined
            ? target === "asm"
                ? fail("asm.clusterIds", 'is required when target is "asm": the ACK cluster ids the ingress gateway is deployed to, e.g. ["c0123456789abcdef"]')
                : ["local"]
            : stringList("asm.clusterIds", asmRaw.clusterIds, target === "asm" ? ACK_CLUSTER_ID : /^[a-z0-9-]+$/, "ACK cluster ids (c + 8..40 lowercase letters or digits)");
    if (clusterIds && clusterIds.length === 0) fail("asm.clusterIds", "must name at least one ACK cluster");
    if (clusterIds && clusterIds.length > 1 && (slbMode === "create" || slbMode === "reuse")) {
        fail("asm.clusterIds", `lists ${clusterIds.length} clusters, but one CLB cannot be shared across clusters (slb.mode "${slbMode}"); use one cluster id per stack or slb.mode "managed"`);
    }
    const gatewayReplicas = withDefault(asmRaw.gatewayReplicas, (r) => integer("asm.gatewayReplicas", r, 1, 20), 2);
    const gatewayName = asmRaw.gatewayName ?? DEFAULT_INGRESS_GATEWAY_NAME;
    if (typeof gatewayName !== "string" || !GATEWAY_NAME.test(gatewayName)) {
        fail("asm.gatewayName", `must be a DNS-1123 label of at most 57 characters (its Service is istio-<name>), e.g. "tcp-echo-ingressgateway"; got ${JSON.stringify(gatewayName)}`);
    }
    const useExistingGateway = asmRaw.useExistingGateway ?? false;
    if (typeof useExistingGateway !== "boolean") {
        fail("asm.useExistingGateway", `must be true or false; got ${JSON.stringify(useExistingGateway)}`);
    } else if (useExistingGateway) {
        // `mode: managed` is the project default (Pulumi.yaml), not a choice the user made.
        const chosen = Object.entries(slbRaw).filter(([key, value]) => !(key === "mode" && value === "managed"));
        if (chosen.length > 0) {
            fail(
                "slb",
                `is only for a gateway this stack creates; asm.useExistingGateway is true, so ${INGRESS_GATEWAY_NAMESPACE}/${String(gatewayName)} keeps its own CLB: remove ${chosen.map(([key]) => `slb.${key}`).join(", ")}`,
            );
        }
    }
    const istioApiVersion = oneOf("istioApiVersion", read("istioApiVersion"), ISTIO_API_VERSIONS, DEFAULT_ISTIO_API_VERSION);

    if (target !== "asm" && slbMode === "create") {
        fail("slb.mode", `"create" needs a cloud account, so it is only allowed with target "asm" (target is "${target}"); use "managed" here`);
    }

    const renderDir = read("renderDir") ?? "rendered";
    const localKubeconfig = read("localKubeconfig") ?? ".local/cluster/kubeconfig";

    if (problems.length > 0) throw new ConfigError(problems);
    return {
        target: target!,
        namespace,
        v2Weight: v2Weight!,
        weights: splitWeights(v2Weight!),
        images,
        replicas: replicas!,
        servicePort: servicePort!,
        gatewayPort: gatewayPort!,
        hosts: hosts!,
        istioApiVersion: istioApiVersion!,
        slb: {
            mode: slbMode!,
            id: slbMode === "reuse" ? (slbId as string) : undefined,
            addressType: addressType!,
            vswitchId: vswitchId as string | undefined,
            acknowledgeListenerOverride: acknowledge === true,
            otherListenerPorts,
        },
        asm: { clusterIds: clusterIds!, gatewayReplicas: gatewayReplicas!, gatewayName: gatewayName as string, useExistingGateway: useExistingGateway === true },
        renderDir,
        localKubeconfig,
    };
}
