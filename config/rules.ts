import { INGRESS_GATEWAY_NAMESPACE } from "../components/model";
import { DEFAULTS } from "./defaults";
import { Problems } from "./errors";
import { SLB_ID, SlbAddressType, SlbMode, Target, VSWITCH_ID } from "./keys";

export interface ParsedSlb {
    raw: Record<string, unknown>;
    mode?: SlbMode;
    addressType?: SlbAddressType;
    acknowledge?: boolean;
    otherListenerPorts: number[];
}

export interface ParsedAsm {
    raw: Record<string, unknown>;
    clusterIds?: string[];
    gatewayReplicas?: number;
    gatewayName?: string;
    useExistingGateway?: boolean;
}

/** What the cross-field rules see: every key as parsed (undefined where it was bad). */
export interface Parsed {
    target?: Target;
    gatewayPort?: number;
    slb: ParsedSlb;
    asm: ParsedAsm;
}

// The cross-field rules, each named for what it guards.

function clusterIdsRequiredOnAsm(p: Problems, { target, asm }: Parsed): void {
    if (target === "asm" && asm.raw.clusterIds === undefined) {
        p.fail(
            "asm.clusterIds",
            'is required when target is "asm": the ACK cluster ids the ingress gateway is deployed to, e.g. ["c0123456789abcdef"]',
        );
    }
}

function reuseNeedsIdAndAcknowledgment(p: Problems, { slb, gatewayPort }: Parsed): void {
    const id = slb.raw.id;
    if (slb.mode !== "reuse") {
        if (id !== undefined)
            p.fail(
                "slb.id",
                `is only used with slb.mode "reuse" (mode is "${slb.mode}"); remove it or set slb.mode to "reuse"`,
            );
        return;
    }
    if (typeof id !== "string" || !SLB_ID.test(id)) {
        p.fail(
            "slb.id",
            `must be the id of the CLB to reuse, like "lb-2ze8x7example1234" (lb- and 8..32 lowercase letters or digits); got ${p.show("slb.id", id)}`,
        );
    }
    const clb = p.name("slb.id", id);
    if (slb.raw.acknowledgeListenerOverride !== true && slb.acknowledge !== undefined) {
        p.fail(
            "slb.acknowledgeListenerOverride",
            `must be true when slb.mode is "reuse": the cloud controller takes over the listener on port ${gatewayPort ?? DEFAULTS.gatewayPort} of ${clb} and may delete listeners it does not manage; set it to true to accept that, or use slb.mode "create" or "managed"`,
        );
    }
    if (gatewayPort !== undefined && slb.otherListenerPorts.includes(gatewayPort)) {
        p.fail(
            "gatewayPort",
            `${gatewayPort} is already a frontend port of another Service on ${clb} (slb.otherListenerPorts); Services sharing a CLB need distinct ports`,
        );
    }
}

function vswitchOnlyForIntranet(p: Problems, { slb }: Parsed): void {
    const vswitchId = slb.raw.vswitchId;
    if (vswitchId !== undefined && typeof vswitchId === "string" && VSWITCH_ID.test(vswitchId)) {
        if (slb.mode === "reuse")
            p.fail(
                "slb.vswitchId",
                'is not used with slb.mode "reuse" (the reused CLB already has its network); remove it',
            );
        else if (slb.addressType !== "intranet")
            p.fail(
                "slb.vswitchId",
                `is only used with slb.addressType "intranet" (it is "${slb.addressType}"); remove it or set slb.addressType to "intranet"`,
            );
    }
    if (slb.mode === "create" && slb.addressType === "intranet" && vswitchId === undefined) {
        p.fail(
            "slb.vswitchId",
            'is required with slb.mode "create" and slb.addressType "intranet": a VPC CLB needs a vSwitch in the cluster\'s VPC, e.g. "vsw-bp1example12345678"',
        );
    }
}

function oneClbOneCluster(p: Problems, { slb, asm }: Parsed): void {
    const count = asm.clusterIds?.length ?? 0;
    if (count > 1 && (slb.mode === "create" || slb.mode === "reuse")) {
        p.fail(
            "asm.clusterIds",
            `lists ${count} clusters, but one CLB cannot be shared across clusters (slb.mode "${slb.mode}"); use one cluster id per stack or slb.mode "managed"`,
        );
    }
}

function existingGatewayKeepsItsClb(p: Problems, { slb, asm }: Parsed): void {
    if (asm.useExistingGateway !== true) return;
    const chosen = Object.entries(slb.raw).filter(
        ([key, value]) =>
            JSON.stringify(value) !==
            JSON.stringify((DEFAULTS.slb as Record<string, unknown>)[key]),
    );
    if (chosen.length > 0) {
        const gateway = p.name("asm.gatewayName", asm.gatewayName);
        p.fail(
            "slb",
            `is only for a gateway this stack creates; asm.useExistingGateway is true, so ${INGRESS_GATEWAY_NAMESPACE}/${gateway} keeps its own CLB: remove ${chosen.map(([key]) => `slb.${key}`).join(", ")}`,
        );
    }
}

function createNeedsCloud(p: Problems, { target, slb }: Parsed): void {
    if (target !== undefined && target !== "asm" && slb.mode === "create") {
        p.fail(
            "slb.mode",
            `"create" needs a cloud account, so it is only allowed with target "asm" (target is "${target}"); use "managed" here`,
        );
    }
}

export const CROSS_FIELD_RULES: readonly ((p: Problems, parsed: Parsed) => void)[] = [
    clusterIdsRequiredOnAsm,
    reuseNeedsIdAndAcknowledgment,
    vswitchOnlyForIntranet,
    oneClbOneCluster,
    existingGatewayKeepsItsClb,
    createNeedsCloud,
];
