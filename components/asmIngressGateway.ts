import * as alicloud from "@pulumi/alicloud";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import {
    APP_NAME,
    ASM_GATEWAY_API,
    INGRESS_GATEWAY_LABEL,
    INGRESS_GATEWAY_NAMESPACE,
    PROGRAM_ANNOTATIONS,
    SLB_ANNOTATIONS,
    TCP_PORT_NAME,
} from "./model";
import { IstioGatewaySpec } from "./istioTypes";

export type SlbConfig =
    | {
          /** A new CLB managed by this stack, handed to the cloud controller by id. */
          mode: "create";
          spec: string;
          addressType: "internet" | "intranet";
          /** Provider for the CLB; the only alicloud resource in the stack. */
          provider: alicloud.Provider;
      }
    | {
          /** An existing CLB; the cloud controller overrides its listeners on the gateway's ports. */
          mode: "reuse";
          id: string;
          /** Must be true: the user's acknowledgment that listeners on these ports are taken over. */
          acknowledgeListenerOverride: boolean;
          /** Frontend ports other Services already use on this CLB. */
          otherListenerPorts: readonly number[];
      }
    | {
          /** The cluster's cloud controller creates (and deletes) a CLB from these annotations. */
          mode: "managed";
          spec: string;
          addressType: "internet" | "intranet";
      };

export interface AsmIngressGatewayArgs {
    /** ACK clusters (by id) the ASM controller deploys the gateway to. */
    clusterIds: readonly string[];
    /** Port the gateway's LoadBalancer Service exposes and the gateway pods listen on. */
    port: number;
    replicas: number;
    slb: SlbConfig;
    resources?: IstioGatewaySpec["resources"];
}

const DEFAULT_RESOURCES: NonNullable<IstioGatewaySpec["resources"]> = {
    requests: { cpu: "200m", memory: "256Mi" },
    limits: { cpu: "2", memory: "1Gi" },
};

/**
 * ASM's ingress gateway as an `IstioGateway` CR on the ASM control plane. The ASM controller turns it
 * into a Deployment and a LoadBalancer Service in each cluster; the Service annotations pick the CLB.
 */
export class AsmIngressGateway extends pulumi.ComponentResource {
    public readonly istioGateway: k8s.apiextensions.CustomResource;
    /** The CLB this stack created (`create` mode only). */
    public readonly loadBalancer?: alicloud.slb.ApplicationLoadBalancer;
    /** CLB id where known before the cloud controller runs (`create` and `reuse`). */
    public readonly loadBalancerId: pulumi.Output<string | undefined>;
    /** Public or VPC address of the CLB where this stack knows it (`create` mode). */
    public readonly address: pulumi.Output<string | undefined>;
    public readonly port: number;

    constructor(name: string, args: AsmIngressGatewayArgs, opts?: pulumi.ComponentResourceOptions) {
        // Validated before registering anything, so a bad input leaves no half-built component behind.
        if (args.clusterIds.length === 0) throw new Error("AsmIngressGateway needs at least one cluster id");
        if (args.slb.mode !== "managed" && args.clusterIds.length > 1) {
            throw new Error(`a CLB cannot be shared across clusters; slb mode "${args.slb.mode}" allows one cluster id, got ${args.clusterIds.length}`);
        }
        if (args.slb.mode === "reuse" && !args.slb.acknowledgeListenerOverride) {
            throw new Error(`reusing CLB ${args.slb.id} overrides its listeners on port ${args.port}; acknowledgeListenerOverride must be true`);
        }
        super("asm-tcp-shift:gateway:AsmIngressGateway", name, {}, opts);
        this.port = args.port;

        const programAnnotations: Record<string, string> = { [PROGRAM_ANNOTATIONS.slbMode]: args.slb.mode };
        let serviceAnnotations: pulumi.Input<Record<string, string>>;
        switch (args.slb.mode) {
            case "create": {
                this.loadBalancer = new alicloud.slb.ApplicationLoadBalancer(
                    `${name}-slb`,
                    {
                        loadBalancerName: `${APP_NAME}-${INGRESS_GATEWAY_LABEL}`,
                        addressType: args.slb.addressType,
                        loadBalancerSpec: args.slb.spec,
                        paymentType: "PayAsYouGo",
                        tags: { "managed-by": "pulumi", app: APP_NAME },
                    },
                    { parent: this, provider: args.slb.provider },
                );
                serviceAnnotations = this.loadBalancer.id.apply((id) => ({
                    [SLB_ANNOTATIONS.id]: id,
                    // A CLB this stack created has no listeners but the gateway's, so the controller may own them.
                    [SLB_ANNOTATIONS.forceOverrideListeners]: "true",
                }));
                programAnnotations[PROGRAM_ANNOTATIONS.slbCreatedBy] = "pulumi";
                this.loadBalancerId = this.loadBalancer.id;
                this.address = this.loadBalancer.address;
                break;
            }
            case "reuse":
                serviceAnnotations = {
                    [SLB_ANNOTATIONS.id]: args.slb.id,
                    [SLB_ANNOTATIONS.forceOverrideListeners]: "true",
                };
                programAnnotations[PROGRAM_ANNOTATIONS.listenerOverrideAcknowledged] = String(args.slb.acknowledgeListenerOverride);
                programAnnotations[PROGRAM_ANNOTATIONS.otherListenerPorts] = args.slb.otherListenerPorts.join(",");
                programAnnotations[PROGRAM_ANNOTATIONS.slbCreatedBy] = "user";
                this.loadBalancerId = pulumi.output(args.slb.id);
                this.address = pulumi.output(undefined);
                break;
            case "managed":
                serviceAnnotations = {
                    [SLB_ANNOTATIONS.addressType]: args.slb.addressType,
                    [SLB_ANNOTATIONS.spec]: args.slb.spec,
                };
                this.loadBalancerId = pulumi.output(undefined);
                this.address = pulumi.output(undefined);
                break;
        }

        const spec: pulumi.Input<IstioGatewaySpec> = pulumi.output(serviceAnnotations).apply((annotations) => ({
            gatewayType: "ingress" as const,
            clusterIds: [...args.clusterIds],
            replicaCount: args.replicas,
            serviceType: "LoadBalancer" as const,
            serviceAnnotations: annotations,
            ports: [{ name: TCP_PORT_NAME, port: args.port, targetPort: args.port, protocol: "TCP" as const }],
            resources: args.resources ?? DEFAULT_RESOURCES,
        }));

        this.istioGateway = new k8s.apiextensions.CustomResource(
            `${name}-istiogateway`,
            {
                apiVersion: ASM_GATEWAY_API,
                kind: "IstioGateway",
                metadata: {
                    // ASM labels the gateway pods `istio: <name>`, which is what the Istio Gateway selects.
                    name: INGRESS_GATEWAY_LABEL,
                    namespace: INGRESS_GATEWAY_NAMESPACE,
                    labels: { "asm-gateway-type": "ingress" },
                    annotations: programAnnotations,
                },
                spec,
            },
            { parent: this },
        );
        this.registerOutputs({ loadBalancerId: this.loadBalancerId, address: this.address });
    }
}
