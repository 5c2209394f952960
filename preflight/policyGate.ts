import * as pulumi from "@pulumi/pulumi";
import { POLICY_GATE, PolicyGateResource } from "../components/model";

/**
 * The policy gate: every mandatory policy passes before the first resource changes, in one engine run.
 *
 * During an update the engine runs a pack's resource policies on each resource just before that resource's
 * step, and its stack policies only after every step, so a violation found late leaves earlier changes in
 * place. The gate closes that gap without a separate preview: every resource the program declares is held
 * back (`dependsOn` the gate) while each custom resource's type, name and inputs are recorded; once the
 * program has declared everything, one component holding that desired state is registered first. The engine
 * hands it to the pack, whose policies (policy/policies/gate.ts) check the whole desired state, resource and
 * stack policies alike, before the component's step; a mandatory violation fails the run there, before any
 * resource (or a component's recorded outputs) was written. Only then are the held resources registered, and
 * the pack checks each again as usual. Providers are not held (the program's checks of the live target call
 * through them); they hold no more than their config. A value that comes from another resource's output is not
 * known before that resource exists: it is recorded as unknown, as a preview sees it, and its policies run when
 * the resource registers (resource policies) and after the update (stack policies), as they would after a preview.
 */
export class PolicyGate {
    /** Every resource held, with what its URN is made of. */
    private readonly seen = new Map<
        pulumi.Resource,
        { type: string; name: string; parent?: pulumi.Resource }
    >();
    /** The custom resources among them, in declaration order, with their inputs. */
    private readonly held: { resource: pulumi.Resource; props: pulumi.Inputs }[] = [];
    private sawSecret = false;
    private closed = false;
    private release!: (gate: pulumi.Resource) => void;
    /** What every held resource depends on: the gate component, once it exists and the pack passed it. */
    private readonly opened = new Promise<pulumi.Resource>((resolve) => {
        this.release = resolve;
    });

    /** Starts holding every resource declared from now on, in the whole stack. */
    install(): void {
        pulumi.runtime.registerStackTransformation(this.transformation);
    }

    /** Holds one resource back, recording a custom resource's inputs (providers, reads and Pulumi's own resources pass). */
    readonly transformation: pulumi.ResourceTransformation = (args) => {
        if (args.resource instanceof pulumi.ProviderResource || args.opts.id !== undefined)
            return undefined;
        if (args.type.startsWith("pulumi:") || args.type === POLICY_GATE.type) return undefined;
        // One declared later (in an apply, say) would skip the gate's check: refuse it instead.
        if (this.closed)
            throw new Error(
                `${args.type} ${args.name} is declared after the policy gate closed; declare every resource before it`,
            );
        this.seen.set(args.resource, {
            type: args.type,
            name: args.name,
            parent: args.opts.parent,
        });
        if (args.resource instanceof pulumi.CustomResource)
            this.held.push({ resource: args.resource, props: args.props });
        // The SDK flattens nested lists, promises and outputs in `dependsOn`; the gate is a promise until it exists.
        const dependsOn = [
            args.opts.dependsOn ?? [],
            this.opened,
        ] as unknown as pulumi.Input<pulumi.Resource>[];
        return { props: args.props, opts: { ...args.opts, dependsOn } };
    };

    /** Registers the gate with the desired state recorded so far; the held resources follow once it passed. */
    close(): pulumi.Resource {
        if (this.closed) throw new Error("the policy gate was already closed");
        this.closed = true;
        // A secret anywhere makes the whole recorded state a secret (the state file encrypts it).
        const desiredState = pulumi
            .output(Promise.all(this.held.map((r) => this.describe(r))))
            .apply((all: PolicyGateResource[]) => {
                const text = JSON.stringify(all);
                return this.sawSecret ? pulumi.secret(text) : pulumi.output(text);
            });
        const gate = new GateComponent({ [POLICY_GATE.input]: desiredState });
        // Depending on a component waits only for its custom children (it has none): wait for its own URN,
        // which the engine returns once the pack has passed it and its step is done.
        gate.urn.apply(() => this.release(gate));
        return gate;
    }

    /** The program failed: the gate stays shut, so nothing held is ever registered; the program's error ends the run. */
    abort(): void {
        this.closed = true;
    }

    private async describe(r: (typeof this.held)[number]): Promise<PolicyGateResource> {
        const { type, name } = this.seen.get(r.resource)!;
        return {
            type,
            name,
            urn: this.urnOf(r.resource),
            props: (await this.settle(r.props)) as Record<string, unknown>,
        };
    }

    /** The URN the engine will give a held resource (its parents' URNs are not known before they register). */
    private urnOf(resource: pulumi.Resource): string {
        const types: string[] = [];
        let name = "";
        for (
            let r: pulumi.Resource | undefined = resource;
            r !== undefined && this.seen.has(r);
            r = this.seen.get(r)!.parent
        ) {
            const entry = this.seen.get(r)!;
            types.unshift(entry.type);
            if (r === resource) name = entry.name;
        }
        return `urn:pulumi:${pulumi.getStack()}::${pulumi.getProject()}::${types.join("$")}::${name}`;
    }

    /** The inputs as plain data: outputs of held resources become the unknown marker; secrets are noted. */
    private async settle(value: unknown): Promise<unknown> {
        if (pulumi.Output.isInstance(value)) {
            const settled = await promptValue(value, this.seen);
            if (settled === UNKNOWN) return POLICY_GATE.unknown;
            if (settled.secret) this.sawSecret = true;
            return this.settle(settled.value);
        }
        if (value instanceof Promise) return this.settle(await value);
        if (pulumi.Resource.isInstance(value)) return POLICY_GATE.unknown;
        if (Array.isArray(value)) return Promise.all(value.map((v) => this.settle(v)));
        if (
            value &&
            typeof value === "object" &&
            Object.getPrototypeOf(value) === Object.prototype
        ) {
            const entries = await Promise.all(
                Object.entries(value).map(async ([k, v]) => [k, await this.settle(v)] as const),
            );
            return Object.fromEntries(entries.filter(([, v]) => v !== undefined));
        }
        return value;
    }
}

const UNKNOWN = Symbol("unknown");

/** An output's value, without waiting on a held resource (that would never resolve). */
async function promptValue(
    output: pulumi.Output<unknown>,
    held: Map<pulumi.Resource, unknown>,
): Promise<typeof UNKNOWN | { value: unknown; secret: boolean }> {
    // Internal but long-standing: the resources an output was computed from, known synchronously.
    const from: Set<pulumi.Resource> = (
        output as unknown as { resources(): Set<pulumi.Resource> }
    ).resources();
    for (const r of from) if (held.has(r)) return UNKNOWN;
    const impl = output as unknown as {
        promise(withUnknowns?: boolean): Promise<unknown>;
        isKnown: Promise<boolean>;
        isSecret: Promise<boolean>;
    };
    const [value, known, secret] = await Promise.all([impl.promise(), impl.isKnown, impl.isSecret]);
    return known ? { value, secret } : UNKNOWN;
}

/** The component the pack sees first: its input is the desired state (see POLICY_GATE). */
class GateComponent extends pulumi.ComponentResource {
    constructor(desired: Record<typeof POLICY_GATE.input, pulumi.Input<string>>) {
        super(POLICY_GATE.type, POLICY_GATE.name, desired);
        this.registerOutputs({});
    }
}
