import type { Policies } from "@pulumi/policy";
import {
    clbIntranetVswitch,
    clbPayByClcu,
    slbFrontendPortsUnique,
    slbNotClusterCreated,
    slbReuseAcknowledged,
    slbSingleCluster,
} from "./loadBalancer";
import {
    gatewayHostsIntersect,
    gatewaySelectsOwnGateway,
    subsetLabelsSelectPods,
    tcpRouteWeights,
    virtualServicePortExposed,
    virtualServiceSubsetsDefined,
} from "./routing";
import {
    destinationPortSet,
    imagesPinned,
    istioPortNames,
    maxWeightStep,
    productionReplicas,
    resourcesSet,
} from "./workloads";

export * from "./loadBalancer";
export * from "./routing";
export * from "./workloads";

export const allPolicies: Policies = [
    tcpRouteWeights,
    virtualServiceSubsetsDefined,
    virtualServicePortExposed,
    gatewaySelectsOwnGateway,
    gatewayHostsIntersect,
    subsetLabelsSelectPods,
    imagesPinned,
    slbReuseAcknowledged,
    slbFrontendPortsUnique,
    slbSingleCluster,
    slbNotClusterCreated,
    clbPayByClcu,
    clbIntranetVswitch,
    istioPortNames,
    destinationPortSet,
    resourcesSet,
    productionReplicas,
    maxWeightStep,
];
