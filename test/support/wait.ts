/**
 * Polls `f` every `everyMs` until it returns something truthy; fails with `what` (and its last error) after
 * `timeoutMs`. An error from `f` counts as not yet.
 */
export async function until<T>(
    what: string,
    f: () => T | undefined | false | Promise<T | undefined | false>,
    timeoutMs = 30_000,
    everyMs = 50,
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
        await new Promise((r) => setTimeout(r, everyMs));
    }
}
