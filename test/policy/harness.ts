import type {
    Policy,
    PolicyResource,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
} from "@pulumi/policy";
import * as fs from "fs";
import * as path from "path";
import { PROJECT } from "../../config";
import { TYPE_TOKENS } from "../../components/model";
import { SECRET_SIG, mockClbTags, mockedProgram } from "../support/mocks";
import { KUBECONFIG_KEYS, asmConfig } from "../support/settings";
import { tempDirs } from "../support/tempDirs";

/** A resource as a policy sees it. */
export interface StackResource {
    type: string;
    name: string;
    urn: string;
    props: Record<string, any>;
}

const reveal = (value: any): any =>
    Array.isArray(value)
        ? value.map(reveal)
        : value && typeof value === "object"
          ? value[SECRET_SIG]
              ? reveal(value.value)
              : Object.fromEntries(Object.entries(value).map(([k, v]) => [k, reveal(v)]))
          : value;

/**
 * The happy-path stack: the real program, run under mocks on the asm target with a reused,
 * acknowledged CLB, so every policy has something to look at. Tests mutate one field of a copy.
 */
export async function happyStack(
    stack = "dev",
    overrides: Record<string, unknown> = {},
): Promise<StackResource[]> {
    mockClbTags({ "lb-2ze8x7example1234": { owner: "platform-team" } });
    const { resources: recorded } = await mockedProgram(
        asmConfig({
            slb: {
                mode: "reuse",
                id: "lb-2ze8x7example1234",
                acknowledgeListenerOverride: true,
                otherListenerPorts: [80, 443],
            },
            ...overrides,
        }),
        KUBECONFIG_KEYS,
    );
    return recorded
        .filter((r) => r.type.startsWith("kubernetes:") || r.type.startsWith("alicloud:"))
        .map((r) => ({
            type: r.type,
            name: r.name,
            urn: `urn:pulumi:${stack}::asm-tcp-shift::${r.type}::${r.name}`,
            props: reveal(r.inputs),
        }));
}

const backends = tempDirs();

/**
 * Makes `resources` what the stack's last checkpoint holds (each with its props as inputs and outputs), in a file
 * backend of its own that PULUMI_BACKEND_URL names, as the engine's environment names it for the pack. `[]`: a stack
 * that was never deployed; `undefined`: no checkpoint at all.
 */
export function servedState(
    stack: string,
    resources: (StackResource & { delete?: boolean })[] | undefined,
): string {
    const dir = backends.make("asm-policy-state-");
    if (resources) {
        const file = path.join(dir, ".pulumi", "stacks", PROJECT, `${stack}.json`);
        fs.mkdirSync(path.dirname(file), { recursive: true });
        const checkpoint = {
            version: 3,
            checkpoint: {
                stack: `organization/${PROJECT}/${stack}`,
                latest: {
                    resources: resources.map((r) => ({
                        urn: r.urn,
                        custom: true,
                        type: r.type,
                        inputs: r.props,
                        outputs: r.props,
                        ...(r.delete ? { delete: true } : {}),
                    })),
                },
            },
        };
        fs.writeFileSync(file, JSON.stringify(checkpoint));
    }
    process.env.PULUMI_BACKEND_URL = `file://${dir}`;
    return dir;
}

export function find(resources: StackResource[], token: keyof typeof TYPE_TOKENS): StackResource {
    const found = resources.filter((r) => r.type === TYPE_TOKENS[token]);
    if (found.length !== 1) throw new Error(`expected one ${token}, got ${found.length}`);
    return found[0];
}

export function clone<T>(value: T): T {
    return JSON.parse(JSON.stringify(value));
}

/** Config a policy sees: its schema defaults, then the test's values (as the engine merges them). */
function configFor(policy: Policy, config: Record<string, unknown>): any {
    const defaults: Record<string, unknown> = {};
    for (const [key, schema] of Object.entries(policy.configSchema?.properties ?? {})) {
        if (typeof schema === "object" && schema && "default" in schema)
            defaults[key] = (schema as { default: unknown }).default;
    }
    return { ...defaults, ...config };
}

function resourceArgs(
    policy: Policy,
    r: StackResource,
    config: Record<string, unknown>,
): ResourceValidationArgs {
    return {
        type: r.type,
        props: r.props,
        urn: r.urn,
        name: r.name,
        opts: {
            protect: false,
            ignoreChanges: [],
            aliases: [],
            additionalSecretOutputs: [],
            customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
        } as any,
        stackTags: new Map(),
        isType: () => false,
        asType: () => undefined,
        getConfig: <T extends object>() => configFor(policy, config) as T,
        notApplicable: (reason?: string): never => {
            throw new Error(`not applicable: ${reason}`);
        },
    };
}

/** Runs one policy over a stack as the engine would and returns the violation messages. */
export async function violations(
    policy: ResourceValidationPolicy | StackValidationPolicy,
    resources: StackResource[],
    config: Record<string, unknown> = {},
): Promise<string[]> {
    const messages: string[] = [];
    const report = (message: string) => messages.push(message);
    if ("validateResource" in policy) {
        const validators = (
            Array.isArray(policy.validateResource)
                ? policy.validateResource
                : [policy.validateResource]
        ).filter((v) => v !== undefined);
        for (const r of resources)
            for (const validate of validators)
                await validate(resourceArgs(policy, r, config), report);
    } else {
        const args: StackValidationArgs = {
            resources: resources.map(
                (r) =>
                    ({
                        ...resourceArgs(policy, r, config),
                        dependencies: [],
                        propertyDependencies: {},
                    }) as unknown as PolicyResource,
            ),
            stackTags: new Map(),
            getConfig: <T extends object>() => configFor(policy, config) as T,
            notApplicable: (reason?: string): never => {
                throw new Error(`not applicable: ${reason}`);
            },
        } as StackValidationArgs;
        await (policy as StackValidationPolicy).validateStack(args, report);
    }
    return messages;
}
