import * as pulumi from "@pulumi/pulumi";
import { POLICY_GATE, PolicyGateResource } from "../components/model";

/**
 * The policy gate: every mandatory policy passes before the first resource changes, in one engine run.
 *
 * During an update the engine runs a pack's resource policies on each resource just before that resource's
 * step, and its stack policies only after every step, so a violation found late leaves earlier changes in
 * place. The gate closes that gap without a separate preview: every custom resource the program declares is
 * held back (`dependsOn` the gate) while its type, name and inputs are recorded; once the program has
 * declared everything, one component holding that desired state is registered first. The engine hands it to
 * the pack, whose policies (policy/policies/gate.ts) check the whole desired state, resource and stack
 * policies alike, before the component's step; a mandatory violation fails the run there, before any
 * resource was registered. Only then are the held resources registered, and the pack checks each again as
 * usual. A value that comes from another resource's output is not known before that resource exists: it is
 * recorded as unknown, as a preview sees it, and its policies run when the resource registers (resource
 * policies) and after the update (stack policies), exactly as they would after a preview.
 */
export class PolicyGate {
    private readonly held: { resource: pulumi.Resource; type: string; name: string; props: pulumi.Inputs; parent?: pulumi.Resource }[] = [];
    private readonly heldSet = new Set<pulumi.Resource>();
    private sawSecret = false;
    private closed = false;
    private release!: (gate: pulumi.Resource) => void;
    /** What every held resource depends on: the gate component, once it exists and the pack passed it. */
    private readonly opened = new Promise<pulumi.Resource>((resolve) => {
        this.release = resolve;
    });

    /** Starts holding every custom resource declared from now on, in the whole stack. */
    install(): void {
        pulumi.runtime.registerStackTransformation(this.transformation);
    }

    /** Holds one resource back and records it (providers, reads and Pulumi's own resources pass). */
    readonly transformation: pulumi.ResourceTransformation = (args) => {
        if (!(args.resource instanceof pulumi.CustomResource) || args.resource instanceof pulumi.ProviderResource) return undefined;
        if (args.opts.id !== undefined || args.type.startsWith("pulumi:")) return undefined;
        this.held.push({ resource: args.resource, type: args.type, name: args.name, props: args.props, parent: args.opts.parent });
        this.heldSet.add(args.resource);
        // The SDK flattens nested lists, promises and outputs in `dependsOn`; the gate is a promise until it exists.
        const dependsOn = [args.opts.dependsOn ?? [], this.opened] as unknown as pulumi.Input<pulumi.Resource>[];
        return { props: args.props, opts: { ...args.opts, dependsOn } };
    };

    /** Registers the gate with the desired state recorded so far; the held resources follow once it passed. */
    close(): pulumi.Resource {
        if (this.closed) throw new Error("the policy gate was already closed");
        this.closed = true;
        // A secret anywhere makes the whole recorded state a secret (the state file encrypts it).
        const resources = pulumi.output(Promise.all(this.held.map((r) => this.describe(r)))).apply((all) => (this.sawSecret ? pulumi.secret(all) : pulumi.output(all))) as pulumi.Output<PolicyGateResource[]>;
        const gate = new GateComponent({ resources });
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
        const parentHeld = r.parent !== undefined && this.heldSet.has(r.parent);
        const urn = parentHeld ? UNKNOWN : await promptValue(pulumi.createUrn(r.name, r.type, r.parent), this.heldSet);
        return { type: r.type, name: r.name, urn: urn === UNKNOWN ? undefined : String(urn.value), props: (await this.settle(r.props)) as Record<string, unknown> };
    }

    /** The inputs as plain data: outputs of held resources become the unknown marker; secrets are noted. */
    private async settle(value: unknown): Promise<unknown> {
        if (pulumi.Output.isInstance(value)) {
            const settled = await promptValue(value, this.heldSet);
            if (settled === UNKNOWN) return POLICY_GATE.unknown;
            if (settled.secret) this.sawSecret = true;
            return this.settle(settled.value);
        }
        if (value instanceof Promise) return this.settle(await value);
        if (pulumi.Resource.isInstance(value)) return POLICY_GATE.unknown;
        if (Array.isArray(value)) return Promise.all(value.map((v) => this.settle(v)));
        if (value && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
            const entries = await Promise.all(Object.entries(value).map(async ([k, v]) => [k, await this.settle(v)] as const));
            return Object.fromEntries(entries.filter(([, v]) => v !== undefined));
        }
        return value;
    }
}

const UNKNOWN = Symbol("unknown");

/** An output's value, without waiting on a held resource (that would never resolve). */
async function promptValue(output: pulumi.Output<unknown>, held: Set<pulumi.Resource>): Promise<typeof UNKNOWN | { value: unknown; secret: boolean }> {
    // Internal but long-standing: the resources an output was computed from, known synchronously.
    const from: Set<pulumi.Resource> = (output as unknown as { resources(): Set<pulumi.Resource> }).resources();
    for (const r of from) if (held.has(r)) return UNKNOWN;
    const impl = output as unknown as { promise(withUnknowns?: boolean): Promise<unknown>; isKnown: Promise<boolean>; isSecret: Promise<boolean> };
    const [value, known, secret] = await Promise.all([impl.promise(), impl.isKnown, impl.isSecret]);
    return known ? { value, secret } : UNKNOWN;
}

/** The component the pack sees first: its inputs are the desired state. */
class GateComponent extends pulumi.ComponentResource {
    constructor(desired: { resources: pulumi.Input<PolicyGateResource[]> }) {
        super(POLICY_GATE.type, POLICY_GATE.name, desired);
        this.registerOutputs({});
    }
}
