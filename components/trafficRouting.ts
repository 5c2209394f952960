import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import {
    IstioApiVersion,
    OBJECT_NAMES,
    TCP_PORT_NAME,
    TRACKS,
    VERSIONS,
    istioNetworkingApi,
    ownedObjectAnnotations,
    versionLabels,
} from "./model";
import { DestinationRuleSpec, GatewaySpec, TcpRoute, VirtualServiceSpec } from "./istioTypes";
import { WeightSplit } from "./weights";

export interface TcpTrafficRoutingArgs {
    /** Namespace of the Istio resources on the ASM control plane (the same name as the workload's). */
    namespace: string;
    /** Host of the Service the route sends to. */
    serviceHost: string;
    servicePort: number;
    /** Port the ingress gateway accepts this TCP traffic on. */
    gatewayPort: number;
    /** Hosts the Gateway and VirtualService accept. */
    hosts: readonly string[];
    /** Percent of new connections per subset; must sum to 100. */
    weights: WeightSplit;
    /** Pod labels of the ingress gateway this traffic enters through; the Gateway selects exactly these. */
    gatewaySelector: Record<string, string>;
    /** networking.istio.io version the mesh serves (`v1` needs Istio/ASM 1.22 or later). */
    istioApiVersion: IstioApiVersion;
    /** Stamp of the stack that owns the objects (see `OWNER_ANNOTATION`). */
    owner: string;
    /** The DestinationRule's `trafficPolicy.connectionPool.tcp` durations (Go syntax); none set: no trafficPolicy. */
    connectionPool?: TcpConnectionPool;
}

/**
 * `trafficPolicy.connectionPool.tcp` durations. istiod writes the host-level ones into the tcp_proxy filter of
 * the gateway's listener, `max_downstream_connection_duration` and `idle_timeout`
 * (`buildOutboundNetworkFiltersWithWeightedClusters`, pilot/pkg/networking/core/networkfilter.go), which is
 * why they sit at the host level here: a subset's own trafficPolicy does not reach a weighted TCP route's filter.
 */
export interface TcpConnectionPool {
    /** Istio >= 1.15. */
    maxConnectionDuration?: string;
    /** Istio >= 1.21; `0s` disables it. */
    idleTimeout?: string;
}

export const GATEWAY_NAME = OBJECT_NAMES.gateway;
export const DESTINATION_RULE_NAME = OBJECT_NAMES.destinationRule;
export const VIRTUAL_SERVICE_NAME = OBJECT_NAMES.virtualService;

/** Builds the TCP route: port match on the gateway, one weighted destination per subset. */
export function tcpRoute(
    args: Pick<TcpTrafficRoutingArgs, "serviceHost" | "servicePort" | "gatewayPort" | "weights">,
): TcpRoute {
    return {
        match: [{ port: args.gatewayPort }],
        route: TRACKS.map((track) => ({
            destination: {
                host: args.serviceHost,
                port: { number: args.servicePort },
                subset: VERSIONS[track].subset,
            },
            weight: args.weights[track],
        })),
    };
}

/** Istio Gateway, DestinationRule and VirtualService of the TCP traffic shift, on the ASM control plane. */
export class TcpTrafficRouting extends pulumi.ComponentResource {
    public readonly gateway: k8s.apiextensions.CustomResource;
    public readonly destinationRule: k8s.apiextensions.CustomResource;
    public readonly virtualService: k8s.apiextensions.CustomResource;
    public readonly weights: WeightSplit;

    constructor(name: string, args: TcpTrafficRoutingArgs, opts?: pulumi.ComponentResourceOptions) {
        if (args.weights.stable + args.weights.canary !== 100) {
            throw new Error(
                `weights must sum to 100; got ${args.weights.stable} + ${args.weights.canary}`,
            );
        }
        if (Object.keys(args.gatewaySelector).length === 0) {
            // An empty selector binds the Gateway to every gateway pod of the mesh, other teams' included.
            throw new Error("the Gateway needs a non-empty gateway pod selector");
        }
        super("asm-tcp-shift:routing:TcpTrafficRouting", name, {}, opts);
        this.weights = args.weights;
        const hosts = [...args.hosts];
        const apiVersion = istioNetworkingApi(args.istioApiVersion);
        const annotations = ownedObjectAnnotations(args.owner);

        const gatewaySpec: GatewaySpec = {
            selector: { ...args.gatewaySelector },
            servers: [
                { port: { number: args.gatewayPort, name: TCP_PORT_NAME, protocol: "TCP" }, hosts },
            ],
        };
        this.gateway = new k8s.apiextensions.CustomResource(
            `${name}-gateway`,
            {
                apiVersion,
                kind: "Gateway",
                metadata: { name: GATEWAY_NAME, namespace: args.namespace, annotations },
                spec: gatewaySpec,
            },
            { parent: this },
        );

        const tcp = Object.fromEntries(
            Object.entries(args.connectionPool ?? {}).filter(([, v]) => v !== undefined),
        ) as TcpConnectionPool;
        const destinationRuleSpec: DestinationRuleSpec = {
            host: args.serviceHost,
            ...(Object.keys(tcp).length > 0 ? { trafficPolicy: { connectionPool: { tcp } } } : {}),
            subsets: TRACKS.map((track) => ({
                name: VERSIONS[track].subset,
                labels: { version: versionLabels(track).version },
            })),
        };
        this.destinationRule = new k8s.apiextensions.CustomResource(
            `${name}-destinationrule`,
            {
                apiVersion,
                kind: "DestinationRule",
                metadata: { name: DESTINATION_RULE_NAME, namespace: args.namespace, annotations },
                spec: destinationRuleSpec,
            },
            { parent: this },
        );

        const virtualServiceSpec: VirtualServiceSpec = {
            hosts,
            gateways: [GATEWAY_NAME],
            tcp: [tcpRoute(args)],
        };
        this.virtualService = new k8s.apiextensions.CustomResource(
            `${name}-virtualservice`,
            {
                apiVersion,
                kind: "VirtualService",
                metadata: { name: VIRTUAL_SERVICE_NAME, namespace: args.namespace, annotations },
                spec: virtualServiceSpec,
            },
            // Subsets must exist before traffic is routed to them.
            { parent: this, dependsOn: [this.destinationRule, this.gateway] },
        );
        this.registerOutputs({ weights: this.weights });
    }
}
