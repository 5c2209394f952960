import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { APP_NAME, INGRESS_GATEWAY_LABEL, ISTIO_NETWORKING_API, TCP_PORT_NAME, TRACKS, VERSIONS, versionLabels } from "./model";
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
}

export const GATEWAY_NAME = `${APP_NAME}-gateway`;
export const DESTINATION_RULE_NAME = `${APP_NAME}-destination`;
export const VIRTUAL_SERVICE_NAME = APP_NAME;

/** Builds the TCP route: port match on the gateway, one weighted destination per subset. */
export function tcpRoute(args: Pick<TcpTrafficRoutingArgs, "serviceHost" | "servicePort" | "gatewayPort" | "weights">): TcpRoute {
    return {
        match: [{ port: args.gatewayPort }],
        route: TRACKS.map((track) => ({
            destination: { host: args.serviceHost, port: { number: args.servicePort }, subset: VERSIONS[track].subset },
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
            throw new Error(`weights must sum to 100; got ${args.weights.stable} + ${args.weights.canary}`);
        }
        super("asm-tcp-shift:routing:TcpTrafficRouting", name, {}, opts);
        this.weights = args.weights;
        const hosts = [...args.hosts];

        const gatewaySpec: GatewaySpec = {
            selector: { istio: INGRESS_GATEWAY_LABEL },
            servers: [{ port: { number: args.gatewayPort, name: TCP_PORT_NAME, protocol: "TCP" }, hosts }],
        };
        this.gateway = new k8s.apiextensions.CustomResource(
            `${name}-gateway`,
            {
                apiVersion: ISTIO_NETWORKING_API,
                kind: "Gateway",
                metadata: { name: GATEWAY_NAME, namespace: args.namespace },
                spec: gatewaySpec,
            },
            { parent: this },
        );

        const destinationRuleSpec: DestinationRuleSpec = {
            host: args.serviceHost,
            subsets: TRACKS.map((track) => ({ name: VERSIONS[track].subset, labels: { version: versionLabels(track).version } })),
        };
        this.destinationRule = new k8s.apiextensions.CustomResource(
            `${name}-destinationrule`,
            {
                apiVersion: ISTIO_NETWORKING_API,
                kind: "DestinationRule",
                metadata: { name: DESTINATION_RULE_NAME, namespace: args.namespace },
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
                apiVersion: ISTIO_NETWORKING_API,
                kind: "VirtualService",
                metadata: {
                    name: VIRTUAL_SERVICE_NAME,
                    namespace: args.namespace,
                    // The stack is the single owner of the weights: a hand edit (kubectl patch) takes field
                    // ownership under server-side apply, and without force the next up would stop on the conflict.
                    annotations: { "pulumi.com/patchForce": "true" },
                },
                spec: virtualServiceSpec,
            },
            // Subsets must exist before traffic is routed to them.
            { parent: this, dependsOn: [this.destinationRule, this.gateway] },
        );
        this.registerOutputs({ weights: this.weights });
    }
}
