/**
 * The facts of the tcp-echo traffic-shifting scenario. Every component, policy and test reads
 * them from here so that a port, a subset name or a label cannot drift between resources. Config
 * defaults (image, ports, gateway name, Istio API version) live in Pulumi.yaml; see `DEFAULTS` in config/defaults.ts.
 *
 * Glossary of the two versions, each word in its place:
 *  - track (`stable` / `canary`): the program's own word, used inside components and settings;
 *  - subset (`v1` / `v2`): Istio's word and the pods' `version` label; used at the Istio boundary and in outputs;
 *  - echo prefix (`one` / `two`): what each version's server answers, so a client can tell them apart;
 *  - `v2Weight`: the one config key, the canary's percent of new connections.
 */

/** Name shared by the Service, the DestinationRule host and the `app` label. */
export const APP_NAME = "tcp-echo";

/** Istio infers the protocol from a port's name, so every TCP port here is named `tcp`. */
export const TCP_PORT_NAME = "tcp";

/** The two versions in the canary: subset name, `version` label and the prefix the server echoes. */
export const VERSIONS = {
    stable: { subset: "v1", prefix: "one" },
    canary: { subset: "v2", prefix: "two" },
} as const;

/** What each subset's server answers first, by subset: how a client (verify) tells the versions apart. */
export const ECHO_PREFIXES = {
    [VERSIONS.stable.subset]: VERSIONS.stable.prefix,
    [VERSIONS.canary.subset]: VERSIONS.canary.prefix,
} as {
    v1: "one";
    v2: "two";
};

export type Track = keyof typeof VERSIONS;
export const TRACKS: readonly Track[] = ["stable", "canary"];

/** Names of the objects the stack makes; the preflight checks each of them before anything is written. */
export const OBJECT_NAMES = {
    service: APP_NAME,
    gateway: `${APP_NAME}-gateway`,
    destinationRule: `${APP_NAME}-destination`,
    virtualService: APP_NAME,
} as const;

/** Deployment of one track: `tcp-echo-v1`, `tcp-echo-v2`. */
export function deploymentName(track: Track): string {
    return `${APP_NAME}-${VERSIONS[track].subset}`;
}

/** ASM deploys gateways only in istio-system ("gateways deployed to other namespaces fail to start", ASM CRD field reference). */
export const INGRESS_GATEWAY_NAMESPACE = "istio-system";
/**
 * Pod label this stack gives its gateway through `spec.podLabels` and the Gateway selects on, as ASM documents for
 * binding a Gateway to one ingress gateway ("Configure an Istio gateway for multiple ingress gateways"): no other
 * team's `istio: ingressgateway` Gateway binds to these pods, and a renamed gateway keeps its Gateway.
 */
export const GATEWAY_POD_LABEL = "asm-tcp-shift.io/gateway";

/** Labels ASM gives the pods of an IstioGateway named `name` (D3 in shared/reference/asm-facts-checked.md) before `spec.podLabels`. */
export function asmGatewayDefaultPodLabels(name: string): Record<string, string> {
    return { istio: name, app: `istio-${name}` };
}

/**
 * Versions of `networking.istio.io` a mesh may serve for Gateway, DestinationRule and VirtualService. `v1` exists
 * from Istio 1.22 ("Introducing the v1 APIs", istio.io 2024); ASM versions follow Istio's, so it needs ASM >= 1.22.
 */
export const ISTIO_API_VERSIONS = ["v1", "v1beta1", "v1alpha3"] as const;
export type IstioApiVersion = (typeof ISTIO_API_VERSIONS)[number];
export const ISTIO_NETWORKING_GROUP = "networking.istio.io";
export function istioNetworkingApi(version: IstioApiVersion): string {
    return `${ISTIO_NETWORKING_GROUP}/${version}`;
}
/** The version type tokens are written at; `sameResourceType` matches an Istio kind at every version. */
export const ISTIO_NETWORKING_API = istioNetworkingApi("v1");
/** Documented and served version of ASM's CR (the Go types register it as package `v1`, see asm-facts-checked.md row 1). */
export const ASM_GATEWAY_API = "istio.alibabacloud.com/v1beta1";

