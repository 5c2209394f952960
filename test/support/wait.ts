/** Polls `f` every 50 ms until it returns something truthy; fails with `what` (and its last error) after `timeoutMs`. */
export async function until<T>(
    what: string,
    f: () => T | undefined | false | Promise<T | undefined | false>,
    timeoutMs = 30_000,
): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    for (;;) {
        try {
            const v = await f();
            if (v) return v;
        } catch (err) {
            lastError = err;
        }
        if (Date.now() > deadline)
            throw new Error(
                `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ""}`,
            );
        await new Promise((r) => setTimeout(r, 50));
    }
}
