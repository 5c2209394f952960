import * as pulumi from "@pulumi/pulumi";
import { ConfigError } from "./config";
import { PreflightError } from "./preflight";
import { main } from "./program";

// Config and the live target are checked before the first resource is registered, so a refusal changes nothing.
// The engine awaits the exported function; the object it returns becomes the stack's outputs.
export = async () => {
    try {
        return { ...(await main()) };
    } catch (err) {
        // Expected refusals print their message alone (a RunError has no stack trace in the engine's output).
        if (err instanceof ConfigError || err instanceof PreflightError) throw new pulumi.RunError(err.message);
        throw err;
    }
};
