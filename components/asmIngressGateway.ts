import type * as alicloud from "@pulumi/alicloud";
import { loadAlicloud } from "./alicloud";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import {
    APP_NAME,
    ASM_GATEWAY_API,
    CLB_CHARGE_TYPE,
    CLB_TAGS,
    GATEWAY_POD_LABEL,
    INGRESS_GATEWAY_NAMESPACE,
    PROGRAM_ANNOTATIONS,
    SLB_ANNOTATIONS,
    TCP_PORT_NAME,
    ownedObjectAnnotations,
} from "./model";
import { IstioGatewaySpec, IstioGatewayStatus } from "./istioTypes";

export type SlbConfig =
    | {
          /** A new pay-by-CLCU CLB managed by this stack, handed to the cloud controller by id. */
          mode: "create";
          addressType: "internet" | "intranet";
          /** vSwitch in the cluster's VPC; required for an intranet CLB. */
          vswitchId?: string;
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
          /** The cluster's cloud controller creates (and deletes) a pay-by-CLCU CLB from these annotations. */
          mode: "managed";
          addressType: "internet" | "intranet";
          /** vSwitch of an intranet CLB; the controller picks the cluster's when absent. */
          vswitchId?: string;
      };

export interface AsmIngressGatewayArgs {
    /** Name of the IstioGateway in istio-system; ASM names its Service and Deployment `istio-<name>`. */
    name: string;
    /** ACK clusters (by id) the ASM controller deploys the gateway to. */
    clusterIds: readonly string[];
    /** Port the gateway's LoadBalancer Service exposes and the gateway pods listen on. */
    port: number;
    /** Gateway pods per cluster, fixed: ASM's autoscaler gets the same minimum and maximum. */
    replicas: number;
    slb: SlbConfig;
    /** Stamp of the stack that owns the CR (see `OWNER_ANNOTATION`). */
    owner: string;
    resources?: IstioGatewaySpec["resources"];
}

const DEFAULT_RESOURCES: NonNullable<IstioGatewaySpec["resources"]> = {
    requests: { cpu: "200m", memory: "256Mi" },
    limits: { cpu: "2", memory: "1Gi" },
};

/** The pod label (from `spec.podLabels`) that binds an Istio Gateway to exactly this gateway's pods. */
export function gatewayPodSelector(gatewayName: string): Record<string, string> {
    return { [GATEWAY_POD_LABEL]: gatewayName };
}

