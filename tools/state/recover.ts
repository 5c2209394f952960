/**
 * recover: brings a stack back after an update that was killed (SIGKILL, lost machine, an object store
 * that went away mid-update), on any DIY backend (a folder or an S3-compatible bucket such as OSS):
 *  0. the stack's locks are read first: while any is held by a job not provably gone (judgeLock), nothing
 *     is touched (no plugin stopped, no checkpoint rewritten, no lock removed, no refresh) and the holder is
 *     named (--force goes on anyway: only when you know that job is dead, since a live update would then
 *     race the next one);
 *  1. plugin processes the killed CLI of this stack left behind are stopped (those of other stacks, or that
 *     cannot be tied to one, are left alone and reported);
 *  2. a checkpoint that cannot be read (the file backend writes in place, so a kill can cut it short) is
 *     restored from the backend's own backups: <stack>.json.bak, else the newest readable one under
 *     .pulumi/backups (objects in a bucket are replaced whole, so there this finds nothing to do);
 *  3. the locks read in step 0 are removed, the stack's locks staying in place until then so that no other
 *     job starts on a checkpoint under repair;
 *  4. `pulumi refresh` reads what the target really holds and drops pending creates it cannot resolve
 *     (render target: nothing to read back, so only the killed update's pending operations are dropped).
 * The next `up` then converges.
 *   npm run recover -- --stack local [--force]
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT } from "../../config";
import {
    EngineOptions,
    PROJECT_ROOT,
    engineEnv,
    stateStoreFor,
    toolchainBinary,
} from "../engine/engine";
import {
    Here,
    LOCK_LEASE_HOURS,
    LockInfo,
    StackLockedError,
    describeLock,
    here,
    readLocks,
} from "./locks";
import { readStackFile, readStackSettings } from "../engine/stackFiles";
import { StateStore } from "./stateStore";

function readable(data: Buffer | undefined): boolean {
    if (!data) return false;
    try {
        const doc = JSON.parse(data.toString("utf8"));
        return typeof doc === "object" && doc !== null && "checkpoint" in doc;
    } catch {
        return false;
    }
}

/** Restores an unreadable checkpoint from the newest readable backup; returns what it did. */
export async function repairCheckpoint(
    store: StateStore,
    stack: string,
): Promise<string | undefined> {
    const checkpoint = `.pulumi/stacks/${PROJECT}/${stack}.json`;
    const current = await store.read(checkpoint);
    if (current === undefined || readable(current)) return undefined;
    const backups = (await store.list(`.pulumi/backups/${PROJECT}/${stack}/`))
        .filter((o) => o.key.endsWith(".json"))
        .sort((a, b) => b.modified.getTime() - a.modified.getTime())
        .map((o) => o.key);
    for (const candidate of [`${checkpoint}.bak`, ...backups]) {
        const data = await store.read(candidate);
        if (!readable(data)) continue;
        await store.write(`${checkpoint}.corrupt-${Date.now()}`, current);
        await store.write(checkpoint, data!);
        // The file backend keeps each object's metadata in a sidecar file.
        const attrs = await store.read(`${candidate}.attrs`);
        if (attrs) await store.write(`${checkpoint}.attrs`, attrs);
        return `restored the cut-short checkpoint from ${candidate}`;
    }
    throw new Error(
        `checkpoint ${store.describe(checkpoint)} is unreadable and no readable backup was found`,
    );
}

/** A Pulumi plugin by what it runs (not by any mention of a plugin name, e.g. a `go build -o pulumi-resource-x`). */
export function isPulumiPlugin(argv: string[]): boolean {
    const exe = path.basename(argv[0] ?? "");
    if (/^pulumi-(resource|language|analyzer)-/.test(exe)) return true;
    return exe === "node" && nodeEntry(argv) !== undefined;
}

/** Which of the SDK's Node.js entry points a node process runs: the program, or a policy pack. */
function nodeEntry(argv: string[]): "run" | "run-policy-pack" | undefined {
    return /@pulumi\/pulumi\/cmd\/(run|run-policy-pack)(\/index\.js)?$/.exec(argv[1] ?? "")?.[1] as
        "run" | "run-policy-pack" | undefined;
}

function isPulumiProcess(argv: string[]): boolean {
    return /^pulumi(-|$)/.test(path.basename(argv[0] ?? "")) || isPulumiPlugin(argv);
}

