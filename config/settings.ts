import { CLB_CHARGE_TYPE, IstioApiVersion, TRACKS, Track, VERSIONS } from "../components/model";
import { MAX_WEIGHT, MIN_WEIGHT, WeightSplit, splitWeights } from "../components/weights";
import { DEFAULTS } from "./defaults";
import { ConfigError, Problems } from "./errors";
import { integer, object, stringList } from "./fields";
import {
    ACK_CLUSTER_ID,
    ASM_FIELDS,
    CHECKS,
    CONNECTION_POOL_FIELDS,
    SLB_FIELDS,
    SlbAddressType,
    SlbMode,
    Target,
} from "./keys";
import { CROSS_FIELD_RULES, ParsedAsm, ParsedSlb } from "./rules";

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
    /** The DestinationRule's `trafficPolicy.connectionPool.tcp`; an unset field is left to Istio's default. */
    readonly connectionPool: ConnectionPoolSettings;
    readonly renderDir: string;
    readonly localKubeconfig: string;
    /** An image key is stored as a secret (a private registry path, say): the images then stay secret in the state. */
    readonly secretImages?: boolean;
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

/**
 * Durations in canonical Go syntax (`90s`, `1h`), each unset unless the stack sets it. istiod puts both into the
 * gateway listener's tcp_proxy filter (docs/envoy.md), so changing either replaces the port's filter chain as a
 * weight change does.
 */
export interface ConnectionPoolSettings {
    /** Envoy closes a connection this long after it was accepted (Istio >= 1.15). */
    readonly maxConnectionDuration?: string;
    /** Envoy closes a connection after this long with no byte either way; `0s` disables it (Istio >= 1.21). */
    readonly idleTimeout?: string;
}

/** Reads one raw config value as the CLI stores it (objects and arrays as JSON text). */
export type RawConfigReader = (key: string) => string | undefined;

export interface ParseOptions {
    /** Keys stored as secrets: a problem with one never quotes its value. */
    readonly isSecret?: (key: string) => boolean;
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
    const checked = new Set<string>();
    for (const track of TRACKS) {
        const key = read(keys[track]) !== undefined ? keys[track] : "image";
        if (!checked.has(key)) {
            checked.add(key);
            CHECKS.image(p, key, images[track]);
        }
    }
    return images;
}

function parseSlb(p: Problems, read: RawConfigReader): ParsedSlb {
    const raw = object(p, "slb", read("slb"), DEFAULTS.slb, SLB_FIELDS);
    if (raw.spec !== undefined) {
        p.fail(
            "slb.spec",
            `is retired; remove it: pay-by-specification CLBs are no longer sold and the cloud controller applies a spec only to them, so every CLB of this stack is pay-by-CLCU ("${CLB_CHARGE_TYPE}", billed by capacity used); got ${p.show("slb.spec", raw.spec)}`,
        );
    }
    if (raw.vswitchId !== undefined) CHECKS.vswitchId(p, "slb.vswitchId", raw.vswitchId);
    return {
        raw,
        mode: CHECKS.slbMode(p, "slb.mode", raw.mode),
        addressType: CHECKS.slbAddressType(p, "slb.addressType", raw.addressType),
        acknowledge: CHECKS.flag(
            p,
            "slb.acknowledgeListenerOverride",
            raw.acknowledgeListenerOverride,
        ),
        otherListenerPorts:
            CHECKS.otherListenerPorts(p, "slb.otherListenerPorts", raw.otherListenerPorts) ?? [],
    };
}

function parseAsm(p: Problems, read: RawConfigReader, target: Target | undefined): ParsedAsm {
    const raw = object(p, "asm", read("asm"), DEFAULTS.asm, ASM_FIELDS);
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
        gatewayReplicas: CHECKS.gatewayReplicas(p, "asm.gatewayReplicas", raw.gatewayReplicas),
        gatewayName: CHECKS.gatewayName(p, "asm.gatewayName", raw.gatewayName),
        useExistingGateway: CHECKS.flag(p, "asm.useExistingGateway", raw.useExistingGateway),
    };
}

function parseConnectionPool(p: Problems, read: RawConfigReader): ConnectionPoolSettings {
    const raw = object(
        p,
        "connectionPool",
        read("connectionPool"),
        DEFAULTS.connectionPool,
        CONNECTION_POOL_FIELDS,
    );
    const out: { maxConnectionDuration?: string; idleTimeout?: string } = {};
    for (const field of ["maxConnectionDuration", "idleTimeout"] as const) {
        if (raw[field] === undefined) continue;
        const value = CHECKS[field](p, `connectionPool.${field}`, raw[field]);
        if (value !== undefined) out[field] = value;
    }
    return out;
}

/** Parses and validates the stack config. Throws {@link ConfigError} listing every bad key. */
export function parseSettings(readRaw: RawConfigReader, options: ParseOptions = {}): Settings {
    const p = new Problems(options.isSecret);
    const read = withDefaults(readRaw);

    const target = CHECKS.target(p, "target", read("target"));
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
    const namespace = CHECKS.namespace(p, "namespace", read("namespace"));
    const images = parseImages(p, read);
    const replicas = CHECKS.replicas(p, "replicas", read("replicas"));
    const servicePort = CHECKS.port(p, "servicePort", read("servicePort"));
    const gatewayPort = CHECKS.port(p, "gatewayPort", read("gatewayPort"));
    const hosts = CHECKS.hosts(p, "hosts", read("hosts"));
    const istioApiVersion = CHECKS.istioApiVersion(p, "istioApiVersion", read("istioApiVersion"));
    const slb = parseSlb(p, read);
    const asm = parseAsm(p, read, target);
    const connectionPool = parseConnectionPool(p, read);
    const renderDir = CHECKS.path(p, "renderDir", read("renderDir"));
    const localKubeconfig = CHECKS.path(p, "localKubeconfig", read("localKubeconfig"));

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
        connectionPool,
        renderDir: renderDir!,
        localKubeconfig: localKubeconfig!,
        secretImages: ["image", "imageV1", "imageV2"].some(
            (key) => options.isSecret?.(key) ?? false,
        ),
    };
}
