import { spawn } from "child_process";
import { toolchainBinary } from "../../tools/engine";

export interface CliRun {
    pid: number;
    output(): string;
    /** Exit code (null when killed), everything printed, and how long it ran. */
    done: Promise<{ code: number | null; output: string; ms: number }>;
    /** SIGKILL of its process group: the CLI and the plugins it started. */
    kill(): void;
}

/** The pinned pulumi CLI as a separate process in its own process group, as a second CI job would run it. */
export function pulumiCli(args: string[], cwd: string, env: NodeJS.ProcessEnv): CliRun {
    const started = Date.now();
    const child = spawn(toolchainBinary("pulumi"), args, { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout!.on("data", (c) => (output += c));
    child.stderr!.on("data", (c) => (output += c));
    const done = new Promise<{ code: number | null; output: string; ms: number }>((resolve) => child.on("close", (code) => resolve({ code, output, ms: Date.now() - started })));
    return { pid: child.pid!, output: () => output, done, kill: () => process.kill(-child.pid!, "SIGKILL") };
}

/** Polls until probe returns something (or throws after timeoutMs). */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000, everyMs = 25): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const value = await probe();
        if (value !== undefined) return value;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await new Promise((r) => setTimeout(r, everyMs));
    }
}

/**
 * Structural soundness of a checkpoint as read from the backend: it parses, and every parent, provider
 * and dependency of a resource comes before it (what the engine's own integrity check requires).
 * Returns the resources' URNs.
 */
export function soundCheckpoint(text: string): string[] {
    const doc = JSON.parse(text);
    const resources: any[] = doc.checkpoint?.latest?.resources ?? [];
    const seen = new Set<string>();
    for (const r of resources) {
        for (const ref of [r.parent, r.provider?.split("::").slice(0, -1).join("::"), ...(r.dependencies ?? [])]) {
            if (ref && !seen.has(ref)) throw new Error(`checkpoint refers to ${ref} before it is defined (in ${r.urn})`);
        }
        seen.add(r.urn);
    }
    return resources.map((r) => r.urn);
}
