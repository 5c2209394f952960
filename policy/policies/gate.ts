import type {
    Policies,
    Policy,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
} from "@pulumi/policy";
import { POLICY_GATE, PolicyGateResource } from "../../components/model";

/**
 * Every policy, also run on the program's policy gate (preflight/policyGate.ts): the one component the engine
 * sees before any resource, whose inputs are the desired state of every resource the program declared. Each
 * policy keeps its name, config and enforcement level; on the gate, a resource policy checks each desired
 * resource and a stack policy checks them all, so a mandatory violation stops the update before its first
 * resource step. Elsewhere each policy runs as written (each resource before its step, the stack after the
 * update). A value recorded as unknown (another resource's output, known only once that resource exists)
 * skips the check that needs it at the gate; that check runs when the resource registers or after the update,
 * as after a preview.
 */
export function withPolicyGate(policies: Policies): Policies {
    return policies.map((p) => gated(p));
}

function gated(policy: Policy): Policy {
    if ("validateStack" in policy && typeof policy.validateStack === "function") {
        const stackPolicy = policy as StackValidationPolicy;
        const both = {
            ...stackPolicy,
            validateResource: (args: ResourceValidationArgs, report: ReportViolation) => {
                if (args.type !== POLICY_GATE.type) return;
                const resources = desiredState(args).map((r) => stackResource(r, args));
                return skippingUnknowns(() =>
                    stackPolicy.validateStack(
                        { resources, getConfig: args.getConfig } as StackValidationArgs,
                        atGate(report),
                    ),
                );
            },
        };
        return both as unknown as Policy;
    }
    const resourcePolicy = policy as ResourceValidationPolicy;
    const validations =
        resourcePolicy.validateResource === undefined
            ? []
            : Array.isArray(resourcePolicy.validateResource)
              ? resourcePolicy.validateResource
              : [resourcePolicy.validateResource];
    return {
        ...resourcePolicy,
        validateResource: async (args: ResourceValidationArgs, report: ReportViolation) => {
            if (args.type !== POLICY_GATE.type) {
                for (const validate of validations) await validate(args, report);
                return;
            }
            for (const r of desiredState(args)) {
                const resourceArgs = {
                    ...args,
                    type: r.type,
                    name: r.name,
                    urn: r.urn,
                    props: r.props,
                } as ResourceValidationArgs;
                const named = (message: string) => report(`${r.name} (${r.type}): ${message}`);
                for (const validate of validations)
                    await skippingUnknowns(() => validate(resourceArgs, atGate(named)));
            }
        },
    } as ResourceValidationPolicy;
}

/** The gate's desired state, plain, with the unknown marker turned into values a check cannot read. */
export function desiredState(args: {
    props: Record<string, any>;
    urn: string;
}): Required<PolicyGateResource>[] {
    const text = args.props?.[POLICY_GATE.input];
    const plain = (typeof text === "string" ? JSON.parse(text) : []) as PolicyGateResource[];
    // urn:pulumi:<stack>::<project>::<type chain>::<name>; a resource whose URN was not known gets a flat one.
    const [prefix] = args.urn.split("::", 2);
    const project = args.urn.split("::")[1];
    return plain.map((r) => ({
        ...r,
        urn: r.urn ?? `${prefix}::${project}::${r.type}::${r.name}`,
        props: unknownChecking(r.props),
    }));
}

/** Thrown on reading a value that is unknown until another resource exists. */
export class UnknownAtGate extends Error {}

function unknownChecking<T>(value: T): T {
    if (!value || typeof value !== "object") return value;
    return new Proxy(value as object, {
        get(target, key, receiver) {
            const v = Reflect.get(target, key, receiver);
            if (v === POLICY_GATE.unknown) throw new UnknownAtGate(String(key));
            return typeof v === "object" && v !== null ? unknownChecking(v) : v;
        },
    }) as T;
}

async function skippingUnknowns(check: () => void | Promise<void>): Promise<void> {
    try {
        await check();
    } catch (err) {
        if (!(err instanceof UnknownAtGate)) throw err;
    }
}

function atGate(report: ReportViolation): ReportViolation {
    return (message, urn) => report(`before any change: ${message}`, urn);
}

function stackResource(
    r: Required<PolicyGateResource>,
    gate: ResourceValidationArgs,
): PolicyResource {
    return {
        type: r.type,
        name: r.name,
        urn: r.urn,
        props: r.props,
        opts: gate.opts,
        dependencies: [],
        propertyDependencies: {},
        isType: () => false,
        asType: () => undefined,
    } as unknown as PolicyResource;
}
