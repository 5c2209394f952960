import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ResourceValidationArgs, ResourceValidationPolicy } from "@pulumi/policy";
import { POLICY_GATE } from "../../components/model";
import * as policies from "../../policy/policies";
import { withPolicyGate } from "../../policy/policies/gate";
import { StackResource, clone, find, happyStack, violations } from "./harness";

const GATE_URN = `urn:pulumi:dev::asm-tcp-shift::${POLICY_GATE.type}::${POLICY_GATE.name}`;

/** What the pack's policies report when the engine hands them the policy gate holding `stack` as the desired state. */
async function atGate(
    stack: StackResource[],
    config: Record<string, Record<string, unknown>> = {},
): Promise<Record<string, string[]>> {
    const found: Record<string, string[]> = {};
    for (const policy of withPolicyGate(policies.allPolicies) as ResourceValidationPolicy[]) {
        const messages: string[] = [];
        const args = {
            type: POLICY_GATE.type,
            name: POLICY_GATE.name,
            urn: GATE_URN,
            props: {
                [POLICY_GATE.input]: JSON.stringify(
                    stack.map((r) => ({ type: r.type, name: r.name, urn: r.urn, props: r.props })),
                ),
            },
            getConfig: () => ({ ...schemaDefaults(policy), ...config[policy.name] }),
        } as unknown as ResourceValidationArgs;
        const validate = policy.validateResource as (
            a: ResourceValidationArgs,
            report: (m: string) => void,
        ) => Promise<void>;
        await validate(args, (m) => messages.push(m));
        if (messages.length > 0) found[policy.name] = messages;
    }
    return found;
}

/** Config as the engine hands a policy: its schema's defaults, then the stack's values. */
function schemaDefaults(policy: ResourceValidationPolicy): Record<string, unknown> {
    const props = (policy.configSchema?.properties ?? {}) as Record<string, { default?: unknown }>;
    return Object.fromEntries(
        Object.entries(props)
            .filter(([, schema]) => "default" in schema)
            .map(([key, schema]) => [key, schema.default]),
    );
}

describe("policy gate (pack side): every policy checks the whole desired state before any change", () => {
    it("passes the happy-path stack", async () => {
        assert.deepEqual(await atGate(await happyStack("prod", { replicas: 2 })), {});
    });

    it("reports a stack policy's violation at the gate, with the same message", async () => {
        const stack = clone(await happyStack("dev"));
        find(stack, "virtualService").props.spec.tcp[0].route[1].destination.subset = "v3";
        const expected = await violations(policies.virtualServiceSubsetsDefined, stack);
        assert.equal(expected.length, 1);
        assert.deepEqual((await atGate(stack))["virtualservice-subsets-defined"], [
            `before any change: ${expected[0]}`,
        ]);
    });

    it("reports a resource policy's violation at the gate, naming the resource", async () => {
        const stack = clone(await happyStack("dev"));
        const vs = find(stack, "virtualService");
        vs.props.spec.tcp[0].route[1].weight = 30;
        assert.deepEqual((await atGate(stack))["tcp-route-weights"], [
            `${vs.name} (${vs.type}): before any change: VirtualService tcp-echo: tcp[0] weights sum to 110, not 100 ([80,30]).`,
        ]);
    });

    it("hands each policy its own config", async () => {
        const stack = await happyStack("dev");
        const found = await atGate(stack, {
            "max-weight-step": { maxWeightStep: 5, previousV2Weight: 0 },
        });
        assert.match(
            found["max-weight-step"][0],
            /before any change: VirtualService tcp-echo: v2 weight moves 0 -> 20 \(20 points\); the largest allowed step is 5/,
        );
    });

    it("skips, without failing, a check that needs a value known only after another resource exists", async () => {
        const stack = clone(await happyStack("dev"));
        find(stack, "virtualService").props.spec.tcp = POLICY_GATE.unknown;
        find(stack, "istioGateway").props.spec = POLICY_GATE.unknown;
        const found = await atGate(stack);
        assert.equal(found["tcp-route-weights"], undefined);
        assert.equal(found["virtualservice-port-exposed"], undefined);
    });

    it("leaves every other resource's checks as they were", async () => {
        const stack = clone(await happyStack("dev"));
        const vs = find(stack, "virtualService");
        vs.props.spec.tcp[0].route[1].weight = 30;
        const wrapped = withPolicyGate([policies.tcpRouteWeights])[0] as ResourceValidationPolicy;
        assert.deepEqual(
            await violations(wrapped, stack),
            await violations(policies.tcpRouteWeights, stack),
        );
        for (const policy of withPolicyGate(policies.allPolicies)) {
            assert.equal(
                typeof (policy as { validateResource?: unknown }).validateResource,
                "function",
                policy.name,
            );
        }
    });
});
