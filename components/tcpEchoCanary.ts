import type * as alicloud from "@pulumi/alicloud";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { AsmIngressGateway, SlbConfig } from "./asmIngressGateway";
import { EchoDeployment } from "./echoDeployment";
import { EchoService } from "./echoService";
import { APP_NAME, IstioApiVersion, TRACKS, Track } from "./model";
import { TcpConnectionPool, TcpTrafficRouting } from "./trafficRouting";
import { WeightSplit } from "./weights";

/** The clusters the stack talks to: ACK for workloads, ASM for Istio config, alicloud for a created CLB. */
export interface CanaryProviders {
    /** Data plane (ACK): Deployments and the Service. */
    dataPlane: k8s.Provider;
    /** Control plane (ASM): Gateway, DestinationRule, VirtualService, IstioGateway. */
    controlPlane: k8s.Provider;
    /** Only when the stack creates its CLB. */
    alicloud?: alicloud.Provider;
}

/** The ingress gateway traffic enters through: one the stack declares, or one it only routes through. */
export type CanaryIngress =
    | {
          /** The stack creates and owns the IstioGateway `name`. */
          kind: "owned";
          name: string;
          clusterIds: readonly string[];
          replicas: number;
          slb: SlbConfig;
      }
    | {
          /** An IstioGateway someone else owns: the stack routes through it and never changes it. */
          kind: "existing";
          name: string;
          /** Labels of its pods, read from the live gateway (see the preflight). */
          podSelector: Record<string, string>;
          /** Its address, where ASM reports one. */
          address?: string;
      };

export interface TcpEchoCanaryArgs {
    /** Namespace of the workload (ACK) and of the Istio objects (ASM): the same name on both. */
    namespace: string;
    /** Pinned image per track. */
    images: Readonly<Record<Track, string>>;
    /** The images are secrets in the stack config: keep them secret in the Deployments (and so in the state). */
    secretImages?: boolean;
    /** Pods per track. */
    replicas: number;
    /** Port of the echo server and of its Service. */
    servicePort: number;
    /** Port the gateway accepts this TCP traffic on. */
    gatewayPort: number;
    /** Hosts of the Gateway server and the VirtualService. */
    hosts: readonly string[];
    /** Percent of new connections per track; sums to 100. */
    weights: WeightSplit;
    /** networking.istio.io version the mesh serves. */
    istioApiVersion: IstioApiVersion;
    /** The DestinationRule's `trafficPolicy.connectionPool.tcp` durations; unset keeps Istio's defaults. */
    connectionPool?: TcpConnectionPool;
    ingress: CanaryIngress;
    providers: CanaryProviders;
    /** Stamp of the stack, on every object it creates (see `OWNER_ANNOTATION`). */
    owner: string;
}

/** The whole TCP traffic shift of ASM's tcp-echo guide: two versions, a Service, routing and the ingress gateway. */
export class TcpEchoCanary extends pulumi.ComponentResource {
    public readonly deployments: Readonly<Record<Track, EchoDeployment>>;
    public readonly service: EchoService;
    public readonly routing: TcpTrafficRouting;
    /** The gateway this stack owns; absent when it routes through an existing one. */
    public readonly ingress?: AsmIngressGateway;
    /** Gateway address where known (created CLB, CR status, or the existing gateway's). */
    public readonly ingressAddress: pulumi.Output<string | undefined>;
    public readonly loadBalancerId: pulumi.Output<string | undefined>;
    public readonly weights: WeightSplit;

    constructor(name: string, args: TcpEchoCanaryArgs, opts?: pulumi.ComponentResourceOptions) {
        if (
            args.ingress.kind === "owned" &&
            args.ingress.slb.mode === "create" &&
            !args.providers.alicloud
        ) {
            throw new Error('slb mode "create" needs an alicloud provider');
        }
        super("asm-tcp-shift:index:TcpEchoCanary", name, {}, opts);
        const { providers, owner } = args;
        this.weights = args.weights;
        const onDataPlane = { parent: this, provider: providers.dataPlane };
        const onControlPlane = { parent: this, provider: providers.controlPlane };

        const deployments = {} as Record<Track, EchoDeployment>;
        for (const track of TRACKS) {
            deployments[track] = new EchoDeployment(
                `${name}-${track}`,
                {
                    track,
                    namespace: args.namespace,
                    image: args.secretImages
                        ? pulumi.secret(args.images[track])
                        : args.images[track],
                    port: args.servicePort,
                    replicas: args.replicas,
                    owner,
                },
                onDataPlane,
            );
        }
        this.deployments = deployments;
        this.service = new EchoService(
            `${name}-svc`,
            { namespace: args.namespace, port: args.servicePort, owner },
            onDataPlane,
        );

        let gatewaySelector: Record<string, string>;
        if (args.ingress.kind === "owned") {
            this.ingress = new AsmIngressGateway(
                `${name}-ingress`,
                {
                    name: args.ingress.name,
                    clusterIds: args.ingress.clusterIds,
                    port: args.gatewayPort,
                    replicas: args.ingress.replicas,
                    slb: args.ingress.slb,
                    owner,
                },
                onControlPlane,
            );
            gatewaySelector = this.ingress.podSelector;
            this.ingressAddress = this.ingress.address;
            this.loadBalancerId = this.ingress.loadBalancerId;
        } else {
            gatewaySelector = args.ingress.podSelector;
            this.ingressAddress = pulumi.output(args.ingress.address);
            this.loadBalancerId = pulumi.output(undefined);
        }

        this.routing = new TcpTrafficRouting(
            `${name}-routing`,
            {
                namespace: args.namespace,
                serviceHost: APP_NAME,
                servicePort: args.servicePort,
                gatewayPort: args.gatewayPort,
                hosts: args.hosts,
                weights: args.weights,
                gatewaySelector,
                istioApiVersion: args.istioApiVersion,
                connectionPool: args.connectionPool,
                owner,
            },
            onControlPlane,
        );
        this.registerOutputs({ weights: this.weights, ingressAddress: this.ingressAddress });
    }
}
