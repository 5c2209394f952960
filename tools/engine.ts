import { LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ensureBuilt as buildPolicyPack } from "../policy/build";
import { assertUnlocked } from "./locks";
import { StateStore, openStateStore } from "./stateStore";

/** Root of the project: the Pulumi program and its Pulumi.yaml. */
export const PROJECT_ROOT = path.resolve(__dirname, "..");
export const POLICY_PACK_DIR = path.join(PROJECT_ROOT, "policy");
/** Passphrase of the `local` stack only (it guards the throwaway local cluster's kubeconfig); see the README. */
export const LOCAL_STACK_PASSPHRASE = "asm-tcp-shift-local";

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
    toolchainPath ??= execFileSync("bash", [path.join(PROJECT_ROOT, "scripts/toolchain.sh"), "--print-path"], { encoding: "utf8" }).trim();
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

/** Environment for the engine: offline defaults that never override what the user set. */
export function engineEnv(stackName: string, opts: EngineOptions = {}): Record<string, string> {
    const env: Record<string, string> = {
        PATH: `${toolchainBinPath()}:${path.join(PROJECT_ROOT, "node_modules/.bin")}:${process.env.PATH ?? ""}`,
        PULUMI_SKIP_UPDATE_CHECK: process.env.PULUMI_SKIP_UPDATE_CHECK ?? "true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: process.env.PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION ?? "true",
        PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK: "true",
        // `npm test` type-checks the program (strict); the engine only needs it transpiled (faster; see npm run bench).
        PULUMI_NODEJS_TRANSPILE_ONLY: process.env.PULUMI_NODEJS_TRANSPILE_ONLY ?? "true",
        PULUMI_BACKEND_URL: opts.backendUrl ?? process.env.PULUMI_BACKEND_URL ?? `file://${path.join(PROJECT_ROOT, ".local/state")}`,
        // An s3:// backend without credentials in the environment would make the AWS SDK ask the EC2
        // metadata address for some; the state's credentials always come from the environment here.
        AWS_EC2_METADATA_DISABLED: process.env.AWS_EC2_METADATA_DISABLED ?? "true",
        ...nodeStartupEnv(),
        ...opts.env,
    };
    if (!process.env.PULUMI_CONFIG_PASSPHRASE && !process.env.PULUMI_CONFIG_PASSPHRASE_FILE && stackName === "local") {
        env.PULUMI_CONFIG_PASSPHRASE = LOCAL_STACK_PASSPHRASE;
    }
    if (env.PULUMI_BACKEND_URL.startsWith("file://")) fs.mkdirSync(env.PULUMI_BACKEND_URL.slice("file://".length), { recursive: true });
    return env;
}

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

/**
 * Start-up of the Node.js processes the engine runs (the program, the policy pack): @pulumi/pulumi's package
 * manager is loaded on first use (tools/lazy-sdk.cjs), and compiled code is cached across runs (Node >= 22.1).
 * Added to what the user set, never in its place; scripts/pulumi.sh does the same for the CLI.
 */
export function nodeStartupEnv(): Record<string, string> {
    const preload = `--require ${JSON.stringify(path.join(PROJECT_ROOT, "tools/lazy-sdk.cjs"))}`;
    const cache = process.env.ASM_TCP_SHIFT_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache"), "asm-tcp-shift");
    return {
        NODE_OPTIONS: [process.env.NODE_OPTIONS, preload].filter(Boolean).join(" "),
        NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? path.join(cache, "node-compile-cache"),
    };
}

/** Opens (or creates) a stack of the project with the pinned CLI and the offline environment. */
export async function openStack(stackName: string, opts: EngineOptions = {}): Promise<Stack> {
    const pulumiBin = toolchainBinary("pulumi");
    const pulumiCommand = await PulumiCommand.get({ root: path.dirname(path.dirname(pulumiBin)), skipVersionCheck: true });
    return LocalWorkspace.createOrSelectStack(
        { stackName, workDir: opts.workDir ?? PROJECT_ROOT },
        { pulumiCommand, envVars: engineEnv(stackName, opts) },
    );
}

/**
 * A scratch copy of the project for tests and benchmarks: the sources are symlinked, so the real
 * program runs, but stack files, state and rendered output stay in the scratch folder.
 */
export function scratchProject(dir: string): string {
    fs.mkdirSync(dir, { recursive: true });
    for (const entry of ["Pulumi.yaml", "package.json", "tsconfig.json", "index.ts", "program.ts", "config.ts", "components", "preflight", "node_modules"]) {
        const target = path.join(dir, entry);
        if (!fs.existsSync(target)) fs.symlinkSync(path.join(PROJECT_ROOT, entry), target);
    }
    return dir;
}

/**
 * Compiles the policy pack unless it is current (policy/build.js), so the engine starts it without the TypeScript
 * compiler. Correctness never depends on it: a pack not compiled, or edited since, runs from its sources, and its
 * own errors are left for the engine to report, as it always did.
 */
export function ensurePolicyPackBuilt(policyPacks: string[] = [POLICY_PACK_DIR]): void {
    if (policyPacks.some((pack) => path.resolve(pack) === POLICY_PACK_DIR)) buildPolicyPack(POLICY_PACK_DIR);
}

export interface GatedUpOptions {
    /** A rollout lock this caller holds itself (see locks.ts), not counted as someone else's. */
    ownLock?: string;
    policyPacks?: string[];
    policyPackConfigs?: string[];
    onOutput?: (out: string) => void;
    onEvent?: (event: import("@pulumi/pulumi/automation").EngineEvent) => void;
}

/**
 * The policy-gated `pulumi up`: one engine run with the pack, which changes nothing unless every mandatory
 * policy passes. During an update the engine checks each resource just before its step and runs stack policies
 * after every step; the program's policy gate (preflight/policyGate.ts) holds every resource back until the pack
 * has checked the whole desired state, resource and stack policies alike, so no separate preview is needed.
 */
export async function gatedUp(stack: Stack, opts: GatedUpOptions = {}) {
    // A stack another job holds fails here, at once, instead of after a preview of several seconds.
    await assertUnlocked(stateStoreOf(stack), stack.name, opts.ownLock);
    const policy = { policyPacks: opts.policyPacks ?? [POLICY_PACK_DIR], policyPackConfigs: opts.policyPackConfigs };
    ensurePolicyPackBuilt(policy.policyPacks);
    const result = await stack.up({ ...policy, onOutput: opts.onOutput, onEvent: opts.onEvent });
    return { result };
}
