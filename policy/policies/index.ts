import type { Policies } from "@pulumi/policy";
import { slbFrontendPortsUnique, slbNotClusterCreated, slbReuseAcknowledged, slbSingleCluster } from "./loadBalancer";
import { tcpRouteWeights, virtualServicePortExposed, virtualServiceSubsetsDefined } from "./routing";
import { destinationPortSet, imagesPinned, istioPortNames, maxWeightStep, productionReplicas, resourcesSet } from "./workloads";

export * from "./loadBalancer";
export * from "./routing";
export * from "./workloads";

export const allPolicies: Policies = [
    tcpRouteWeights,
    virtualServiceSubsetsDefined,
    virtualServicePortExposed,
    imagesPinned,
    slbReuseAcknowledged,
    slbFrontendPortsUnique,
    slbSingleCluster,
    slbNotClusterCreated,
    istioPortNames,
    destinationPortSet,
    resourcesSet,
    productionReplicas,
    maxWeightStep,
];
