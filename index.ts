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
        return Object.fromEntries(
            Object.entries(outputs).filter(([, value]) => value !== undefined),
        );
    } catch (err) {
        gate.abort();
        // Expected refusals print their message alone (a RunError has no stack trace in the engine's output).
        if (err instanceof StackRefusedError) throw refusal(err.message);
        throw err;
    }
};

/**
 * A RunError whose stack is its message. The SDK's run command (3.219, cmd/run/run.js `uncaughtHandler`) also
 * passes every error to `span.addEvent(defaultErrorMessage(err))`, which `util.inspect`s it and so makes the
 * engine's ts-node source-map support build the stack trace: 13-15 s for one error on this machine, against
 * 1.5 s for the whole failed preview once the stack is set (npm run bench, "refused preview").
 */
function refusal(message: string): pulumi.RunError {
    const error = new pulumi.RunError(message);
    error.stack = message;
    return error;
}
