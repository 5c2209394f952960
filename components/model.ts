/**
 * The facts of the tcp-echo traffic-shifting scenario. Every component, policy and test reads
 * them from here so that a port, a subset name or a label cannot drift between resources.
 */

/** Name shared by the Service, the DestinationRule host and the `app` label. */
export const APP_NAME = "tcp-echo";

/** Istio's sample server; `1.2` is the tag the upstream tcp-echo manifests use. */
export const DEFAULT_IMAGE = "docker.io/istio/tcp-echo-server:1.2";

/** Port the echo server listens on and the Service exposes. */
export const DEFAULT_SERVICE_PORT = 9000;
/** Istio infers the protocol from a port's name, so every TCP port here is named `tcp`. */
export const TCP_PORT_NAME = "tcp";

/** Port the ingress gateway listens on for this TCP route (Istio's tcp-echo task uses 31400). */
export const DEFAULT_GATEWAY_PORT = 31400;

/** The two versions in the canary: subset name, `version` label and the prefix the server echoes. */
export const VERSIONS = {
    stable: { subset: "v1", prefix: "one" },
    canary: { subset: "v2", prefix: "two" },
} as const;

export type Track = keyof typeof VERSIONS;
export const TRACKS: readonly Track[] = ["stable", "canary"];

/** Label value on the ASM ingress-gateway pods; the Gateway selects on it and the IstioGateway is named after it. */
export const INGRESS_GATEWAY_LABEL = "ingressgateway";
export const INGRESS_GATEWAY_NAMESPACE = "istio-system";

export const ISTIO_NETWORKING_API = "networking.istio.io/v1";
export const ASM_GATEWAY_API = "istio.alibabacloud.com/v1beta1";

/** Prefix of the ACK cloud-controller-manager Service annotations that steer the CLB (SLB). */
export const SLB_ANNOTATION_PREFIX = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-";
export const SLB_ANNOTATIONS = {
    id: `${SLB_ANNOTATION_PREFIX}id`,
    forceOverrideListeners: `${SLB_ANNOTATION_PREFIX}force-override-listeners`,
    addressType: `${SLB_ANNOTATION_PREFIX}address-type`,
    spec: `${SLB_ANNOTATION_PREFIX}spec`,
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

/** Pulumi type tokens of the custom resources, as policies and mocks see them. */
export const TYPE_TOKENS = {
    gateway: `kubernetes:${ISTIO_NETWORKING_API}:Gateway`,
    destinationRule: `kubernetes:${ISTIO_NETWORKING_API}:DestinationRule`,
    virtualService: `kubernetes:${ISTIO_NETWORKING_API}:VirtualService`,
    istioGateway: `kubernetes:${ASM_GATEWAY_API}:IstioGateway`,
    deployment: "kubernetes:apps/v1:Deployment",
    service: "kubernetes:core/v1:Service",
    slb: "alicloud:slb/applicationLoadBalancer:ApplicationLoadBalancer",
} as const;

/** Labels of one version's pods; the Deployment selector, the pod template and the subset all use it. */
export function versionLabels(track: Track): { app: string; version: string } {
    return { app: APP_NAME, version: VERSIONS[track].subset };
}
