import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import {
    CLB_CHARGE_TYPE,
    INGRESS_GATEWAY_NAMESPACE,
    ISTIO_API_VERSIONS,
    IstioApiVersion,
    TRACKS,
    Track,
    VERSIONS,
    imagePinProblem,
} from "./components/model";

// The policy pack checks images with the same rule; it lives in the model so the pack need not load this module.
export { imagePinProblem };
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

/** One problem with a stack, tied to the config key whose change resolves it. */
export interface ConfigProblem {
    readonly key: string;
    readonly message: string;
}

/**
 * A stack refused before any resource is registered, listing every problem at once, each with its config key.
 * The program prints its message alone (no stack trace): the refusal is the expected answer to bad input.
 */
export class StackRefusedError extends Error {
    constructor(
        headline: string,
        readonly problems: readonly ConfigProblem[],
    ) {
        super(
            `${headline} (nothing was changed):\n` +
                problems.map((p) => `  - ${PROJECT}:${p.key}: ${p.message}`).join("\n"),
        );
    }
}

/** Every problem found in the stack's config, reported together so one edit fixes them all. */
export class ConfigError extends StackRefusedError {
    constructor(problems: readonly ConfigProblem[]) {
        super("Invalid stack configuration", problems);
        this.name = "ConfigError";
    }
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const SLB_ID = /^lb-[a-z0-9]{8,32}$/;
const VSWITCH_ID = /^vsw-[a-z0-9]{8,32}$/;
/** The IstioGateway's Service is `istio-<name>`, a DNS label of at most 63 characters. */
const GATEWAY_NAME = /^[a-z0-9]([-a-z0-9]{0,55}[a-z0-9])?$/;
const ACK_CLUSTER_ID = /^c[a-z0-9]{8,40}$/;
const HOST =
    /^(\*|(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*|[a-z0-9-]+\/.+)$/;

/**
 * The defaults of the typed config block in Pulumi.yaml: the one place each default lives. The engine applies
 * them to the program; the parser applies the same ones (nested keys of `slb` and `asm` too, which the engine
 * replaces wholesale when a stack sets the object), so the tools and tests that parse stack files agree.
 */
export const DEFAULTS = readProjectDefaults(projectFile(__dirname));

/** The project's Pulumi.yaml: beside this file, or above it when this file runs compiled (bin/<build>/config.js). */
function projectFile(from: string): string {
    for (let dir = from; ; dir = path.dirname(dir)) {
        const file = path.join(dir, "Pulumi.yaml");
        if (fs.existsSync(file)) return file;
        if (path.dirname(dir) === dir) return path.join(from, "Pulumi.yaml");
    }
}

export interface ProjectDefaults {
    target: Target;
    namespace: string;
    image: string;
    replicas: number;
    servicePort: number;
    gatewayPort: number;
    hosts: string[];
    istioApiVersion: IstioApiVersion;
    slb: {
        mode: SlbMode;
        addressType: SlbAddressType;
        acknowledgeListenerOverride: boolean;
        otherListenerPorts: number[];
    };
    asm: { gatewayReplicas: number; gatewayName: string; useExistingGateway: boolean };
    renderDir: string;
    localKubeconfig: string;
}

export function readProjectDefaults(file: string): ProjectDefaults {
    const config: Record<string, { default?: unknown }> =
        parse(fs.readFileSync(file, "utf8"))?.config ?? {};
    const defaults = Object.fromEntries(
        Object.entries(config)
            .filter(([, spec]) => spec?.default !== undefined)
            .map(([key, spec]) => [key, spec.default]),
    );
    return defaults as unknown as ProjectDefaults;
}

/** Collects every problem; a parser that finds one returns undefined and the others go on. */
class Problems {
    readonly list: ConfigProblem[] = [];
    fail(key: string, message: string): undefined {
        this.list.push({ key, message });
        return undefined;
    }
}

// Value parsers: each takes the raw value as the CLI stores it and reports what is wrong under its key.

function integer(
    p: Problems,
    key: string,
    raw: unknown,
    min: number,
    max: number,
    meaning = "",
): number | undefined {
    const value = typeof raw === "string" && /^-?\d+$/.test(raw.trim()) ? Number(raw) : raw;
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
        return p.fail(
            key,
            `must be an integer from ${min} to ${max}${meaning}; got ${JSON.stringify(raw)}`,
        );
    }
    return value;
}

function oneOf<T extends string>(
    p: Problems,
    key: string,
    raw: unknown,
    allowed: readonly T[],
): T | undefined {
    if (typeof raw !== "string" || !(allowed as readonly string[]).includes(raw)) {
        return p.fail(
            key,
            `must be one of ${allowed.map((a) => `"${a}"`).join(", ")}; got ${JSON.stringify(raw)}`,
        );
    }
    return raw as T;
}

function boolean(p: Problems, key: string, raw: unknown): boolean | undefined {
    return typeof raw === "boolean"
        ? raw
        : p.fail(key, `must be true or false; got ${JSON.stringify(raw)}`);
}

function matching(
    p: Problems,
    key: string,
    raw: unknown,
    pattern: RegExp,
    what: string,
): string | undefined {
    return typeof raw === "string" && pattern.test(raw)
        ? raw
        : p.fail(key, `${what}; got ${JSON.stringify(raw)}`);
}

/** An object key (`slb`, `asm`) over its defaults; the CLI stores objects as JSON text. */
function object(
    p: Problems,
    key: string,
    raw: string | undefined,
    defaults: object,
): Record<string, unknown> {
    if (raw === undefined) return { ...defaults };
    try {
        const parsed: unknown = JSON.parse(raw);
        if (parsed && typeof parsed === "object" && !Array.isArray(parsed))
            return { ...defaults, ...(parsed as Record<string, unknown>) };
    } catch {
        /* reported below */
    }
    p.fail(
        key,
        `must be an object (set it with --path, e.g. ${key}.mode); got ${JSON.stringify(raw)}`,
    );
    return { ...defaults };
}

function stringList(
    p: Problems,
    key: string,
    raw: unknown,
    pattern: RegExp,
    what: string,
): string[] | undefined {
    let value = raw;
    if (typeof raw === "string") {
        try {
            value = JSON.parse(raw);
        } catch {
            value = raw;
        }
    }
    if (!Array.isArray(value) || value.some((v) => typeof v !== "string"))
        return p.fail(key, `must be a list of ${what}; got ${JSON.stringify(raw)}`);
    const bad = value.filter((v: string) => !pattern.test(v));
    if (bad.length > 0) return p.fail(key, `entries ${JSON.stringify(bad)} are not ${what}`);
    return value as string[];
}

/** A key's value, or its Pulumi.yaml default in the CLI's text form. */
function withDefaults(read: RawConfigReader): RawConfigReader {
    return (key) => {
        const value = read(key);
        if (value !== undefined) return value;
        const fallback = (DEFAULTS as unknown as Record<string, unknown>)[key];
        return fallback === undefined
            ? undefined
            : typeof fallback === "string"
              ? fallback
              : JSON.stringify(fallback);
    };
}

// The per-key schema: one parser per key or key group, each on its own.

function parseImages(p: Problems, read: RawConfigReader): Record<Track, string> {
    const image = read("image")!;
    const keys: Record<Track, string> = { stable: "imageV1", canary: "imageV2" };
    const images = Object.fromEntries(
        TRACKS.map((track) => [track, read(keys[track]) ?? image]),
    ) as Record<Track, string>;
    const reported = new Set<string>();
    for (const track of TRACKS) {
        const key = read(keys[track]) !== undefined ? keys[track] : "image";
        const problem = imagePinProblem(images[track]);
        if (problem && !reported.has(key)) {
            reported.add(key);
            p.fail(key, `image ${JSON.stringify(images[track])} ${problem}`);
        }
    }
    return images;
}

interface ParsedSlb {
    raw: Record<string, unknown>;
    mode?: SlbMode;
    addressType?: SlbAddressType;
    acknowledge?: boolean;
    otherListenerPorts: number[];
}

function parseSlb(p: Problems, read: RawConfigReader): ParsedSlb {
    const raw = object(p, "slb", read("slb"), DEFAULTS.slb);
    if (raw.spec !== undefined) {
        p.fail(
            "slb.spec",
            `is retired; remove it: pay-by-specification CLBs are no longer sold and the cloud controller applies a spec only to them, so every CLB of this stack is pay-by-CLCU ("${CLB_CHARGE_TYPE}", billed by capacity used); got ${JSON.stringify(raw.spec)}`,
        );
    }
    const ports = raw.otherListenerPorts;
    let otherListenerPorts: number[] = [];
    if (!Array.isArray(ports))
        p.fail(
            "slb.otherListenerPorts",
            `must be a list of integers from 1 to 65535; got ${JSON.stringify(ports)}`,
        );
    else
        otherListenerPorts = ports
            .map((port, i) => integer(p, `slb.otherListenerPorts[${i}]`, port, 1, 65535))
            .filter((port): port is number => port !== undefined);
    if (raw.vswitchId !== undefined) {
        matching(
            p,
            "slb.vswitchId",
            raw.vswitchId,
            VSWITCH_ID,
            `must be a vSwitch id in the cluster's VPC, like "vsw-bp1example12345678" (vsw- and 8..32 lowercase letters or digits)`,
        );
    }
    return {
        raw,
        mode: oneOf(p, "slb.mode", raw.mode, SLB_MODES),
        addressType: oneOf(p, "slb.addressType", raw.addressType, SLB_ADDRESS_TYPES),
        acknowledge: boolean(p, "slb.acknowledgeListenerOverride", raw.acknowledgeListenerOverride),
        otherListenerPorts,
    };
}

interface ParsedAsm {
    raw: Record<string, unknown>;
    clusterIds?: string[];
    gatewayReplicas?: number;
    gatewayName?: string;
    useExistingGateway?: boolean;
}

function parseAsm(p: Problems, read: RawConfigReader, target: Target | undefined): ParsedAsm {
    const raw = object(p, "asm", read("asm"), DEFAULTS.asm);
    let clusterIds: string[] | undefined;
    if (raw.clusterIds === undefined) {
        // Off the cloud the gateway's cluster is the local one; on asm the rule `clusterIdsRequiredOnAsm` reports it.
        clusterIds = target === "asm" ? undefined : ["local"];
    } else {
        clusterIds = stringList(
            p,
            "asm.clusterIds",
            raw.clusterIds,
            target === "asm" ? ACK_CLUSTER_ID : /^[a-z0-9-]+$/,
            "ACK cluster ids (c + 8..40 lowercase letters or digits)",
        );
        if (clusterIds && clusterIds.length === 0)
            p.fail("asm.clusterIds", "must name at least one ACK cluster");
    }
    return {
        raw,
        clusterIds,
        gatewayReplicas: integer(p, "asm.gatewayReplicas", raw.gatewayReplicas, 1, 20),
        gatewayName: matching(
            p,
            "asm.gatewayName",
            raw.gatewayName,
            GATEWAY_NAME,
            `must be a DNS-1123 label of at most 57 characters (its Service is istio-<name>), e.g. "tcp-echo-ingressgateway"`,
        ),
        useExistingGateway: boolean(p, "asm.useExistingGateway", raw.useExistingGateway),
    };
}

/** What the cross-field rules see: every key as parsed (undefined where it was bad). */
interface Parsed {
    target?: Target;
    gatewayPort?: number;
    slb: ParsedSlb;
    asm: ParsedAsm;
}

// The cross-field rules, each named for what it guards.

function clusterIdsRequiredOnAsm(p: Problems, { target, asm }: Parsed): void {
    if (target === "asm" && asm.raw.clusterIds === undefined) {
        p.fail(
            "asm.clusterIds",
            'is required when target is "asm": the ACK cluster ids the ingress gateway is deployed to, e.g. ["c0123456789abcdef"]',
        );
    }
}

function reuseNeedsIdAndAcknowledgment(p: Problems, { slb, gatewayPort }: Parsed): void {
    const id = slb.raw.id;
    if (slb.mode !== "reuse") {
        if (id !== undefined)
            p.fail(
                "slb.id",
                `is only used with slb.mode "reuse" (mode is "${slb.mode}"); remove it or set slb.mode to "reuse"`,
            );
        return;
    }
    if (typeof id !== "string" || !SLB_ID.test(id)) {
        p.fail(
            "slb.id",
            `must be the id of the CLB to reuse, like "lb-2ze8x7example1234" (lb- and 8..32 lowercase letters or digits); got ${JSON.stringify(id)}`,
        );
    }
    if (slb.raw.acknowledgeListenerOverride !== true && slb.acknowledge !== undefined) {
        p.fail(
            "slb.acknowledgeListenerOverride",
            `must be true when slb.mode is "reuse": the cloud controller takes over the listener on port ${gatewayPort ?? DEFAULTS.gatewayPort} of ${String(id)} and may delete listeners it does not manage; set it to true to accept that, or use slb.mode "create" or "managed"`,
        );
    }
    if (gatewayPort !== undefined && slb.otherListenerPorts.includes(gatewayPort)) {
        p.fail(
            "gatewayPort",
            `${gatewayPort} is already a frontend port of another Service on ${String(id)} (slb.otherListenerPorts); Services sharing a CLB need distinct ports`,
        );
    }
}

function vswitchOnlyForIntranet(p: Problems, { slb }: Parsed): void {
    const vswitchId = slb.raw.vswitchId;
    if (vswitchId !== undefined && typeof vswitchId === "string" && VSWITCH_ID.test(vswitchId)) {
        if (slb.mode === "reuse")
            p.fail(
                "slb.vswitchId",
                'is not used with slb.mode "reuse" (the reused CLB already has its network); remove it',
            );
        else if (slb.addressType !== "intranet")
            p.fail(
                "slb.vswitchId",
                `is only used with slb.addressType "intranet" (it is "${slb.addressType}"); remove it or set slb.addressType to "intranet"`,
            );
    }
    if (slb.mode === "create" && slb.addressType === "intranet" && vswitchId === undefined) {
        p.fail(
            "slb.vswitchId",
            'is required with slb.mode "create" and slb.addressType "intranet": a VPC CLB needs a vSwitch in the cluster\'s VPC, e.g. "vsw-bp1example12345678"',
        );
    }
}

function oneClbOneCluster(p: Problems, { slb, asm }: Parsed): void {
    const count = asm.clusterIds?.length ?? 0;
    if (count > 1 && (slb.mode === "create" || slb.mode === "reuse")) {
        p.fail(
            "asm.clusterIds",
            `lists ${count} clusters, but one CLB cannot be shared across clusters (slb.mode "${slb.mode}"); use one cluster id per stack or slb.mode "managed"`,
        );
    }
}

function existingGatewayKeepsItsClb(p: Problems, { slb, asm }: Parsed): void {
    if (asm.useExistingGateway !== true) return;
    const chosen = Object.entries(slb.raw).filter(
        ([key, value]) =>
            JSON.stringify(value) !==
            JSON.stringify((DEFAULTS.slb as Record<string, unknown>)[key]),
    );
    if (chosen.length > 0) {
        p.fail(
            "slb",
            `is only for a gateway this stack creates; asm.useExistingGateway is true, so ${INGRESS_GATEWAY_NAMESPACE}/${String(asm.gatewayName)} keeps its own CLB: remove ${chosen.map(([key]) => `slb.${key}`).join(", ")}`,
        );
    }
}

function createNeedsCloud(p: Problems, { target, slb }: Parsed): void {
    if (target !== undefined && target !== "asm" && slb.mode === "create") {
        p.fail(
            "slb.mode",
            `"create" needs a cloud account, so it is only allowed with target "asm" (target is "${target}"); use "managed" here`,
        );
    }
}

const CROSS_FIELD_RULES = [
    clusterIdsRequiredOnAsm,
    reuseNeedsIdAndAcknowledgment,
    vswitchOnlyForIntranet,
    oneClbOneCluster,
    existingGatewayKeepsItsClb,
    createNeedsCloud,
];

/** Parses and validates the stack config. Throws {@link ConfigError} listing every bad key. */
export function parseSettings(readRaw: RawConfigReader): Settings {
    const p = new Problems();
    const read = withDefaults(readRaw);

    const target = oneOf(p, "target", read("target"), TARGETS);
    const rawWeight = readRaw("v2Weight");
    const v2Weight =
        rawWeight === undefined
            ? p.fail(
                  "v2Weight",
                  `is required: an integer from ${MIN_WEIGHT} to ${MAX_WEIGHT} (0 = all traffic to ${VERSIONS.stable.subset}, 100 = all to ${VERSIONS.canary.subset})`,
              )
            : integer(
                  p,
                  "v2Weight",
                  rawWeight,
                  MIN_WEIGHT,
                  MAX_WEIGHT,
                  ` (percent of new connections sent to ${VERSIONS.canary.subset})`,
              );
    const namespace = matching(
        p,
        "namespace",
        read("namespace"),
        DNS_LABEL,
        "must be a DNS-1123 label (lowercase letters, digits, '-')",
    );
    const images = parseImages(p, read);
    const replicas = integer(p, "replicas", read("replicas"), 1, 50);
    const servicePort = integer(p, "servicePort", read("servicePort"), 1, 65535);
    const gatewayPort = integer(p, "gatewayPort", read("gatewayPort"), 1, 65535);
    const hosts = stringList(p, "hosts", read("hosts"), HOST, 'hostnames or "*"');
    if (hosts && hosts.length === 0)
        p.fail("hosts", 'must list at least one host (use ["*"] for any)');
    const istioApiVersion = oneOf(
        p,
        "istioApiVersion",
        read("istioApiVersion"),
        ISTIO_API_VERSIONS,
    );
    const slb = parseSlb(p, read);
    const asm = parseAsm(p, read, target);

    for (const rule of CROSS_FIELD_RULES) rule(p, { target, gatewayPort, slb, asm });
    if (p.list.length > 0) throw new ConfigError(p.list);

    return {
        target: target!,
        namespace: namespace!,
        v2Weight: v2Weight!,
        weights: splitWeights(v2Weight!),
        images,
        replicas: replicas!,
        servicePort: servicePort!,
        gatewayPort: gatewayPort!,
        hosts: hosts!,
        istioApiVersion: istioApiVersion!,
        slb: {
            mode: slb.mode!,
            id: slb.mode === "reuse" ? (slb.raw.id as string) : undefined,
            addressType: slb.addressType!,
            vswitchId: slb.raw.vswitchId as string | undefined,
            acknowledgeListenerOverride: slb.acknowledge === true,
            otherListenerPorts: slb.otherListenerPorts,
        },
        asm: {
            clusterIds: asm.clusterIds!,
            gatewayReplicas: asm.gatewayReplicas!,
            gatewayName: asm.gatewayName!,
            useExistingGateway: asm.useExistingGateway!,
        },
        renderDir: read("renderDir")!,
        localKubeconfig: read("localKubeconfig")!,
    };
}
