import * as alicloud from "@pulumi/alicloud";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { Settings } from "../config";
import { AsmIngressGateway, SlbConfig } from "./asmIngressGateway";
import { EchoDeployment } from "./echoDeployment";
import { EchoService } from "./echoService";
import { APP_NAME, TRACKS, Track } from "./model";
import { TcpTrafficRouting } from "./trafficRouting";
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

export interface TcpEchoCanaryArgs {
    settings: Settings;
    providers: CanaryProviders;
    /** The images are secrets in the stack config: keep them secret in the Deployments (and so in the state). */
    secretImages?: boolean;
}

/** The whole TCP traffic shift of ASM's tcp-echo guide: two versions, a Service, routing and the ingress gateway. */
export class TcpEchoCanary extends pulumi.ComponentResource {
    public readonly deployments: Readonly<Record<Track, EchoDeployment>>;
    public readonly service: EchoService;
    public readonly routing: TcpTrafficRouting;
    public readonly ingress: AsmIngressGateway;
    public readonly weights: WeightSplit;

    constructor(name: string, args: TcpEchoCanaryArgs, opts?: pulumi.ComponentResourceOptions) {
        super("asm-tcp-shift:index:TcpEchoCanary", name, {}, opts);
        const { settings, providers } = args;
        this.weights = settings.weights;
        const onDataPlane = { parent: this, provider: providers.dataPlane };
        const onControlPlane = { parent: this, provider: providers.controlPlane };

        const deployments = {} as Record<Track, EchoDeployment>;
        for (const track of TRACKS) {
            deployments[track] = new EchoDeployment(
                `${name}-${track}`,
                {
                    track,
                    namespace: settings.namespace,
                    image: args.secretImages ? pulumi.secret(settings.images[track]) : settings.images[track],
                    port: settings.servicePort,
                    replicas: settings.replicas,
                },
                onDataPlane,
            );
        }
        this.deployments = deployments;
        this.service = new EchoService(`${name}-svc`, { namespace: settings.namespace, port: settings.servicePort }, onDataPlane);

        this.routing = new TcpTrafficRouting(
            `${name}-routing`,
            {
                namespace: settings.namespace,
                serviceHost: APP_NAME,
                servicePort: settings.servicePort,
                gatewayPort: settings.gatewayPort,
                hosts: settings.hosts,
                weights: settings.weights,
            },
            onControlPlane,
        );

        this.ingress = new AsmIngressGateway(
            `${name}-ingress`,
            {
                clusterIds: settings.asm.clusterIds,
                port: settings.gatewayPort,
                replicas: settings.asm.gatewayReplicas,
                slb: slbConfig(settings, providers),
            },
            onControlPlane,
        );
        this.registerOutputs({ weights: this.weights });
    }
}

function slbConfig(settings: Settings, providers: CanaryProviders): SlbConfig {
    const { slb } = settings;
    switch (slb.mode) {
        case "create":
            if (!providers.alicloud) throw new Error('slb.mode "create" needs an alicloud provider');
            return { mode: "create", spec: slb.spec, addressType: slb.addressType, provider: providers.alicloud };
        case "reuse":
            return { mode: "reuse", id: slb.id!, acknowledgeListenerOverride: slb.acknowledgeListenerOverride, otherListenerPorts: slb.otherListenerPorts };
        case "managed":
            return { mode: "managed", spec: slb.spec, addressType: slb.addressType };
    }
}
