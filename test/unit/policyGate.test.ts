import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { POLICY_GATE } from "../../components/model";
import { PolicyGate } from "../../preflight/policyGate";
import { SECRET_SIG, settle } from "../support/mocks";

interface Registered {
    type: string;
    name: string;
    inputs: any;
}

async function mocked(): Promise<Registered[]> {
    const registered: Registered[] = [];
    await pulumi.runtime.setMocks(
        {
            newResource: (args) => {
                registered.push({ type: args.type, name: args.name, inputs: args.inputs });
                return {
                    id: `${args.name}-id`,
                    state: { ...args.inputs, made: `${args.name}-made` },
                };
            },
            call: (args) => args.inputs,
        },
        "gate-test",
        "unit",
        false,
    );
    return registered;
}

class Thing extends pulumi.CustomResource {
    declare readonly made: pulumi.Output<string>;
    constructor(
        name: string,
        props: Record<string, pulumi.Input<unknown>>,
        opts?: pulumi.CustomResourceOptions,
    ) {
        super("test:index:Thing", name, { ...props, made: undefined }, opts);
    }
}

class Parent extends pulumi.ComponentResource {
    constructor(name: string, opts: pulumi.ComponentResourceOptions) {
        super("test:index:Parent", name, {}, opts);
    }
}

describe("policy gate (program side)", () => {
    it("registers the desired state first, and every held resource only after it", async () => {
        const registered = await mocked();
        const gate = new PolicyGate();
        const parent = new Parent("root", { transformations: [gate.transformation] });
        const first = new Thing(
            "first",
            { weight: 20, nested: { list: [1, pulumi.output(2)] } },
            { parent },
        );
        new Thing(
            "second",
            { from: first.made, secret: pulumi.secret("s3cret") },
            { parent, dependsOn: [first] },
        );
        new (class extends pulumi.ProviderResource {})("kubernetes", "local", {}, { parent });
        await settle();
        assert.deepEqual(
            registered.filter((r) => r.type === "test:index:Thing"),
            [],
            "held until the gate exists",
        );

        gate.close();
        await settle();
        await settle();
        const order = registered.map((r) => `${r.type}::${r.name}`);
        const gateAt = order.indexOf(`${POLICY_GATE.type}::${POLICY_GATE.name}`);
        assert.ok(gateAt >= 0, order.join("\n"));
        for (const held of [
            "test:index:Parent::root",
            "test:index:Thing::first",
            "test:index:Thing::second",
        ])
            assert.ok(order.indexOf(held) > gateAt, order.join("\n"));

        // A secret anywhere makes the whole recorded state a secret.
        const recorded = registered[gateAt].inputs[POLICY_GATE.input];
        assert.ok(recorded[SECRET_SIG], "the desired state is stored as a secret");
        const desired = JSON.parse(recorded.value) as any[];
        assert.deepEqual(
            desired.map((r) => r.name),
            ["first", "second"],
            "providers are not held",
        );
        assert.deepEqual(desired[0].props, { weight: 20, nested: { list: [1, 2] } });
        assert.equal(
            desired[0].urn,
            "urn:pulumi:unit::gate-test::test:index:Parent$test:index:Thing::first",
        );
        // An output of a held resource is not known before that resource exists; a secret stays a secret.
        assert.equal(desired[1].props.from, POLICY_GATE.unknown);
        assert.equal(desired[1].props.secret, "s3cret");
        assert.throws(() => gate.close(), /already closed/);
        assert.throws(
            () => new Thing("late", { weight: 1 }, { parent }),
            /test:index:Thing late is declared after the policy gate closed/,
        );
    });
});
