/**
 * The program as index.ts runs it, in the order a reader needs: the stack's config (config/), its providers
 * (providers.ts), the checks against the live target (target.ts, preflight/), then the components (components/)
 * and the stack's outputs.
 */
import * as pulumi from "@pulumi/pulumi";
import { Settings } from "../config";
import { readStackConfig } from "../config/secrets";
import {
    CanaryIngress,
    CanaryProviders,
    SlbConfig,
    TcpEchoCanary,
    TcpEchoCanaryArgs,
} from "../components";
import { INGRESS_GATEWAY_NAMESPACE, VERSIONS } from "../components/model";
import { checkRolloutLock } from "../preflight/rolloutLock";
import { makeProviders } from "./providers";
import { LOCAL_DATA_PLANE_ADDRESS, TargetFacts, checkStackTarget } from "./target";

/** What `pulumi stack output` shows; the rollout tools read `v2Weight`, `gatewayPort` and `ingressAddress`. */
export interface StackOutputs {
    v2Weight: number;
    weights: Record<string, number>;
    gatewayPort: number;
    namespace: string;
    images: Record<string, string> | pulumi.Output<Record<string, string>>;
    virtualService: pulumi.Output<string>;
    /** The gateway's address, absent until known (ASM reports it in the IstioGateway status once the CLB has one). */
    ingressAddress: pulumi.Output<string | undefined>;
    /** Where the address comes from, on targets where it is known only after the cloud has made the CLB. */
    ingressAddressHint?: string;
    ncCommand: pulumi.Output<string | undefined>;
    gatewayName: string;
    slbMode: string;
    slbId: pulumi.Output<string>;
}

/** Maps the stack's settings to the component's arguments. */
export function canaryArgs(
    settings: Settings,
    providers: CanaryProviders,
    facts: TargetFacts,
): TcpEchoCanaryArgs {
    return {
        namespace: settings.namespace,
        images: settings.images,
        secretImages: settings.secretImages ?? false,
        replicas: settings.replicas,
        servicePort: settings.servicePort,
        gatewayPort: settings.gatewayPort,
        hosts: settings.hosts,
        weights: settings.weights,
        istioApiVersion: settings.istioApiVersion,
        connectionPool: settings.connectionPool,
        ingress: canaryIngress(settings, providers, facts),
        providers,
        owner: facts.owner,
    };
}

function canaryIngress(
    settings: Settings,
    providers: CanaryProviders,
    facts: TargetFacts,
): CanaryIngress {
    const name = settings.asm.gatewayName;
    if (settings.asm.useExistingGateway) {
        if (!facts.existingGateway)
            throw new Error("asm.useExistingGateway needs the preflight's reading of the gateway");
        return { kind: "existing", name, ...facts.existingGateway };
    }
    return {
        kind: "owned",
        name,
        clusterIds: settings.asm.clusterIds,
        replicas: settings.asm.gatewayReplicas,
        slb: slbConfig(settings, providers),
    };
}

function slbConfig(settings: Settings, providers: CanaryProviders): SlbConfig {
    const { slb } = settings;
    switch (slb.mode) {
        case "create":
            if (!providers.alicloud)
                throw new Error('slb.mode "create" needs an alicloud provider');
            return {
                mode: "create",
                addressType: slb.addressType,
                vswitchId: slb.vswitchId,
                provider: providers.alicloud,
            };
        case "reuse":
            return {
                mode: "reuse",
                id: slb.id!,
                acknowledgeListenerOverride: slb.acknowledgeListenerOverride,
                otherListenerPorts: slb.otherListenerPorts,
            };
        case "managed":
            return { mode: "managed", addressType: slb.addressType, vswitchId: slb.vswitchId };
    }
}

export function defineStack(
    settings: Settings,
    providers: CanaryProviders,
    facts: TargetFacts,
): StackOutputs {
    const canary = new TcpEchoCanary("tcp-echo", canaryArgs(settings, providers, facts));
    // Off the cloud nothing but the local data plane serves the gateway; it answers on loopback.
    const address = canary.ingressAddress.apply(
        (a) => a ?? (settings.target === "asm" ? undefined : LOCAL_DATA_PLANE_ADDRESS),
    );
    const serviceName = `istio-${settings.asm.gatewayName}`;
    const images: Record<string, string> = {
        [VERSIONS.stable.subset]: settings.images.stable,
        [VERSIONS.canary.subset]: settings.images.canary,
    };
    return {
        v2Weight: settings.v2Weight,
        weights: {
            [VERSIONS.stable.subset]: settings.weights.stable,
            [VERSIONS.canary.subset]: settings.weights.canary,
        },
        gatewayPort: settings.gatewayPort,
        namespace: settings.namespace,
        images: settings.secretImages ? pulumi.secret<Record<string, string>>(images) : images,
        virtualService: pulumi.interpolate`${settings.namespace}/${canary.routing.virtualService.metadata.name}`,
        ingressAddress: address,
        ingressAddressHint:
            settings.target === "asm" &&
            (settings.asm.useExistingGateway || settings.slb.mode !== "create")
                ? `ASM reports the address in the status of IstioGateway ${INGRESS_GATEWAY_NAMESPACE}/${settings.asm.gatewayName} once its CLB has one; \`pulumi refresh\` then sets ingressAddress. On the ACK cluster: kubectl -n ${INGRESS_GATEWAY_NAMESPACE} get svc ${serviceName} -o jsonpath='{.status.loadBalancer.ingress[0].ip}'`
                : undefined,
        ncCommand: address.apply((a) =>
            a
                ? `for i in $(seq 1 10); do echo hello | nc ${a} ${settings.gatewayPort}; done`
                : undefined,
        ),
        gatewayName: settings.asm.gatewayName,
        slbMode: settings.asm.useExistingGateway ? "existing-gateway" : settings.slb.mode,
        slbId: canary.loadBalancerId.apply(
            (id) =>
                id ??
                (settings.asm.useExistingGateway
                    ? "(the existing gateway's own)"
                    : "(chosen by the cluster's cloud controller)"),
        ),
    };
}

/** The whole program, as index.ts runs it: settings, then the checks against the target, then the resources. */
export async function main(): Promise<StackOutputs> {
    // Config is validated before the first resource is registered, so a bad value changes nothing.
    const { settings, secrets } = readStackConfig();
    // Before the providers, the first resources: an update is refused while someone else's rollout holds the stack.
    await checkRolloutLock(pulumi.getStack());
    const providers = makeProviders(settings, secrets);
    const facts = await checkStackTarget(settings, providers);
    return defineStack(settings, providers, facts);
}
