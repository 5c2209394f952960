import type { IDestinationRule } from "@kubernetes-models/istio/networking.istio.io/v1/DestinationRule";
import type { IGateway } from "@kubernetes-models/istio/networking.istio.io/v1/Gateway";
import type { IVirtualService } from "@kubernetes-models/istio/networking.istio.io/v1/VirtualService";

/** Spec bodies generated from Istio's CRD schemas, so a misspelt field fails `tsc`, not the API server. */
export type GatewaySpec = NonNullable<IGateway["spec"]>;
export type DestinationRuleSpec = NonNullable<IDestinationRule["spec"]>;
export type VirtualServiceSpec = NonNullable<IVirtualService["spec"]>;
export type TcpRoute = NonNullable<VirtualServiceSpec["tcp"]>[number];
export type RouteDestination = NonNullable<TcpRoute["route"]>[number];

/** A port of the gateway's Kubernetes Service (the shape of corev1.ServicePort). */
export interface GatewayServicePort {
    name: string;
    port: number;
    targetPort: number;
    protocol: "TCP" | "UDP";
    nodePort?: number;
}

/**
 * The part of ASM's `IstioGateway` (istio.alibabacloud.com/v1beta1) this program sets. Field names and
 * types follow `istiogateway_types.go` in aliyun/alibabacloud-servicemesh-api (BasicConfig inlined in spec).
 */
export interface IstioGatewaySpec {
    gatewayType: "ingress" | "egress";
    clusterIds: string[];
    replicaCount: number;
    serviceType: "ClusterIP" | "NodePort" | "LoadBalancer";
    serviceAnnotations?: Record<string, string>;
    ports: GatewayServicePort[];
    resources?: {
        requests?: { cpu?: string; memory?: string };
        limits?: { cpu?: string; memory?: string };
    };
}