/** What /proc says of a process, as far as telling whose update a plugin served needs. */
export interface ProcessInfo {
    pid: number;
    ppid: number;
    /** Session: every plugin inherits the CLI's (the CLI gives each its own process group, not session). */
    sid: number;
    argv: string[];
    /** Its working folder, resolved. */
    cwd?: string;
    /** `net:[inode]`: the engine's address is a loopback port, which means something only within one. */
    netns?: string;
    /** The variables that name a stack, a project or a backend; no other (the environment holds secrets). */
    env: Record<string, string>;
}

const NAMING_VARS = [
    "PULUMI_STACK",
    "PULUMI_NODEJS_STACK",
    "PULUMI_PROJECT",
    "PULUMI_NODEJS_PROJECT",
    "PULUMI_BACKEND_URL",
];

/** Every process of our pid namespace; cwd, network namespace and environment only for Pulumi's. */
export function readProcesses(): ProcessInfo[] {
    const procs: ProcessInfo[] = [];
    // Off Linux there is no /proc, and no plugin can be tied to a stack: none is stopped.
    if (!fs.existsSync("/proc/self/stat")) return procs;
    for (const entry of fs.readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
        const dir = `/proc/${entry}`;
        try {
            const stat = fs.readFileSync(`${dir}/stat`, "utf8");
            const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
            const argv = fs.readFileSync(`${dir}/cmdline`, "utf8").split("\0").filter(Boolean);
            const proc: ProcessInfo = {
                pid: Number(entry),
                ppid: Number(fields[1]),
                sid: Number(fields[3]),
                argv,
                env: {},
            };
            if (isPulumiProcess(argv)) {
                const tryRead = <T>(read: () => T) => {
                    try {
                        return read();
                    } catch {
                        return undefined; // not ours to read (another user), or gone meanwhile
                    }
                };
                proc.cwd = tryRead(() => fs.readlinkSync(`${dir}/cwd`));
                proc.netns = tryRead(() => fs.readlinkSync(`${dir}/ns/net`));
                for (const line of tryRead(() => fs.readFileSync(`${dir}/environ`, "utf8"))?.split(
                    "\0",
                ) ?? []) {
                    const name = line.slice(0, line.indexOf("="));
                    if (NAMING_VARS.includes(name)) proc.env[name] = line.slice(name.length + 1);
                }
            }
            procs.push(proc);
        } catch {
            /* gone meanwhile */
        }
    }
    return procs;
}

/** Whose update a killed CLI's plugins served: the stack, and the folder and backend it ran in. */
export interface PluginOwner {
    /** Undefined: any stack of the project. */
    stack?: string;
    workDir: string;
    /** Compared with a plugin's PULUMI_BACKEND_URL when it has one. */
    backendUrl?: string;
}

/** A plugin left alone, and why: reported, since it may be a killed update's that only a person can place. */
export interface LeftAlone {
    pid: number;
    what: string;
    why: string;
}

function optionOf(argv: string[], name: string): string | undefined {
    const at = argv.indexOf(`--${name}`);
    return at > 0 ? argv[at + 1] : undefined;
}

/** `organization/<project>/<stack>` or `<stack>` as the engine passes it: the stack's own name. */
const shortStack = (name: string) => name.split("/").pop()!;

function realDir(dir: string): string {
    try {
        return fs.realpathSync(dir);
    } catch {
        return path.resolve(dir);
    }
}

/**
 * What a plugin process itself tells of the update it serves, as Pulumi 3.219 with the Node.js language host
 * starts them:
 *  - the program (`node …/cmd/run`, started by the language host): `--stack`, `--project` and `--pwd`
 *    arguments, and `--engine` (the CLI's engine address);
 *  - a Node.js policy pack (`node …/cmd/run-policy-pack`, in the pack's folder): PULUMI_STACK and
 *    PULUMI_PROJECT in its environment, the engine address as its first argument;
 *  - the language host, providers and other analyzers: only the engine address as an argument, and the CLI's
 *    working folder (the program's) as theirs; providers also get PULUMI_PROJECT, never the stack.
 * Every one inherits the CLI's environment, so PULUMI_BACKEND_URL when the CLI had it from there.
 */
function claimsOf(p: ProcessInfo): {
    stack?: string;
    project?: string;
    dir?: string;
    engine?: string;
} {
    const engine =
        optionOf(p.argv, "engine") ??
        p.argv.slice(1).find((a) => /^(127\.0\.0\.1|localhost|\[::1\]):\d+$/.test(a));
    const entry = path.basename(p.argv[0] ?? "") === "node" ? nodeEntry(p.argv) : undefined;
    if (entry === "run") {
        const pwd = optionOf(p.argv, "pwd") ?? p.cwd;
        return {
            stack: optionOf(p.argv, "stack"),
            project: optionOf(p.argv, "project"),
            dir: pwd === undefined ? undefined : realDir(pwd),
            engine,
        };
    }
    if (entry === "run-policy-pack")
        return {
            stack: p.env.PULUMI_NODEJS_STACK ?? p.env.PULUMI_STACK,
            project: p.env.PULUMI_NODEJS_PROJECT ?? p.env.PULUMI_PROJECT,
            engine,
        };
    return {
        project: p.env.PULUMI_PROJECT,
        dir: p.cwd === undefined ? undefined : realDir(p.cwd),
        engine,
    };
}