/** The address ASM reports in the CR status once the gateway's CLB has one. */
export function statusAddress(status: IstioGatewayStatus | undefined): string | undefined {
    return (
        status?.GatewayAddress?.find(Boolean) ??
        status?.ClusterIdGatewayAddressMap?.find((a) => a.ipAddress)?.ipAddress
    );
}

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
    /** Address of the gateway: the created CLB's, else what ASM reports in the CR status (absent until it does). */
    public readonly address: pulumi.Output<string | undefined>;
    /** Labels that select this gateway's pods and no other gateway's. */
    public readonly podSelector: Record<string, string>;
    public readonly port: number;

    constructor(name: string, args: AsmIngressGatewayArgs, opts?: pulumi.ComponentResourceOptions) {
        // Validated before registering anything, so a bad input leaves no half-built component behind.
        if (args.clusterIds.length === 0)
            throw new Error("AsmIngressGateway needs at least one cluster id");
        if (args.slb.mode !== "managed" && args.clusterIds.length > 1) {
            throw new Error(
                `a CLB cannot be shared across clusters; slb mode "${args.slb.mode}" allows one cluster id, got ${args.clusterIds.length}`,
            );
        }
        if (args.slb.mode === "reuse" && !args.slb.acknowledgeListenerOverride) {
            throw new Error(
                `reusing CLB ${args.slb.id} overrides its listeners on port ${args.port}; acknowledgeListenerOverride must be true`,
            );
        }
        if (
            args.slb.mode === "create" &&
            args.slb.addressType === "intranet" &&
            !args.slb.vswitchId
        ) {
            throw new Error("an intranet CLB needs a vSwitch id in the cluster's VPC");
        }
        super("asm-tcp-shift:gateway:AsmIngressGateway", name, {}, opts);
        this.port = args.port;
        this.podSelector = gatewayPodSelector(args.name);

        const programAnnotations: Record<string, string> = {
            [PROGRAM_ANNOTATIONS.slbMode]: args.slb.mode,
        };
        let serviceAnnotations: pulumi.Input<Record<string, string>>;
        let createdAddress: pulumi.Output<string | undefined> | undefined;
        switch (args.slb.mode) {
            case "create": {
                this.loadBalancer = new (loadAlicloud().slb.ApplicationLoadBalancer)(
                    `${name}-slb`,
                    {
                        loadBalancerName: `${APP_NAME}-${args.name}`,
                        addressType: args.slb.addressType,
                        // Pay-by-specification is no longer sold; with PayByCLCU no spec is set (it would be ignored).
                        instanceChargeType: CLB_CHARGE_TYPE,
                        paymentType: "PayAsYouGo",
                        vswitchId: args.slb.vswitchId,
                        // The cloud controller tags every CLB it binds by id with kubernetes.reused.by.user=true
                        // (LoadBalancerManager.Update); declaring the tag keeps refresh from showing drift and up from removing it.
                        tags: {
                            "managed-by": "pulumi",
                            app: APP_NAME,
                            [CLB_TAGS.reusedByUser]: "true",
                        },
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
                createdAddress = this.loadBalancer.address;
                break;
            }
            case "reuse":
                serviceAnnotations = {
                    [SLB_ANNOTATIONS.id]: args.slb.id,
                    [SLB_ANNOTATIONS.forceOverrideListeners]: "true",
                };
                programAnnotations[PROGRAM_ANNOTATIONS.listenerOverrideAcknowledged] = String(
                    args.slb.acknowledgeListenerOverride,
                );
                programAnnotations[PROGRAM_ANNOTATIONS.otherListenerPorts] =
                    args.slb.otherListenerPorts.join(",");
                programAnnotations[PROGRAM_ANNOTATIONS.slbCreatedBy] = "user";
                this.loadBalancerId = pulumi.output(args.slb.id);
                break;
            case "managed":
                serviceAnnotations = {
                    [SLB_ANNOTATIONS.addressType]: args.slb.addressType,
                    // The controller's default when unset, written out so nobody adds a spec that would be ignored.
                    [SLB_ANNOTATIONS.chargeType]: CLB_CHARGE_TYPE,
                    ...(args.slb.vswitchId
                        ? { [SLB_ANNOTATIONS.vswitchId]: args.slb.vswitchId }
                        : {}),
                };
                this.loadBalancerId = pulumi.output(undefined);
                break;
        }

        const spec: pulumi.Input<IstioGatewaySpec> = pulumi
            .output(serviceAnnotations)
            .apply((annotations) => ({
                gatewayType: "ingress" as const,
                clusterIds: [...args.clusterIds],
                replicaCount: args.replicas,
                minReplicas: args.replicas,
                maxReplicas: args.replicas,
                serviceType: "LoadBalancer" as const,
                serviceAnnotations: annotations,
                podLabels: this.podSelector,
                ports: [
                    {
                        name: TCP_PORT_NAME,
                        port: args.port,
                        targetPort: args.port,
                        protocol: "TCP" as const,
                    },
                ],
                resources: args.resources ?? DEFAULT_RESOURCES,
            }));

        this.istioGateway = new k8s.apiextensions.CustomResource(
            `${name}-istiogateway`,
            {
                apiVersion: ASM_GATEWAY_API,
                kind: "IstioGateway",
                metadata: {
                    name: args.name,
                    namespace: INGRESS_GATEWAY_NAMESPACE,
                    labels: { "asm-gateway-type": "ingress" },
                    annotations: { ...programAnnotations, ...ownedObjectAnnotations(args.owner) },
                },
                spec,
                // Declared (never set) so the CR's status becomes an output: ASM reports the gateway address there.
                status: undefined,
            },
            { parent: this },
        );
        const status = (
            this.istioGateway as unknown as {
                status: pulumi.Output<IstioGatewayStatus | undefined>;
            }
        ).status;
        const reported = pulumi.output(status).apply(statusAddress);
        this.address = createdAddress ?? reported;
        this.registerOutputs({ loadBalancerId: this.loadBalancerId, address: this.address });
    }
}
