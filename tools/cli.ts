/** Conventions shared by the project's CLIs: usage errors exit 64 on stderr, logs go to stderr. */
export const EXIT_USAGE = 64;

export class UsageError extends Error {}

export function log(tool: string, message: string): void {
    process.stderr.write(`${new Date().toISOString()} ${tool}: ${message}\n`);
}

export function parseWeight(flag: string, raw: string): number {
    if (!/^\d+$/.test(raw.trim()) || Number(raw) > 100) throw new UsageError(`${flag}: weights are integers from 0 to 100; got ${JSON.stringify(raw)}`);
    return Number(raw);
}

/**
 * Runs a CLI's main, mapping usage errors to exit 64 and anything else to 1, with the message on stderr.
 * It sets the exit code and lets the event loop drain, so piped output is never cut short.
 */
export function runCli(tool: string, usage: string, main: () => Promise<number>): void {
    main().then(
        (code) => {
            process.exitCode = code;
        },
        (err: Error & { code?: string }) => {
            // Unknown or malformed flags (node's parseArgs) are usage errors too.
            const isUsage = err instanceof UsageError || String(err.code ?? "").startsWith("ERR_PARSE_ARGS");
            process.stderr.write(`${tool}: ${err.message}\n`);
            if (isUsage) process.stderr.write(`${usage}\n`);
            process.exitCode = isUsage ? EXIT_USAGE : 1;
        },
    );
}