/**
 * Stamped on every object the stack creates: `<organization>/<project>/<stack>`. The preflight refuses to create an
 * object whose name is taken unless it carries this stack's stamp, because `@pulumi/kubernetes` 4.25 creates with
 * server-side apply, which silently adopts an existing object (and `destroy` would then delete it).
 */
export const OWNER_ANNOTATION = "asm-tcp-shift.io/stack";
/**
 * Server-side apply with force: the stack is the single owner of every field it sets, so a hand edit (kubectl, the
 * ASM console) is drift that `up --refresh` restores instead of a field-manager conflict left for the user to solve.
 */
export const PATCH_FORCE_ANNOTATION = "pulumi.com/patchForce";

/** Annotations of every object the stack owns. */
export function ownedObjectAnnotations(owner: string): Record<string, string> {
    return { [OWNER_ANNOTATION]: owner, [PATCH_FORCE_ANNOTATION]: "true" };
}

/** Prefix of the ACK cloud-controller-manager Service annotations that steer the CLB (SLB). */
export const SLB_ANNOTATION_PREFIX = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-";
export const SLB_ANNOTATIONS = {
    id: `${SLB_ANNOTATION_PREFIX}id`,
    forceOverrideListeners: `${SLB_ANNOTATION_PREFIX}force-override-listeners`,
    addressType: `${SLB_ANNOTATION_PREFIX}address-type`,
    chargeType: `${SLB_ANNOTATION_PREFIX}instance-charge-type`,
    vswitchId: `${SLB_ANNOTATION_PREFIX}vswitch-id`,
    /** Retired: applied by the cloud controller only when the charge type is PayBySpec, which is no longer sold. */
    spec: `${SLB_ANNOTATION_PREFIX}spec`,
} as const;

/**
 * The only CLB billing that can still be bought: pay-by-specification CLBs are no longer sold (CLB
 * CreateLoadBalancer docs, D7 in asm-facts-checked.md), and the cloud controller defaults to this one.
 */
export const CLB_CHARGE_TYPE = "PayByCLCU";

/** Tags the ACK cloud controller reads and writes on CLBs (cloud-provider-alibaba-cloud, helper.TAGKEY / util.ClusterTagKey / helper.REUSEKEY). */
export const CLB_TAGS = {
    /** Written by the controller on every CLB it binds by id (`addTagIfNotExist` in LoadBalancerManager.Update). */
    reusedByUser: "kubernetes.reused.by.user",
    /** A CLB carrying either of these was made by a cluster; the controller refuses to reuse it. */
    clusterCreated: ["kubernetes.do.not.delete", "ack.aliyun.com"],
} as const;

/**
 * Annotations this program stamps on the IstioGateway so the policy pack can judge the SLB setup
 * from the resource alone (a reused SLB looks like any other id to the cloud controller).
 */
export const PROGRAM_ANNOTATIONS = {
    slbMode: "asm-tcp-shift.io/slb-mode",
    listenerOverrideAcknowledged: "asm-tcp-shift.io/listener-override-acknowledged",
    otherListenerPorts: "asm-tcp-shift.io/slb-other-listener-ports",
    slbCreatedBy: "asm-tcp-shift.io/slb-created-by",
} as const;

/** Pulumi type tokens of the resources, as policies and mocks see them (Istio kinds at `v1`; see `sameResourceType`). */
export const TYPE_TOKENS = {
    gateway: `kubernetes:${ISTIO_NETWORKING_API}:Gateway`,
    destinationRule: `kubernetes:${ISTIO_NETWORKING_API}:DestinationRule`,
    virtualService: `kubernetes:${ISTIO_NETWORKING_API}:VirtualService`,
    istioGateway: `kubernetes:${ASM_GATEWAY_API}:IstioGateway`,
    deployment: "kubernetes:apps/v1:Deployment",
    service: "kubernetes:core/v1:Service",
    slb: "alicloud:slb/applicationLoadBalancer:ApplicationLoadBalancer",
} as const;

