import { main } from "./program";

// Config and the live target are checked before the first resource is registered, so a refusal changes nothing.
// The engine awaits the exported function; the object it returns becomes the stack's outputs.
export = async () => {
    const outputs = await main();
    return { ...outputs };
};
