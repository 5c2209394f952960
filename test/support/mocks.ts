import * as pulumi from "@pulumi/pulumi";
import { PROJECT } from "../../config";
import { readStackConfig } from "../../config/secrets";
import { StackOutputs, defineStack } from "../../program";
import { makeProviders } from "../../program/providers";
import { TargetFacts, stackOwner } from "../../program/target";

/** How Pulumi marks a secret value on the wire (what the engine, and so the mocks, receive). */
export const SECRET_SIG = "4dabf18193072939515e22adb298388d";
export const SECRET_SIG_VALUE = "1b47061264138c4ac30d75fd1eb44270";

/** A resource as the mocked engine saw it registered. */
export interface RecordedResource {
    type: string;
    name: string;
    inputs: any;
    provider?: string;
}

/**
 * Installs Pulumi mocks that record every registered resource. Returns the live list; call again to
 * reset it (each call installs a fresh mock monitor).
 */
/** Tags the mocked alicloud API reports for a CLB id (see `mockClbTags`); absent ids are not found. */
const clbTags = new Map<string, Record<string, string>>();
let clbApiFailure: string | undefined;
export function mockClbTags(tags: Record<string, Record<string, string>>): void {
    clbTags.clear();
    clbApiFailure = undefined;
    for (const [id, t] of Object.entries(tags)) clbTags.set(id, t);
}
/** The mocked alicloud API refuses every CLB lookup with this message (as with bad credentials). */
export function mockClbApiFailure(message: string): void {
    clbApiFailure = message;
}

/** The keys the last {@link recordResources} stored as secrets, as Pulumi.<stack>.yaml would list them. */
let storedSecrets = new Set<string>();

/** The program's reading of the stack config under mocks: the config and stored secrets last recorded. */
export function mockedStackConfig(): ReturnType<typeof readStackConfig> {
    return readStackConfig(storedSecrets);
}

export async function recordResources(
    config: Record<string, unknown> = {},
    secretKeys: string[] = [],
): Promise<RecordedResource[]> {
    storedSecrets = new Set(secretKeys);
    const recorded: RecordedResource[] = [];
    const allConfig: Record<string, string> = {};
    for (const [key, value] of Object.entries(config)) {
        if (value === undefined) continue;
        allConfig[`${PROJECT}:${key}`] = typeof value === "string" ? value : JSON.stringify(value);
    }
    pulumi.runtime.setAllConfig(
        allConfig,
        secretKeys.map((k) => `${PROJECT}:${k}`),
    );
    await pulumi.runtime.setMocks(
        {
            newResource(args: pulumi.runtime.MockResourceArgs) {
                recorded.push({
                    type: args.type,
                    name: args.name,
                    inputs: args.inputs,
                    provider: args.provider,
                });
                const id =
                    args.type === "alicloud:slb/applicationLoadBalancer:ApplicationLoadBalancer"
                        ? "lb-mockcreated0001"
                        : `${args.name}-id`;
                const state =
                    args.type === "alicloud:slb/applicationLoadBalancer:ApplicationLoadBalancer"
                        ? { ...args.inputs, address: "203.0.113.10" }
                        : args.inputs;
                return { id, state };
            },
            call(args: pulumi.runtime.MockCallArgs) {
                if (
                    args.token ===
                    "alicloud:slb/getApplicationLoadBalancers:getApplicationLoadBalancers"
                ) {
                    if (clbApiFailure) throw new Error(clbApiFailure);
                    const ids: string[] = args.inputs.ids ?? [];
                    return {
                        ids,
                        balancers: ids
                            .filter((id) => clbTags.has(id))
                            .map((id) => ({ id, tags: clbTags.get(id) })),
                    };
                }
                return args.inputs;
            },
        },
        PROJECT,
        "unit",
        false,
        "organization",
    );
    return recorded;
}

/** Resolves an Output in a test (mocks resolve everything, so no value stays unknown). */
export function unwrap<T>(output: pulumi.Output<T> | pulumi.Input<T>): Promise<T> {
    return new Promise((resolve) => pulumi.output(output).apply((value) => resolve(value as T)));
}

/** Lets the mocked engine finish registering everything queued so far. */
export async function settle(): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 50));
}

export function byType(resources: RecordedResource[], type: string): RecordedResource[] {
    return resources.filter((r) => r.type === type);
}

export function one(resources: RecordedResource[], type: string): RecordedResource {
    const found = byType(resources, type);
    if (found.length !== 1)
        throw new Error(
            `expected one ${type}, found ${found.length}: ${found.map((r) => r.name).join(", ")}`,
        );
    return found[0];
}

/**
 * Runs the real program under mocks as index.ts does, with the given stack config and what the checks against the
 * target would have found (no live target here; `preflight/` has its own tests).
 */
export async function mockedProgram(
    config: Record<string, unknown>,
    secretKeys: string[] = [],
    facts: Partial<TargetFacts> = {},
): Promise<{ resources: RecordedResource[]; outputs: StackOutputs }> {
    const resources = await recordResources(config, secretKeys);
    const { settings, secrets } = mockedStackConfig();
    const outputs = defineStack(settings, makeProviders(settings, secrets), {
        owner: stackOwner(),
        ...facts,
    });
    await unwrap(outputs.virtualService);
    await settle();
    return { resources, outputs };
}
