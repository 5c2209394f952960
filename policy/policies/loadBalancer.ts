import type { ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";
import { PROGRAM_ANNOTATIONS, TYPE_TOKENS } from "../../components/model";
import { Inspected, frontendPorts, isLoadBalancerService, loadBalancerId, metaName, programAnnotations, reusesLoadBalancer } from "./resources";

const label = (r: Inspected) => `${r.type.split(":").pop()} ${metaName(r)}`;

export const slbReuseAcknowledged: ResourceValidationPolicy = {
    name: "slb-reuse-acknowledged",
    description: "Reusing an existing CLB needs the explicit acknowledgment that its listeners on these ports are overridden.",
    enforcementLevel: "mandatory",
    validateResource: (args, reportViolation) => {
        if (args.type !== TYPE_TOKENS.istioGateway && args.type !== TYPE_TOKENS.service) return;
        if (!reusesLoadBalancer(args)) return;
        if (programAnnotations(args)[PROGRAM_ANNOTATIONS.listenerOverrideAcknowledged] !== "true") {
            reportViolation(
                `${label(args)} reuses CLB ${loadBalancerId(args)} without acknowledging that its listeners on ports ${JSON.stringify(frontendPorts(args))} are overridden; set slb.acknowledgeListenerOverride: true.`,
            );
        }
    },
};

export const slbSingleCluster: ResourceValidationPolicy = {
    name: "slb-single-cluster",
    description: "A CLB bound by id serves one cluster: ASM does not support sharing it across clusters.",
    enforcementLevel: "mandatory",
    validateResource: (args, reportViolation) => {
        if (args.type !== TYPE_TOKENS.istioGateway || loadBalancerId(args) === undefined) return;
        const clusters: string[] = args.props?.spec?.clusterIds ?? [];
        if (clusters.length > 1) {
            reportViolation(`${label(args)} binds CLB ${loadBalancerId(args)} in ${clusters.length} clusters (${clusters.join(", ")}); a CLB cannot be shared across clusters.`);
        }
    },
};

export interface ClusterCreatedConfig {
    /** CLBs the clusters' cloud controllers created; ASM cannot reuse those. */
    clusterCreatedLoadBalancerIds: string[];
}

export const slbNotClusterCreated: ResourceValidationPolicy = {
    name: "slb-not-cluster-created",
    description: "Never reuse a CLB that a cluster's cloud controller created (it may delete it with its Service).",
    enforcementLevel: "mandatory",
    configSchema: {
        properties: { clusterCreatedLoadBalancerIds: { type: "array", items: { type: "string" }, default: [] } },
    },
    validateResource: (args, reportViolation) => {
        if (!reusesLoadBalancer(args)) return;
        const id = loadBalancerId(args)!;
        const { clusterCreatedLoadBalancerIds } = args.getConfig<ClusterCreatedConfig>();
        if (programAnnotations(args)[PROGRAM_ANNOTATIONS.slbCreatedBy] === "kubernetes" || clusterCreatedLoadBalancerIds.includes(id)) {
            reportViolation(`${label(args)} reuses CLB ${id}, which a cluster created; only CLBs created in the console or by API can be reused.`);
        }
    },
};

export const slbFrontendPortsUnique: StackValidationPolicy = {
    name: "slb-frontend-ports-unique",
    description: "Gateways and Services that share a CLB use distinct frontend ports.",
    enforcementLevel: "mandatory",
    validateStack: (args, reportViolation) => {
        const owners = new Map<string, Inspected>();
        for (const r of args.resources.filter(isLoadBalancerService)) {
            const id = loadBalancerId(r);
            if (!id) continue;
            const declaredElsewhere = (programAnnotations(r)[PROGRAM_ANNOTATIONS.otherListenerPorts] ?? "").split(",").filter(Boolean).map(Number);
            for (const port of frontendPorts(r)) {
                if (declaredElsewhere.includes(port)) {
                    reportViolation(`${label(r)} listens on ${port} of CLB ${id}, which another Service already uses.`, r.urn);
                }
                const key = `${id}:${port}`;
                const first = owners.get(key);
                if (first) reportViolation(`${label(r)} and ${label(first)} both listen on port ${port} of CLB ${id}.`, r.urn);
                else owners.set(key, r);
            }
        }
    },
};
