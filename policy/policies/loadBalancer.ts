import type { ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";
import {
    CLB_CHARGE_TYPE,
    PROGRAM_ANNOTATIONS,
    SLB_ANNOTATIONS,
    TYPE_TOKENS,
    sameResourceType,
} from "../../components/model";
import {
    Inspected,
    frontendPorts,
    gatewayServiceAnnotations,
    isLoadBalancerService,
    loadBalancerId,
    metaName,
    programAnnotations,
    reusesLoadBalancer,
} from "./resources";

const label = (r: Inspected) => `${r.type.split(":").pop()} ${metaName(r)}`;

export const slbReuseAcknowledged: ResourceValidationPolicy = {
    name: "slb-reuse-acknowledged",
    description:
        "Reusing an existing CLB needs the explicit acknowledgment that its listeners on these ports are overridden.",
    enforcementLevel: "mandatory",
    validateResource: (args, reportViolation) => {
        if (
            !sameResourceType(args.type, TYPE_TOKENS.istioGateway) &&
            !sameResourceType(args.type, TYPE_TOKENS.service)
        )
            return;
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
    description:
        "A CLB bound by id serves one cluster: ASM does not support sharing it across clusters.",
    enforcementLevel: "mandatory",
    validateResource: (args, reportViolation) => {
        if (
            !sameResourceType(args.type, TYPE_TOKENS.istioGateway) ||
            loadBalancerId(args) === undefined
        )
            return;
        const clusters: string[] = args.props?.spec?.clusterIds ?? [];
        if (clusters.length > 1) {
            reportViolation(
                `${label(args)} binds CLB ${loadBalancerId(args)} in ${clusters.length} clusters (${clusters.join(", ")}); a CLB cannot be shared across clusters.`,
            );
        }
    },
};

export interface ClusterCreatedConfig {
    /** CLBs the clusters' cloud controllers created; ASM cannot reuse those. */
    clusterCreatedLoadBalancerIds: string[];
}

export const slbNotClusterCreated: ResourceValidationPolicy = {
    name: "slb-not-cluster-created",
    description:
        "Never reuse a CLB that a cluster's cloud controller created (it may delete it with its Service).",
    enforcementLevel: "mandatory",
    configSchema: {
        properties: {
            clusterCreatedLoadBalancerIds: {
                type: "array",
                items: { type: "string" },
                default: [],
            },
        },
    },
    validateResource: (args, reportViolation) => {
        if (!reusesLoadBalancer(args)) return;
        const id = loadBalancerId(args)!;
        const { clusterCreatedLoadBalancerIds } = args.getConfig<ClusterCreatedConfig>();
        if (
            programAnnotations(args)[PROGRAM_ANNOTATIONS.slbCreatedBy] === "kubernetes" ||
            clusterCreatedLoadBalancerIds.includes(id)
        ) {
            reportViolation(
                `${label(args)} reuses CLB ${id}, which a cluster created; only CLBs created in the console or by API can be reused.`,
            );
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
            const declaredElsewhere = (
                programAnnotations(r)[PROGRAM_ANNOTATIONS.otherListenerPorts] ?? ""
            )
                .split(",")
                .filter(Boolean)
                .map(Number);
            for (const port of frontendPorts(r)) {
                if (declaredElsewhere.includes(port)) {
                    reportViolation(
                        `${label(r)} listens on ${port} of CLB ${id}, which another Service already uses.`,
                        r.urn,
                    );
                }
                const key = `${id}:${port}`;
                const first = owners.get(key);
                if (first)
                    reportViolation(
                        `${label(r)} and ${label(first)} both listen on port ${port} of CLB ${id}.`,
                        r.urn,
                    );
                else owners.set(key, r);
            }
        }
    },
};

/**
 * Pay-by-specification CLBs are no longer sold (CLB CreateLoadBalancer docs; D7 in shared/reference/asm-facts-checked.md),
 * and the cloud controller applies the `…-spec` annotation only when the charge type is PayBySpec.
 */
export const clbPayByClcu: ResourceValidationPolicy = {
    name: "clb-pay-by-clcu",
    description:
        "CLBs are pay-by-CLCU: a created CLB sets instanceChargeType PayByCLCU and no spec; no gateway asks the cloud controller for a spec.",
    enforcementLevel: "mandatory",
    validateResource: (args, reportViolation) => {
        if (sameResourceType(args.type, TYPE_TOKENS.slb)) {
            const charge = args.props?.instanceChargeType;
            if (charge !== CLB_CHARGE_TYPE) {
                reportViolation(
                    `CLB ${args.props?.loadBalancerName ?? args.urn}: instanceChargeType is ${JSON.stringify(charge)}; pay-by-specification CLBs are no longer sold, set "${CLB_CHARGE_TYPE}".`,
                );
            }
            if (args.props?.loadBalancerSpec !== undefined) {
                reportViolation(
                    `CLB ${args.props?.loadBalancerName ?? args.urn}: loadBalancerSpec ${JSON.stringify(args.props.loadBalancerSpec)} is ignored for pay-by-CLCU CLBs; remove it.`,
                );
            }
            return;
        }
        if (!isLoadBalancerService(args)) return;
        const annotations = gatewayServiceAnnotations(args);
        const spec =
            annotations[SLB_ANNOTATIONS.spec] ??
            annotations[SLB_ANNOTATIONS.spec.replace("alibaba-cloud", "alicloud")];
        if (spec !== undefined) {
            reportViolation(
                `${label(args)}: annotation ${SLB_ANNOTATIONS.spec}=${spec} asks for a pay-by-specification CLB, which is no longer sold (the cloud controller ignores it for pay-by-CLCU); remove it.`,
            );
        }
    },
};

export const clbIntranetVswitch: ResourceValidationPolicy = {
    name: "clb-intranet-vswitch",
    description: "An intranet CLB the stack creates names a vSwitch (in the cluster's VPC).",
    enforcementLevel: "mandatory",
    validateResource: (args, reportViolation) => {
        if (!sameResourceType(args.type, TYPE_TOKENS.slb) || args.props?.addressType !== "intranet")
            return;
        if (!args.props?.vswitchId) {
            reportViolation(
                `CLB ${args.props?.loadBalancerName ?? args.urn}: an intranet CLB needs vswitchId, a vSwitch in the cluster's VPC (slb.vswitchId).`,
            );
        }
    },
};
