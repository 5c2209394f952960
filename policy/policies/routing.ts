import type { ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";
import { TYPE_TOKENS } from "../../components/model";
import { Inspected, isType, metaName, metaNamespace, qualifyHost, tcpRoutes, frontendPorts } from "./resources";

/** Istio treats weights as relative; this project's contract is percent: integers 0..100 summing to 100. */
export const tcpRouteWeights: ResourceValidationPolicy = {
    name: "tcp-route-weights",
    description: "TCP route weights are integers from 0 to 100 that sum to 100.",
    enforcementLevel: "mandatory",
    validateResource: (args, reportViolation) => {
        if (args.type !== TYPE_TOKENS.virtualService) return;
        tcpRoutes(args).forEach((route, i) => {
            const destinations = route.route ?? [];
            if (destinations.length === 0) {
                reportViolation(`VirtualService ${metaName(args)}: tcp[${i}] has no route destinations.`);
                return;
            }
            const weights = destinations.map((d) => d.weight ?? (destinations.length === 1 ? 100 : 0));
            const bad = weights.filter((w) => !Number.isInteger(w) || w < 0 || w > 100);
            if (bad.length > 0) {
                reportViolation(`VirtualService ${metaName(args)}: tcp[${i}] weights must be integers from 0 to 100; got ${JSON.stringify(weights)}.`);
                return;
            }
            const total = weights.reduce((a, b) => a + b, 0);
            if (total !== 100) {
                reportViolation(`VirtualService ${metaName(args)}: tcp[${i}] weights sum to ${total}, not 100 (${JSON.stringify(weights)}).`);
            }
        });
    },
};

export const virtualServiceSubsetsDefined: StackValidationPolicy = {
    name: "virtualservice-subsets-defined",
    description: "Every subset a VirtualService routes to is defined by a DestinationRule for that host.",
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

function gatewayKey(ref: string, namespace: string): string {
    return ref.includes("/") ? ref : `${namespace}/${ref}`;
}

export const virtualServicePortExposed: StackValidationPolicy = {
    name: "virtualservice-port-exposed",
    description: "A VirtualService's TCP match port is a server port of its Gateway and is exposed by the ASM ingress gateway.",
    enforcementLevel: "mandatory",
    validateStack: (args, reportViolation) => {
        const gateways = new Map<string, Inspected>();
        for (const gw of args.resources.filter(isType(TYPE_TOKENS.gateway))) gateways.set(`${metaNamespace(gw)}/${metaName(gw)}`, gw);
        const exposed = new Set(args.resources.filter(isType(TYPE_TOKENS.istioGateway)).flatMap(frontendPorts));
        for (const vs of args.resources.filter(isType(TYPE_TOKENS.virtualService))) {
            const refs: string[] = vs.props?.spec?.gateways ?? [];
            for (const route of tcpRoutes(vs)) {
                for (const match of route.match ?? []) {
                    if (match.port === undefined) continue;
                    for (const ref of refs.filter((r) => r !== "mesh")) {
                        const gw = gateways.get(gatewayKey(ref, metaNamespace(vs)));
                        if (!gw) {
                            reportViolation(`VirtualService ${metaName(vs)} binds to Gateway "${ref}", which this stack does not declare.`, vs.urn);
                            continue;
                        }
                        const serverPorts = (gw.props?.spec?.servers ?? []).map((s: { port?: { number?: number } }) => s.port?.number);
                        if (!serverPorts.includes(match.port)) {
                            reportViolation(`VirtualService ${metaName(vs)} matches port ${match.port}, but Gateway ${ref} serves only ${JSON.stringify(serverPorts)}.`, vs.urn);
                        }
                    }
                    if (!exposed.has(match.port)) {
                        reportViolation(`VirtualService ${metaName(vs)} matches port ${match.port}, but no IstioGateway exposes it (exposed: ${JSON.stringify([...exposed])}).`, vs.urn);
                    }
                }
            }
        }
    },
};
