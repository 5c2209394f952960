import type { ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";
import {
    GATEWAY_POD_LABEL,
    TYPE_TOKENS,
    asmGatewayDefaultPodLabels,
    sameResourceType,
} from "../../components/model";
import {
    Inspected,
    isType,
    metaName,
    metaNamespace,
    qualifyHost,
    tcpRoutes,
    frontendPorts,
} from "./resources";

/** Istio treats weights as relative; this project's contract is percent: integers 0..100 summing to 100. */
export const tcpRouteWeights: ResourceValidationPolicy = {
    name: "tcp-route-weights",
    description: "TCP route weights are integers from 0 to 100 that sum to 100.",
    enforcementLevel: "mandatory",
    validateResource: (args, reportViolation) => {
        if (!sameResourceType(args.type, TYPE_TOKENS.virtualService)) return;
        tcpRoutes(args).forEach((route, i) => {
            const destinations = route.route ?? [];
            if (destinations.length === 0) {
                reportViolation(
                    `VirtualService ${metaName(args)}: tcp[${i}] has no route destinations.`,
                );
                return;
            }
            const weights = destinations.map(
                (d) => d.weight ?? (destinations.length === 1 ? 100 : 0),
            );
            const bad = weights.filter((w) => !Number.isInteger(w) || w < 0 || w > 100);
            if (bad.length > 0) {
                reportViolation(
                    `VirtualService ${metaName(args)}: tcp[${i}] weights must be integers from 0 to 100; got ${JSON.stringify(weights)}.`,
                );
                return;
            }
            const total = weights.reduce((a, b) => a + b, 0);
            if (total !== 100) {
                reportViolation(
                    `VirtualService ${metaName(args)}: tcp[${i}] weights sum to ${total}, not 100 (${JSON.stringify(weights)}).`,
                );
            }
        });
    },
};

export const virtualServiceSubsetsDefined: StackValidationPolicy = {
    name: "virtualservice-subsets-defined",
    description:
        "Every subset a VirtualService routes to is defined by a DestinationRule for that host.",
    enforcementLevel: "mandatory",
    validateStack: (args, reportViolation) => {
        const defined = new Map<string, Set<string>>();
        for (const dr of args.resources.filter(isType(TYPE_TOKENS.destinationRule))) {
            const host = qualifyHost(dr.props?.spec?.host ?? "", metaNamespace(dr));
            const subsets = defined.get(host) ?? new Set<string>();
            for (const s of dr.props?.spec?.subsets ?? []) subsets.add(s.name);
            defined.set(host, subsets);
        }
        for (const vs of args.resources.filter(isType(TYPE_TOKENS.virtualService))) {
            for (const route of tcpRoutes(vs)) {
                for (const { destination } of route.route ?? []) {
                    if (!destination?.subset) continue;
                    const host = qualifyHost(destination.host, metaNamespace(vs));
                    if (!defined.get(host)?.has(destination.subset)) {
                        reportViolation(
                            `VirtualService ${metaName(vs)} routes to subset "${destination.subset}" of ${destination.host}, but no DestinationRule for that host defines it (defined: ${JSON.stringify([...(defined.get(host) ?? [])])}).`,
                            vs.urn,
                        );
                    }
                }
            }
        }
    },
};

/** The stack's Gateways by `namespace/name`, and the one a VirtualService's `gateways` entry names (if declared). */
function gatewayLookup(
    resources: Inspected[],
): (vs: Inspected, ref: string) => Inspected | undefined {
    const gateways = new Map<string, Inspected>();
    for (const gw of resources.filter(isType(TYPE_TOKENS.gateway)))
        gateways.set(`${metaNamespace(gw)}/${metaName(gw)}`, gw);
    return (vs, ref) => gateways.get(ref.includes("/") ? ref : `${metaNamespace(vs)}/${ref}`);
}

export const virtualServicePortExposed: StackValidationPolicy = {
    name: "virtualservice-port-exposed",
    description:
        "A VirtualService's TCP match port is a server port of its Gateway and is exposed by the ASM ingress gateway.",
    enforcementLevel: "mandatory",
    validateStack: (args, reportViolation) => {
        const gatewayOf = gatewayLookup(args.resources);
        const istioGateways = args.resources.filter(isType(TYPE_TOKENS.istioGateway));
        const exposed = new Set(istioGateways.flatMap(frontendPorts));
        for (const vs of args.resources.filter(isType(TYPE_TOKENS.virtualService))) {
            const refs: string[] = vs.props?.spec?.gateways ?? [];
            for (const route of tcpRoutes(vs)) {
                for (const match of route.match ?? []) {
                    if (match.port === undefined) continue;
                    for (const ref of refs.filter((r) => r !== "mesh")) {
                        const gw = gatewayOf(vs, ref);
                        if (!gw) {
                            reportViolation(
                                `VirtualService ${metaName(vs)} binds to Gateway "${ref}", which this stack does not declare.`,
                                vs.urn,
                            );
                            continue;
                        }
                        const serverPorts = (gw.props?.spec?.servers ?? []).map(
                            (s: { port?: { number?: number } }) => s.port?.number,
                        );
                        if (!serverPorts.includes(match.port)) {
                            reportViolation(
                                `VirtualService ${metaName(vs)} matches port ${match.port}, but Gateway ${ref} serves only ${JSON.stringify(serverPorts)}.`,
                                vs.urn,
                            );
                        }
                    }
                    // Without a declared IstioGateway (asm.useExistingGateway) the preflight checked the live gateway's ports.
                    if (istioGateways.length > 0 && !exposed.has(match.port)) {
                        reportViolation(
                            `VirtualService ${metaName(vs)} matches port ${match.port}, but no IstioGateway exposes it (exposed: ${JSON.stringify([...exposed])}).`,
                            vs.urn,
                        );
                    }
                }
            }
        }
    },
};

/** Labels the ASM controller gives the pods of an IstioGateway: its defaults, then `spec.podLabels`. */
function gatewayPodLabels(ig: Inspected): Record<string, string> {
    return {
        ...asmGatewayDefaultPodLabels(metaName(ig) ?? ""),
        ...(ig.props?.spec?.podLabels ?? {}),
    };
}

const selects = (selector: Record<string, string>, labels: Record<string, string>) =>
    Object.entries(selector).every(([k, v]) => labels[k] === v);

export const gatewaySelectsOwnGateway: StackValidationPolicy = {
    name: "gateway-selects-own-gateway",
    description:
        "Each Istio Gateway selects the pods of an ingress gateway the stack declares, by a label unique to that gateway.",
    enforcementLevel: "mandatory",
    validateStack: (args, reportViolation) => {
        const istioGateways = args.resources.filter(isType(TYPE_TOKENS.istioGateway));
        for (const gw of args.resources.filter(isType(TYPE_TOKENS.gateway))) {
            const selector: Record<string, string> = gw.props?.spec?.selector ?? {};
            if (Object.keys(selector).length === 0) {
                reportViolation(
                    `Gateway ${metaName(gw)}: spec.selector is empty, so it binds every gateway pod of the mesh, other teams' included.`,
                    gw.urn,
                );
                continue;
            }
            // Without a declared IstioGateway (asm.useExistingGateway), the preflight read the live gateway's labels.
            if (istioGateways.length === 0) continue;
            const matched = istioGateways.filter((ig) => selects(selector, gatewayPodLabels(ig)));
            if (matched.length === 0) {
                reportViolation(
                    `Gateway ${metaName(gw)}: spec.selector ${JSON.stringify(selector)} matches the pods of no IstioGateway this stack declares (${istioGateways
                        .map((ig) => `${metaName(ig)}: ${JSON.stringify(gatewayPodLabels(ig))}`)
                        .join("; ")}); traffic on its ports would reach no gateway.`,
                    gw.urn,
                );
            } else if (!(GATEWAY_POD_LABEL in selector)) {
                reportViolation(
                    `Gateway ${metaName(gw)}: spec.selector ${JSON.stringify(selector)} is not the gateway's own label ${GATEWAY_POD_LABEL}; another team's gateway with the same labels would serve this route too.`,
                    gw.urn,
                );
            }
        }
    },
};

// A Gateway server host without its `namespace/` part (`./`, `*` + `/`, `ns/`): the DNS name a VirtualService host must meet.
function dnsPart(host: string): string {
    return host.includes("/") ? host.slice(host.indexOf("/") + 1) : host;
}

/** Istio host matching: `*` meets everything, `*.example.com` meets any name (or wildcard) under example.com. */
export function hostsIntersect(a: string, b: string): boolean {
    if (a === b || a === "*" || b === "*") return true;
    const suffix = (h: string) => (h.startsWith("*.") ? h.slice(1) : undefined);
    const [sa, sb] = [suffix(a), suffix(b)];
    if (sa && sb) return sa.endsWith(sb) || sb.endsWith(sa);
    if (sa) return b.endsWith(sa);
    if (sb) return a.endsWith(sb);
    return false;
}

export const gatewayHostsIntersect: StackValidationPolicy = {
    name: "gateway-hosts-intersect",
    description:
        "A VirtualService bound to a Gateway has a host that the Gateway's servers accept (else istiod builds no route).",
    enforcementLevel: "mandatory",
    validateStack: (args, reportViolation) => {
        const gatewayOf = gatewayLookup(args.resources);
        for (const vs of args.resources.filter(isType(TYPE_TOKENS.virtualService))) {
            const vsHosts: string[] = vs.props?.spec?.hosts ?? [];
            for (const ref of (vs.props?.spec?.gateways ?? []).filter(
                (r: string) => r !== "mesh",
            )) {
                const gw = gatewayOf(vs, ref);
                if (!gw) continue;
                const serverHosts: string[] = (gw.props?.spec?.servers ?? []).flatMap(
                    (srv: { hosts?: string[] }) => (srv.hosts ?? []).map(dnsPart),
                );
                if (!vsHosts.some((h) => serverHosts.some((g) => hostsIntersect(h, g)))) {
                    reportViolation(
                        `VirtualService ${metaName(vs)}: spec.hosts ${JSON.stringify(vsHosts)} meet none of the hosts of Gateway ${metaName(gw)} (${JSON.stringify(serverHosts)}); istiod builds no route for it on that gateway.`,
                        vs.urn,
                    );
                }
            }
        }
    },
};

export const subsetLabelsSelectPods: StackValidationPolicy = {
    name: "subset-labels-select-pods",
    description:
        "Each DestinationRule subset's labels select the pods of a Deployment behind its host (else the subset has no endpoints).",
    enforcementLevel: "mandatory",
    validateStack: (args, reportViolation) => {
        const deployments = args.resources.filter(isType(TYPE_TOKENS.deployment));
        // Only the workloads this stack declares can be judged; a stack routing to others' pods is left alone.
        if (deployments.length === 0) return;
        const services = new Map<string, Record<string, string>>();
        for (const svc of args.resources.filter(isType(TYPE_TOKENS.service)))
            services.set(
                qualifyHost(metaName(svc) ?? "", metaNamespace(svc)),
                svc.props?.spec?.selector ?? {},
            );
        for (const dr of args.resources.filter(isType(TYPE_TOKENS.destinationRule))) {
            const host = qualifyHost(dr.props?.spec?.host ?? "", metaNamespace(dr));
            const selector = services.get(host);
            if (!selector) continue;
            // A qualified host is <service>.<namespace>.svc.cluster.local.
            const hostNamespace = host.split(".")[1];
            const podsBehindHost = deployments
                .filter((d) => metaNamespace(d) === hostNamespace)
                .map(
                    (d) =>
                        (d.props?.spec?.template?.metadata?.labels ?? {}) as Record<string, string>,
                )
                .filter((labels) => selects(selector, labels));
            for (const subset of dr.props?.spec?.subsets ?? []) {
                const labels: Record<string, string> = subset.labels ?? {};
                if (!podsBehindHost.some((pod) => selects(labels, pod))) {
                    reportViolation(
                        `DestinationRule ${metaName(dr)}: subset "${subset.name}" selects labels ${JSON.stringify(labels)}, which no pod of a Deployment behind ${dr.props?.spec?.host} carries (pods: ${JSON.stringify(podsBehindHost)}); the subset would have no endpoints.`,
                        dr.urn,
                    );
                }
            }
        }
    },
};