/**
 * Sorts the plugins a killed CLI left behind into those of `owner`'s update and the rest. A plugin is left
 * behind when the plugin processes above it end in one whose parent is not a Pulumi process (the CLI is gone:
 * its children went to init or a subreaper); plugins under a live CLI are never candidates. The plugins of one
 * update are told apart from another's by the engine address they all carry, within one network namespace
 * and one session. Such a group is `owner`'s only when it names exactly `owner`'s stack and this project, and
 * every working folder it shows is `owner`'s work dir (and its backend, where it shows one, is `owner`'s).
 * Limits: a group whose program and policy pack have already exited names no stack, so its language host and
 * providers are left alone; so is a plugin of a CLI that was not named `pulumi`, or another user's (its /proc
 * files cannot be read); two dead updates of one session that happened to get the same engine port are told
 * apart only when they name different stacks (then both are left alone).
 */
export function orphanedPluginsOf(
    procs: ProcessInfo[],
    owner: PluginOwner,
    self = process.pid,
): { ours: ProcessInfo[]; leftAlone: LeftAlone[] } {
    const byPid = new Map(procs.map((p) => [p.pid, p]));
    const orphans: ProcessInfo[] = [];
    for (const p of procs) {
        if (p.pid === self || !isPulumiPlugin(p.argv)) continue;
        let top = p;
        for (let hops = 0; hops < 16; hops++) {
            const parent = byPid.get(top.ppid);
            if (!parent || !isPulumiPlugin(parent.argv)) break;
            top = parent;
        }
        const cli = byPid.get(top.ppid);
        if (!cli || !isPulumiProcess(cli.argv)) orphans.push(p);
    }
    const groups = new Map<string, ProcessInfo[]>();
    for (const p of orphans) {
        const engine = claimsOf(p).engine;
        const key = engine ? `${p.netns ?? "?"} ${p.sid} ${engine}` : `pid ${p.pid}`;
        groups.set(key, [...(groups.get(key) ?? []), p]);
    }
    const workDir = realDir(owner.workDir);
    const ours: ProcessInfo[] = [];
    const leftAlone: LeftAlone[] = [];
    for (const members of groups.values()) {
        const claims = members.map(claimsOf);
        const stacks = new Set(claims.flatMap((c) => (c.stack ? [shortStack(c.stack)] : [])));
        const projects = new Set(claims.flatMap((c) => (c.project ? [c.project] : [])));
        const dirs = new Set(claims.flatMap((c) => (c.dir ? [c.dir] : [])));
        const backends = new Set(members.flatMap((p) => p.env.PULUMI_BACKEND_URL ?? []));
        const [stack] = stacks;
        const why =
            stacks.size === 0
                ? "no process of its update names a stack"
                : stacks.size > 1
                  ? `its update names several stacks (${[...stacks].join(", ")})`
                  : owner.stack !== undefined && stack !== owner.stack
                    ? `an update of stack ${stack}`
                    : projects.size !== 1 || !projects.has(PROJECT)
                      ? `an update of project ${[...projects].join(", ") || "?"}`
                      : dirs.size === 0
                        ? "no process of its update shows its folder"
                        : dirs.size > 1 || !dirs.has(workDir)
                          ? `an update run in ${[...dirs].join(", ")}`
                          : owner.backendUrl !== undefined &&
                              [...backends].some((b) => b !== owner.backendUrl)
                            ? `an update on backend ${[...backends].join(", ")}`
                            : undefined;
        if (why === undefined) ours.push(...members);
        else
            leftAlone.push(
                ...members.map((p) => ({
                    pid: p.pid,
                    what: [
                        path.basename(p.argv[0] ?? "?"),
                        ...(nodeEntry(p.argv) ? [p.argv[1]] : []),
                    ].join(" "),
                    why,
                })),
            );
    }
    return { ours, leftAlone };
}

/** How recover reaches processes; tests pass their own. */
export interface ProcessIo {
    processes(): ProcessInfo[];
    kill(pid: number): void;
}
const procIo: ProcessIo = {
    processes: readProcesses,
    kill: (pid) => process.kill(pid, "SIGKILL"),
};

