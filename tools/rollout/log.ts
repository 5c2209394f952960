/** Progress of the rollout tools goes to stderr, timestamped, so stdout stays the command's result (JSON, a report). */
export function log(tool: string, message: string): void {
    process.stderr.write(`${new Date().toISOString()} ${tool}: ${message}\n`);
}
