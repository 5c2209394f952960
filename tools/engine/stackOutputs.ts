import { openStack } from "./engine";

/** Plain values of a stack's outputs (secrets stay masked by the engine). */
export async function stackOutputs(stackName: string): Promise<Record<string, unknown>> {
    const stack = await openStack(stackName);
    const outputs = await stack.outputs();
    return Object.fromEntries(Object.entries(outputs).map(([k, v]) => [k, v.value]));
}