/** The kind a type token names, with Istio networking kinds matched at every served version. */
export function sameResourceType(type: string, token: string): boolean {
    if (type === token) return true;
    const istio = (t: string) =>
        /^kubernetes:networking\.istio\.io\/v[0-9a-z]+:(\w+)$/.exec(t)?.[1];
    const kind = istio(token);
    return kind !== undefined && istio(type) === kind;
}

/** Labels of one version's pods; the Deployment selector, the pod template and the subset all use it. */
export function versionLabels(track: Track): { app: string; version: string } {
    return { app: APP_NAME, version: VERSIONS[track].subset };
}

/**
 * An image reference as Docker's reference grammar reads it (distribution/reference, regexp.go): an optional
 * registry host with an optional port, then lowercase path components joined by `.`, `_`, `__` or dashes.
 */
const IMAGE_REPOSITORY =
    /^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const IMAGE_TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
/** The longest repository name a registry accepts (distribution/reference, NameTotalLengthMax). */
const IMAGE_REPOSITORY_MAX_LENGTH = 255;

/**
 * An image reference counts as pinned with an explicit tag other than `latest`, or a sha256 digest; the
 * repository before either must be a valid reference too, digest or not. A registry port (`host:5000/repo`) is
 * not a tag. The problem never quotes a part of the image: the caller quotes it, unless it is a secret.
 */
export function imagePinProblem(image: string): string | undefined {
    const at = image.indexOf("@");
    const nameAndTag = at < 0 ? image : image.slice(0, at);
    const digest = at < 0 ? undefined : image.slice(at + 1);
    if (digest !== undefined && !/^sha256:[a-f0-9]{64}$/.test(digest))
        return "has a digest that is not sha256:<64 lowercase hex digits>";
    const colon = nameAndTag.indexOf(":", nameAndTag.lastIndexOf("/") + 1);
    const name = colon < 0 ? nameAndTag : nameAndTag.slice(0, colon);
    const tag = colon < 0 ? undefined : nameAndTag.slice(colon + 1);
    if (tag !== undefined && !IMAGE_TAG.test(tag))
        return "has a tag that is not a valid image tag (letters, digits, '_', '.', '-'; at most 128, not starting with '.' or '-')";
    if (!IMAGE_REPOSITORY.test(name) || name.length > IMAGE_REPOSITORY_MAX_LENGTH)
        return "has a repository name that is not a valid image reference ([registry[:port]/]path, the path in lowercase letters, digits and '.', '_', '-' separators)";
    if (digest !== undefined) return undefined;
    if (tag === undefined)
        return "has no tag or digest; pin it as repo:tag or repo@sha256:<digest>";
    if (tag === "latest")
        return 'uses the moving tag "latest"; pin a version tag or a sha256 digest';
    return undefined;
}

/**
 * Ports Istio's proxies listen on in every sidecar and gateway pod, per "Ports used by Istio"
 * (https://istio.io/latest/docs/ops/deployment/requirements/#ports-used-by-istio): 15000 Envoy admin, 15001
 * outbound, 15004 debug, 15006 inbound, 15008 HBONE, 15020 merged metrics, 15021 health checks, 15053 DNS and
 * 15090 Envoy's Prometheus telemetry. A Service or gateway port among them collides with the proxy's own
 * listeners (its traffic is captured or refused instead of reaching tcp-echo), so the whole band is refused.
 */
export const ISTIO_RESERVED_PORTS = { from: 15000, to: 15090 } as const;

/** Why `port` cannot be a tcp-echo or gateway port, or undefined when it can. */
export function reservedPortProblem(port: number): string | undefined {
    const { from, to } = ISTIO_RESERVED_PORTS;
    if (port < from || port > to) return undefined;
    return `${port} is in ${from}..${to}, the ports Istio's sidecar and gateway proxies keep for themselves (admin, outbound, inbound, HBONE, health, metrics); choose a port from 1 to ${from - 1} or ${to + 1} to 65535`;
}