/**
 * Stops the plugin processes the killed CLI of `owner`'s stack left behind: the CLI starts its plugins in their
 * own process groups, so a SIGKILL of the CLI leaves the language host, the program (seen spinning and
 * growing without bound) and provider plugins running. Plugins of live updates, of other stacks and those
 * that cannot be tied to one are left alone; the last two are returned for the report.
 */
export function stopOrphanedPlugins(
    owner: PluginOwner,
    io: ProcessIo = procIo,
): { stopped: number[]; leftAlone: LeftAlone[] } {
    const stopped: number[] = [];
    let leftAlone: LeftAlone[] = [];
    // A plugin starting as the others are stopped (a language host spawning the program) is caught by the next pass.
    for (let pass = 0; pass < 3; pass++) {
        const survey = orphanedPluginsOf(io.processes(), owner);
        leftAlone = survey.leftAlone;
        let found = false;
        for (const p of survey.ours) {
            // Still listed on the next pass when the signal has not been delivered yet.
            if (stopped.includes(p.pid)) continue;
            try {
                io.kill(p.pid);
                stopped.push(p.pid);
                found = true;
            } catch {
                /* already gone */
            }
        }
        if (!found) break;
        spawnSync("sleep", ["0.2"]);
    }
    return { stopped, leftAlone };
}

/** The orphaned plugins of a stack, or of every stack of the work dir when none is named: stops them and returns their pids. */
export function killOrphanedPlugins(stack?: string, workDir = PROJECT_ROOT): number[] {
    return stopOrphanedPlugins({ stack, workDir }).stopped;
}

/** The stack's target as its stack file sets it (the program's default otherwise). */
function targetOf(stack: string, workDir: string): string {
    try {
        return readStackSettings(stack, workDir).target;
    } catch {
        return readStackFile(stack, workDir).target ?? "asm";
    }
}

/**
 * recover's refusal: the stack is held by a job that is not provably gone. Thrown before anything is touched,
 * or, when a job took the stack while recover ran, after the steps it names.
 */
export class LiveJobError extends StackLockedError {
    constructor(stack: string, locks: LockInfo[], doneSoFar: string[] = []) {
        super(stack, locks);
        const before =
            doneSoFar.length === 0
                ? "recover changed nothing"
                : `recover stopped after: ${doneSoFar.join("; ")}`;
        this.message =
            `${before}: stack ${stack} is locked by ${locks.length} lock(s) whose holder is not provably gone:\n` +
            locks.map((l) => `  ${describeLock(l)}\n    not stale: ${l.reason}`).join("\n") +
            `\nWait for that job to end, then run recover again. Only if you know it is dead (killed, its machine or ` +
            `container gone): \`npm run recover -- --stack ${stack} --force\`; a live job would then race the next one. ` +
            `A lock older than the ${LOCK_LEASE_HOURS} h lease is removed without --force.`;
    }
}

/** One run of the pulumi CLI, and when: a lock it left is recover's own. */
export interface PulumiRun {
    status: number | null;
    stdout: string;
    stderr: string;
    pid?: number;
    started: number;
    ended: number;
}

/** What recover touches; tests pass their own in place of the backend, this machine, /proc and the CLI. */
export interface RecoverIo extends ProcessIo {
    store: StateStore;
    here: Here;
    pulumi(args: string[]): PulumiRun;
    /** The backend plugins of this stack's updates name, when they name one. */
    backendUrl?: string;
}

export interface RecoverOptions extends EngineOptions {
    /** Remove the locks of jobs not provably gone too: only when you know they are dead. */
    force?: boolean;
    io?: Partial<RecoverIo>;
}

