import { LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";
import { execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { DEFAULTS } from "../../config";
import { PREVIEW_BEFORE_UPDATE_ENV } from "../../preflight/access";
import { assertUnlocked } from "../state/locks";
import { StateStore, openStateStore } from "../state/stateStore";

/** Root of the project: the Pulumi program and its Pulumi.yaml. */
export const PROJECT_ROOT = path.resolve(__dirname, "../..");
export const POLICY_PACK_DIR = path.join(PROJECT_ROOT, "policy");

export interface EngineOptions {
    /** Folder holding Pulumi.yaml; defaults to the project. Stack files are written here. */
    workDir?: string;
    /** Backend URL; defaults to PULUMI_BACKEND_URL, else the project-local file backend. */
    backendUrl?: string;
    /** Extra environment for the engine and the program. */
    env?: Record<string, string>;
}

let toolchainPath: string | undefined;

/** PATH entries of the pinned toolchain, as scripts/toolchain.sh lays it out. */
export function toolchainBinPath(): string {
    toolchainPath ??= execFileSync(
        "bash",
        [path.join(PROJECT_ROOT, "scripts/toolchain.sh"), "--print-path"],
        { encoding: "utf8" },
    ).trim();
    return toolchainPath;
}

/** Where a toolchain binary lives (first PATH entry that has it). */
export function toolchainBinary(name: string): string {
    for (const dir of toolchainBinPath().split(":")) {
        const candidate = path.join(dir, name);
        if (fs.existsSync(candidate)) return candidate;
    }
    throw new Error(`${name} is not built; run \`npm run toolchain\``);
}

/**
 * Environment for the engine: scripts/engine-env.sh defines it (the same for `npm run pulumi`), offline
 * defaults that never override what the user or `opts` set (`opts.env` is given to the script, which only adds to
 * PATH and NODE_OPTIONS).
 */
export function engineEnv(stackName: string, opts: EngineOptions = {}): Record<string, string> {
    const given: Record<string, string> = {
        ...(opts.backendUrl ? { PULUMI_BACKEND_URL: opts.backendUrl } : {}),
        ...opts.env,
    };
    const key = JSON.stringify([stackName, given]);
    let computed = engineEnvCache.get(key);
    if (!computed) {
        const printed = execFileSync(
            "bash",
            [path.join(PROJECT_ROOT, "scripts/engine-env.sh"), stackName],
            { encoding: "utf8", env: { ...process.env, ...given } },
        );
        computed = Object.fromEntries(
            printed
                .split("\0")
                .filter(Boolean)
                .map((line) => [
                    line.slice(0, line.indexOf("=")),
                    line.slice(line.indexOf("=") + 1),
                ]),
        );
        engineEnvCache.set(key, computed);
    }
    // What the script printed already builds on `given` (PATH and NODE_OPTIONS are added to, nothing else is set over
    // a value given), so it comes last: a caller's NODE_OPTIONS keeps the start-up preload.
    return { ...given, ...computed };
}
const engineEnvCache = new Map<string, Record<string, string>>();

/** The objects of the stack's backend (locks, checkpoints), with the engine's credentials. */
export function stateStoreFor(stackName: string, opts: EngineOptions = {}): StateStore {
    const env = { ...process.env, ...engineEnv(stackName, opts) };
    return openStateStore(env.PULUMI_BACKEND_URL!, env);
}

/** The same for an open stack: its workspace carries the backend URL and credentials. */
export function stateStoreOf(stack: Stack): StateStore {
    const env = { ...process.env, ...stack.workspace.envVars };
    return openStateStore(env.PULUMI_BACKEND_URL!, env);
}

/** Opens (or creates) a stack of the project with the pinned CLI and the offline environment. */
export async function openStack(stackName: string, opts: EngineOptions = {}): Promise<Stack> {
    const pulumiBin = toolchainBinary("pulumi");
    const pulumiCommand = await PulumiCommand.get({
        root: path.dirname(path.dirname(pulumiBin)),
        skipVersionCheck: true,
    });
    return LocalWorkspace.createOrSelectStack(
        { stackName, workDir: opts.workDir ?? PROJECT_ROOT },
        { pulumiCommand, envVars: engineEnv(stackName, opts) },
    );
}

/**
 * A scratch copy of the project for tests and benchmarks: the sources are symlinked, so the real
 * program runs, but stack files, state and rendered output stay in the scratch folder. Every top-level
 * entry is linked except what a stack writes or owns, so a new module or folder never needs adding here.
 */
export function scratchProject(dir: string): string {
    fs.mkdirSync(dir, { recursive: true });
    for (const entry of fs.readdirSync(PROJECT_ROOT)) {
        if (!sharedWithScratch(entry)) continue;
        const target = path.join(dir, entry);
        if (!fs.existsSync(target)) fs.symlinkSync(path.join(PROJECT_ROOT, entry), target);
    }
    return dir;
}

/** Stack files (Pulumi.<stack>.yaml), dot entries (.local state, .git) and the render folder stay the scratch copy's own. */
export function sharedWithScratch(entry: string): boolean {
    return (
        !/^Pulumi\..+\.yaml$/.test(entry) && !entry.startsWith(".") && entry !== DEFAULTS.renderDir
    );
}

export interface GatedUpOptions {
    /** A rollout lock this caller holds itself (see locks.ts), not counted as someone else's. */
    ownLock?: string;
    policyPacks?: string[];
    policyPackConfigs?: string[];
    onOutput?: (out: string) => void;
    /** The update's engine events (the preview's are not passed on). */
    onEvent?: (event: import("@pulumi/pulumi/automation").EngineEvent) => void;
}

/**
 * The gated `pulumi up`, as the CLI's own `pulumi up --policy-pack` runs it: a preview with the pack first,
 * which stops on any mandatory violation before anything changes, then the update with the same pack. (The
 * Automation API's `up` skips the CLI's preview, so it is asked for here.)
 */
export async function gatedUp(stack: Stack, opts: GatedUpOptions = {}) {
    // A stack another job holds fails here, at once, instead of after a preview of several seconds.
    await assertUnlocked(stateStoreOf(stack), stack.name, opts.ownLock);
    const policy = {
        policyPacks: opts.policyPacks ?? [POLICY_PACK_DIR],
        policyPackConfigs: opts.policyPackConfigs,
    };
    // This preview refuses whatever the update would (missing write permissions included), so that a refusal
    // comes before the update has written anything.
    stack.workspace.envVars[PREVIEW_BEFORE_UPDATE_ENV] = "1";
    let preview;
    try {
        preview = await stack.preview({ ...policy, onOutput: opts.onOutput });
    } finally {
        delete stack.workspace.envVars[PREVIEW_BEFORE_UPDATE_ENV];
    }
    const result = await stack.up({ ...policy, onOutput: opts.onOutput, onEvent: opts.onEvent });
    return { preview, result };
}

/**
 * Stores a secret config value through the CLI's standard input (`pulumi config set --secret KEY` with no value
 * reads it from there). The Automation API's `setConfig` passes the value as an argument, where every process on the
 * machine can read it from the process table.
 */
export async function setSecretConfig(stack: Stack, key: string, value: string): Promise<void> {
    const ws = stack.workspace;
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...process.env, ...ws.envVars }))
        if (v !== undefined) env[k] = v;
    await new Promise<void>((resolve, reject) => {
        const child = spawn(
            toolchainBinary("pulumi"),
            ["config", "set", "--secret", key, "--stack", stack.name, "--non-interactive"],
            { cwd: ws.workDir, env, stdio: ["pipe", "ignore", "pipe"] },
        );
        let stderr = "";
        child.stderr.on("data", (d) => (stderr += d));
        child.on("error", reject);
        child.on("close", (code) =>
            code === 0
                ? resolve()
                : reject(new Error(`pulumi config set --secret ${key} failed: ${stderr.trim()}`)),
        );
        child.stdin.end(value);
    });
}
