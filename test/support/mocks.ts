import * as pulumi from "@pulumi/pulumi";
import { PROJECT } from "../../config";

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
export async function recordResources(config: Record<string, unknown> = {}, secretKeys: string[] = []): Promise<RecordedResource[]> {
    const recorded: RecordedResource[] = [];
    const allConfig: Record<string, string> = {};
    for (const [key, value] of Object.entries(config)) {
        allConfig[`${PROJECT}:${key}`] = typeof value === "string" ? value : JSON.stringify(value);
    }
    pulumi.runtime.setAllConfig(allConfig, secretKeys.map((k) => `${PROJECT}:${k}`));
    await pulumi.runtime.setMocks(
        {
            newResource(args: pulumi.runtime.MockResourceArgs) {
                recorded.push({ type: args.type, name: args.name, inputs: args.inputs, provider: args.provider });
                const id = args.type === "alicloud:slb/applicationLoadBalancer:ApplicationLoadBalancer" ? "lb-mockcreated0001" : `${args.name}-id`;
                const state = args.type === "alicloud:slb/applicationLoadBalancer:ApplicationLoadBalancer" ? { ...args.inputs, address: "203.0.113.10" } : args.inputs;
                return { id, state };
            },
            call(args: pulumi.runtime.MockCallArgs) {
                return args.inputs;
            },
        },
        PROJECT,
        "unit",
        false,
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
    if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}: ${found.map((r) => r.name).join(", ")}`);
    return found[0];
}
