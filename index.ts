import * as pulumi from "@pulumi/pulumi";
import { StackRefusedError } from "./config";
import { main } from "./program";

// Config and the live target are checked before the first resource is registered, so a refusal changes nothing.
// The engine awaits the exported function; the object it returns becomes the stack's outputs.
export = async () => {
    try {
        const outputs = await main();
        // Keys without a value on this target (the address hint off the cloud) are left out, not exported empty.
        return Object.fromEntries(
            Object.entries(outputs).filter(([, value]) => value !== undefined),
        );
    } catch (err) {
        // Expected refusals print their message alone: a RunError is reported without a stack trace, and a stack
        // set to the message spares the runner from building one through source maps only to drop it.
        if (err instanceof StackRefusedError) throw refusal(err.message);
        throw err;
    }
};

function refusal(message: string): pulumi.RunError {
    const error = new pulumi.RunError(message);
    error.stack = message;
    return error;
}
