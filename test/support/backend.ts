import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { VERSIONS } from "../../components/model";
import {
    EngineOptions,
    openStack,
    scratchProject,
    toolchainBinary,
} from "../../tools/engine/engine";
import { StateStore } from "../../tools/state/stateStore";
import { TestObjectStore, startObjectStore } from "./objectstore";

/** A render-target stack whose state lives in a bucket of its own local S3 server. */
export interface StackOnBucket {
    server: TestObjectStore;
    store: StateStore;
    dir: string;
    engine: EngineOptions;
    stack: Stack;
}

/** Starts a server named `label`, a scratch project and stack `stackName` in it, applied once at v2Weight 0. */
export async function renderStackOnBucket(
    label: string,
    stackName: string,
): Promise<StackOnBucket> {
    const server = await startObjectStore(label);
    const dir = scratchProject(fs.mkdtempSync(path.join(os.tmpdir(), `asm-tcp-shift-${label}-`)));
    const engine: EngineOptions = {
        workDir: dir,
        backendUrl: server.url,
        env: { ...server.env, PULUMI_CONFIG_PASSPHRASE: `${label}-test` },
    };
    const stack = await openStack(stackName, engine);
    await stack.setAllConfig({ target: { value: "render" }, v2Weight: { value: "0" } });
    await stack.up();
    return { server, store: server.store(), dir, engine, stack };
}

/** Stops the server and removes the scratch project (either may be missing after a failed start). */
export function removeStackOnBucket(s: { server?: TestObjectStore; dir?: string }): void {
    s.server?.destroy();
    if (s.dir) fs.rmSync(s.dir, { recursive: true, force: true });
}

/** The canary weight the state holds for the VirtualService. */
export async function stateCanaryWeight(stack: Stack): Promise<number | undefined> {
    const vs = ((await stack.exportStack()).deployment.resources ?? []).find((r: any) =>
        r.urn.endsWith("VirtualService::tcp-echo-routing-virtualservice"),
    );
    return vs?.outputs?.spec?.tcp?.[0]?.route?.find(
        (d: any) => d.destination?.subset === VERSIONS.canary.subset,
    )?.weight;
}

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
    const child = spawn(toolchainBinary("pulumi"), args, {
        cwd,
        env,
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout!.on("data", (c) => (output += c));
    child.stderr!.on("data", (c) => (output += c));
    const done = new Promise<{ code: number | null; output: string; ms: number }>((resolve) =>
        child.on("close", (code) => resolve({ code, output, ms: Date.now() - started })),
    );
    return {
        pid: child.pid!,
        output: () => output,
        done,
        kill: () => process.kill(-child.pid!, "SIGKILL"),
    };
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
        for (const ref of [
            r.parent,
            r.provider?.split("::").slice(0, -1).join("::"),
            ...(r.dependencies ?? []),
        ]) {
            if (ref && !seen.has(ref))
                throw new Error(`checkpoint refers to ${ref} before it is defined (in ${r.urn})`);
        }
        seen.add(r.urn);
    }
    return resources.map((r) => r.urn);
}