export async function recover(stack: string, opts: RecoverOptions = {}): Promise<string[]> {
    const cwd = opts.workDir ?? PROJECT_ROOT;
    let env: NodeJS.ProcessEnv | undefined;
    const engine = () => (env ??= { ...process.env, ...engineEnv(stack, opts) });
    const io: RecoverIo = {
        ...procIo,
        here: here(),
        pulumi: (args) => {
            const started = Date.now();
            const run = spawnSync(toolchainBinary("pulumi"), [...args, "--stack", stack], {
                cwd,
                env: engine(),
                encoding: "utf8",
            });
            return { ...run, started, ended: Date.now() };
        },
        ...opts.io,
        store: opts.io?.store ?? stateStoreFor(stack, opts),
        // An injected store comes without an engine environment to take the backend from.
        backendUrl:
            opts.io?.backendUrl ?? (opts.io?.store ? undefined : engine().PULUMI_BACKEND_URL),
    };
    const runs: PulumiRun[] = [];
    const pulumi = (args: string[]) => {
        const run = io.pulumi(args);
        runs.push(run);
        return run;
    };
    const done: string[] = [];
    // Locks first: while a job that may be alive holds the stack, stopping its plugins or rewriting its
    // checkpoint would break a running update, so nothing is touched.
    const held = await readLocks(io.store, stack, io.here);
    const live = held.filter((l) => !l.stale);
    if (live.length > 0 && !opts.force) throw new LiveJobError(stack, live);
    const forced = new Set(live.map((l) => l.key));
    const stopPlugins = () => {
        const { stopped, leftAlone } = stopOrphanedPlugins(
            { stack, workDir: cwd, backendUrl: io.backendUrl },
            io,
        );
        if (stopped.length > 0)
            done.push(
                `stopped ${stopped.length} plugin process(es) orphaned by the killed update (pid ${stopped.join(", ")})`,
            );
        if (leftAlone.length > 0)
            done.push(
                `left alone ${leftAlone.length} orphaned plugin process(es) not tied to stack ${stack} (stop them by hand if they are its): ` +
                    leftAlone.map((p) => `pid ${p.pid} ${p.what} (${p.why})`).join("; "),
            );
    };
    stopPlugins();
    const repaired = await repairCheckpoint(io.store, stack);
    if (repaired) done.push(repaired);
    // A lock its own refresh left (a CLI that crashed): that process ran under recover, which waited for its end.
    const ownRun = (lock: LockInfo) =>
        lock.kind === "update" &&
        lock.hostname === io.here.hostname &&
        runs.some(
            (r) =>
                r.pid === lock.pid &&
                Date.parse(lock.timestamp ?? "") >= r.started - 1000 &&
                Date.parse(lock.timestamp ?? "") <= r.ended + 1000,
        );
    const removeLocks = async () => {
        const locks = await readLocks(io.store, stack, io.here);
        const taken = locks.filter((l) => !l.stale && !forced.has(l.key) && !ownRun(l));
        if (taken.length > 0) throw new LiveJobError(stack, taken, done);
        for (const lock of locks) {
            await io.store.remove(lock.key);
            done.push(
                lock.stale
                    ? `removed the stale lock ${describeLock(lock)}`
                    : forced.has(lock.key)
                      ? `removed the lock ${describeLock(lock)} (--force)`
                      : `removed the lock its own refresh left ${describeLock(lock)}`,
            );
        }
    };
    await removeLocks();
    if (targetOf(stack, cwd) === "render") {
        // Nothing live to read back: the render provider writes files and has no cluster to refresh from.
        // Pending operations of the killed update are dropped; the next up rewrites every manifest.
        const exported = pulumi(["stack", "export"]);
        if (exported.status !== 0)
            throw new Error(`pulumi stack export failed:\n${exported.stderr}`);
        const state = JSON.parse(exported.stdout);
        const pending = state.deployment?.pending_operations?.length ?? 0;
        if (pending > 0) {
            delete state.deployment.pending_operations;
            const file = path.join(
                fs.mkdtempSync(path.join(os.tmpdir(), "asm-recover-")),
                "state.json",
            );
            fs.writeFileSync(file, JSON.stringify(state));
            const imported = pulumi(["stack", "import", "--file", file]);
            fs.rmSync(path.dirname(file), { recursive: true, force: true });
            if (imported.status !== 0)
                throw new Error(`pulumi stack import failed:\n${imported.stderr}`);
            done.push(`dropped ${pending} pending operation(s) of the killed update`);
        }
        done.push("render target: nothing live to refresh; the next up rewrites the manifests");
        return done;
    }
    const refreshArgs = ["refresh", "--yes", "--clear-pending-creates", "--non-interactive"];
    let refresh = pulumi(refreshArgs);
    if (refresh.status !== 0) {
        // Once more after a pause: processes of the killed update may still have been winding down. A job that
        // took the stack meanwhile stops recover here.
        spawnSync("sleep", ["3"]);
        stopPlugins();
        await removeLocks();
        const first = `${refresh.stdout}\n${refresh.stderr}`;
        refresh = pulumi(refreshArgs);
        if (refresh.status === 0)
            done.push(
                `refresh succeeded on the second try; the first said:\n${first.trim().split("\n").slice(-8).join("\n")}`,
            );
    }
    if (refresh.status !== 0)
        throw new Error(`pulumi refresh failed:\n${refresh.stdout}\n${refresh.stderr}`);
    done.push("refreshed the state from the target");
    return done;
}
