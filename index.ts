import * as pulumi from "@pulumi/pulumi";
import { StackRefusedError } from "./config";
import { PolicyGate } from "./preflight/policyGate";
import { main } from "./program";

// Config and the live target are checked before the first resource is registered, so a refusal changes nothing.
// The policy gate then holds every resource back until the policy pack (when one runs) has passed the whole
// desired state, so one `up --policy-pack` changes nothing unless every mandatory policy passes.
// The engine awaits the exported function; the object it returns becomes the stack's outputs.
export = async () => {
    const gate = new PolicyGate();
    gate.install();
    try {
        const outputs = await main();
        gate.close();
        // Keys without a value on this target (the address hint off the cloud) are left out, not exported empty.
        return Object.fromEntries(Object.entries(outputs).filter(([, value]) => value !== undefined));
    } catch (err) {
        gate.abort();
        // Expected refusals print their message alone (a RunError has no stack trace in the engine's output).
        if (err instanceof StackRefusedError) throw new pulumi.RunError(err.message);
        throw err;
    }
};
