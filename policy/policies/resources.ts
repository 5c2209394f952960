import {
    PROGRAM_ANNOTATIONS,
    SLB_ANNOTATIONS,
    TYPE_TOKENS,
    sameResourceType,
} from "../../components/model";

/** What the policies need of a resource: its type, props and URN (the validation args and stack resources both have them). */
export interface Inspected {
    type: string;
    props: Record<string, any>;
    urn: string;
}

/** Matches a resource of the token's kind; Istio networking kinds at every served version. */
export const isType = (token: string) => (r: Inspected) => sameResourceType(r.type, token);

export function metaName(r: Inspected): string | undefined {
    return r.props?.metadata?.name;
}

/** Namespace as Istio resolves it; resources without one land in `default`. */
export function metaNamespace(r: Inspected): string {
    return r.props?.metadata?.namespace ?? "default";
}

/** Short Service names in Istio config resolve against the config's own namespace. */
export function qualifyHost(host: string, namespace: string): string {
    return host.includes(".") ? host : `${host}.${namespace}.svc.cluster.local`;
}

export interface TcpDestination {
    host: string;
    subset?: string;
    port?: number;
    weight?: number;
}

export function tcpRoutes(
    vs: Inspected,
): { match?: { port?: number }[]; route?: { destination?: TcpDestination; weight?: number }[] }[] {
    return Array.isArray(vs.props?.spec?.tcp) ? vs.props.spec.tcp : [];
}

/** Annotations of the Service the ASM controller makes from an IstioGateway. */
export function gatewayServiceAnnotations(r: Inspected): Record<string, string> {
    if (sameResourceType(r.type, TYPE_TOKENS.istioGateway))
        return r.props?.spec?.serviceAnnotations ?? {};
    return r.props?.metadata?.annotations ?? {};
}

export function programAnnotations(r: Inspected): Record<string, string> {
    return r.props?.metadata?.annotations ?? {};
}

/** Frontend ports a LoadBalancer (IstioGateway or Service) puts on its CLB. */
export function frontendPorts(r: Inspected): number[] {
    const ports = r.props?.spec?.ports;
    return Array.isArray(ports)
        ? ports
              .map((p: { port?: number }) => p.port)
              .filter((p): p is number => typeof p === "number")
        : [];
}

/** CLB id a LoadBalancer resource is bound to, when it names one. */
export function loadBalancerId(r: Inspected): string | undefined {
    const annotations = gatewayServiceAnnotations(r);
    return (
        annotations[SLB_ANNOTATIONS.id] ??
        annotations[SLB_ANNOTATIONS.id.replace("alibaba-cloud", "alicloud")]
    );
}

/** True when the CLB is an existing one (not created by this stack). */
export function reusesLoadBalancer(r: Inspected): boolean {
    return (
        loadBalancerId(r) !== undefined &&
        programAnnotations(r)[PROGRAM_ANNOTATIONS.slbMode] !== "create"
    );
}

export function isLoadBalancerService(r: Inspected): boolean {
    return sameResourceType(r.type, TYPE_TOKENS.istioGateway)
        ? r.props?.spec?.serviceType === "LoadBalancer"
        : sameResourceType(r.type, TYPE_TOKENS.service) && r.props?.spec?.type === "LoadBalancer";
}

export function containers(
    deployment: Inspected,
): { name?: string; image?: string; resources?: any }[] {
    const c = deployment.props?.spec?.template?.spec?.containers;
    return Array.isArray(c) ? c : [];
}

/** Stack name from a URN: urn:pulumi:<stack>::<project>::<type>::<name>. */
export function stackOf(urn: string): string {
    return urn.split("::")[0]?.split(":")[2] ?? "";
}
