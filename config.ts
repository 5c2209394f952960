import { DEFAULT_GATEWAY_PORT, DEFAULT_IMAGE, DEFAULT_SERVICE_PORT, Track } from "./components/model";
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

export const SLB_SPECS = ["slb.s1.small", "slb.s2.small", "slb.s2.medium", "slb.s3.small", "slb.s3.medium", "slb.s3.large", "slb.s4.large"] as const;

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
    readonly slb: SlbSettings;
    readonly asm: AsmSettings;
    readonly renderDir: string;
    readonly localKubeconfig: string;
}

export interface SlbSettings {
    readonly mode: SlbMode;
    /** Existing CLB id, only in `reuse` mode. */
    readonly id?: string;
    readonly spec: string;
    readonly addressType: SlbAddressType;
    /** The user's explicit "yes" to the cloud controller rewriting listeners of a reused CLB. */
    readonly acknowledgeListenerOverride: boolean;
    /** Frontend ports other Services already use on the reused CLB; ours must not collide. */
    readonly otherListenerPorts: readonly number[];
}

export interface AsmSettings {
    readonly clusterIds: readonly string[];
    readonly gatewayReplicas: number;
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
    const slbSpec = oneOf("slb.spec", slbRaw.spec, SLB_SPECS, "slb.s1.small");
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
        slb: {
            mode: slbMode!,
            id: slbMode === "reuse" ? (slbId as string) : undefined,
            spec: slbSpec!,
            addressType: addressType!,
            acknowledgeListenerOverride: acknowledge === true,
            otherListenerPorts,
        },
        asm: { clusterIds: clusterIds!, gatewayReplicas: gatewayReplicas! },
        renderDir,
        localKubeconfig,
    };
}
