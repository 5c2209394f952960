/**
 * Each config key and what it may hold: the one schema that the project's defaults (Pulumi.yaml) and every
 * stack's values are checked against, so a default can never be a value a stack would be refused for.
 */
import { ISTIO_API_VERSIONS, imagePinProblem, reservedPortProblem } from "../components/model";
import { Problems } from "./errors";
import {
    ObjectFields,
    boolean,
    integer,
    istioDuration,
    integerList,
    matching,
    oneOf,
    stringList,
    text,
} from "./fields";

/** Where the stack's resources go. */
export const TARGETS = ["asm", "local", "render"] as const;
export type Target = (typeof TARGETS)[number];

/** How the ASM ingress gateway gets its Classic Load Balancer. */
export const SLB_MODES = ["create", "reuse", "managed"] as const;
export type SlbMode = (typeof SLB_MODES)[number];

export const SLB_ADDRESS_TYPES = ["internet", "intranet"] as const;
export type SlbAddressType = (typeof SLB_ADDRESS_TYPES)[number];

export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
export const SLB_ID = /^lb-[a-z0-9]{8,32}$/;
export const VSWITCH_ID = /^vsw-[a-z0-9]{8,32}$/;
/** The IstioGateway's Service is `istio-<name>`, a DNS label of at most 63 characters. */
export const GATEWAY_NAME = /^[a-z0-9]([-a-z0-9]{0,55}[a-z0-9])?$/;
export const ACK_CLUSTER_ID = /^c[a-z0-9]{8,40}$/;
export const HOST =
    /^(\*|(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*|[a-z0-9-]+\/.+)$/;

/** The fields of `slb`; `spec` is retired and reported on its own. */
export const SLB_FIELDS: ObjectFields = {
    known: [
        "mode",
        "id",
        "addressType",
        "vswitchId",
        "acknowledgeListenerOverride",
        "otherListenerPorts",
    ],
    retired: ["spec"],
};
export const ASM_FIELDS: ObjectFields = {
    known: ["clusterIds", "gatewayReplicas", "gatewayName", "useExistingGateway"],
};
/** The fields of `connectionPool`: the DestinationRule's `trafficPolicy.connectionPool.tcp` settings this stack sets. */
export const CONNECTION_POOL_FIELDS: ObjectFields = {
    known: ["maxConnectionDuration", "idleTimeout"],
};

/**
 * The shortest connection lifetime or idle time a stack may set. Istio and Envoy take 1ms; a TCP connection
 * cut within a second of opening, or after under a second of silence, is a misconfiguration rather than a
 * policy (docs/configuration.md).
 */
export const MIN_CONNECTION_DURATION_MS = 1000;

/** Every key the settings are read from (the kubeconfig secrets are read apart, see secrets.ts). */
export const SETTING_KEYS = [
    "v2Weight",
    "target",
    "namespace",
    "image",
    "imageV1",
    "imageV2",
    "replicas",
    "servicePort",
    "gatewayPort",
    "hosts",
    "istioApiVersion",
    "slb",
    "asm",
    "connectionPool",
    "renderDir",
    "localKubeconfig",
] as const;

/** A check of one value: the value, or undefined once the problem is reported under `key`. */
type Check<T> = (p: Problems, key: string, raw: unknown) => T | undefined;

function port(p: Problems, key: string, raw: unknown): number | undefined {
    const value = integer(p, key, raw, 1, 65535);
    const reserved = value === undefined ? undefined : reservedPortProblem(value);
    return reserved ? p.fail(key, reserved) : value;
}

function image(p: Problems, key: string, raw: unknown): string | undefined {
    if (typeof raw !== "string")
        return p.fail(key, `must be an image reference; got ${p.show(key, raw)}`);
    const problem = imagePinProblem(raw);
    return problem ? p.fail(key, `image ${p.show(key, raw)} ${problem}`) : raw;
}

function hosts(p: Problems, key: string, raw: unknown): string[] | undefined {
    const list = stringList(p, key, raw, HOST, 'hostnames or "*"');
    if (list && list.length === 0)
        return p.fail(key, 'must list at least one host (use ["*"] for any)');
    return list;
}

/** The check of each key, and of each field of `slb` and `asm`, that does not depend on another key. */
export const CHECKS = {
    target: (p, key, raw) => oneOf(p, key, raw, TARGETS),
    namespace: (p, key, raw) =>
        matching(
            p,
            key,
            raw,
            DNS_LABEL,
            "must be a DNS-1123 label (lowercase letters, digits, '-')",
        ),
    image,
    replicas: (p, key, raw) => integer(p, key, raw, 1, 50),
    port,
    hosts,
    istioApiVersion: (p, key, raw) => oneOf(p, key, raw, ISTIO_API_VERSIONS),
    path: (p, key, raw) => text(p, key, raw, "a path"),
    slbMode: (p, key, raw) => oneOf(p, key, raw, SLB_MODES),
    slbAddressType: (p, key, raw) => oneOf(p, key, raw, SLB_ADDRESS_TYPES),
    otherListenerPorts: (p, key, raw) => integerList(p, key, raw, 1, 65535),
    vswitchId: (p, key, raw) =>
        matching(
            p,
            key,
            raw,
            VSWITCH_ID,
            `must be a vSwitch id in the cluster's VPC, like "vsw-bp1example12345678" (vsw- and 8..32 lowercase letters or digits)`,
        ),
    gatewayReplicas: (p, key, raw) => integer(p, key, raw, 1, 20),
    gatewayName: (p, key, raw) =>
        matching(
            p,
            key,
            raw,
            GATEWAY_NAME,
            `must be a DNS-1123 label of at most 57 characters (its Service is istio-<name>), e.g. "tcp-echo-ingressgateway"`,
        ),
    // Istio >= 1.15: tcp_proxy max_downstream_connection_duration (docs/configuration.md).
    maxConnectionDuration: (p, key, raw) =>
        istioDuration(p, key, raw, { minMs: MIN_CONNECTION_DURATION_MS }),
    // Istio >= 1.21: tcp_proxy idle_timeout; 0s disables it, as in Istio's API (TCPSettings.idle_timeout).
    idleTimeout: (p, key, raw) =>
        istioDuration(p, key, raw, {
            minMs: MIN_CONNECTION_DURATION_MS,
            zero: "to disable the idle timeout (Istio's meaning; the default is 1h)",
        }),
    flag: boolean,
} satisfies Record<string, Check<unknown>>;
