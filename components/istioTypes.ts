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
 * The part of ASM's `IstioGateway` (served as istio.alibabacloud.com/v1beta1) this program sets. Field names and
 * types follow `alibabacloudservicemesh/v1/istiogateway_types.go` in aliyun/alibabacloud-servicemesh-api (the Go
 * package is `v1`; `IstioGatewayBasicConfiguration` is inlined in the spec). `cluster/istiogateway-crd.yaml` has them all.
 */
export interface IstioGatewaySpec {
    gatewayType: "ingress" | "egress";
    clusterIds: string[];
    /** Set with `minReplicas` = `maxReplicas`, as the SDK's `CreateASMGateway` example does, so ASM's HPA never moves it. */
    replicaCount: number;
    minReplicas: number;
    maxReplicas: number;
    serviceType: "ClusterIP" | "NodePort" | "LoadBalancer";
    serviceAnnotations?: Record<string, string>;
    /** Extra labels on the gateway pods; the Istio Gateway selects on one of them. */
    podLabels?: Record<string, string>;
    ports: GatewayServicePort[];
    resources?: {
        requests?: { cpu?: string; memory?: string };
        limits?: { cpu?: string; memory?: string };
    };
}

/** `IstioGatewayStatus` as ASM writes it: note the capitalised JSON keys of the Go type. */
export interface IstioGatewayStatus {
    Status?: string;
    GatewayAddress?: string[];
    ClusterIdGatewayAddressMap?: { ipAddress?: string; clusterId?: string }[];
    ErrorMessage?: string;
}
