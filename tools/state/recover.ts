/**
 * recover: brings a stack back after an update that was killed (SIGKILL, lost machine, an object store
 * that went away mid-update), on any DIY backend (a folder or an S3-compatible bucket such as OSS):
 *  0. plugin processes the killed CLI left behind are stopped;
 *  1. a checkpoint that cannot be read (the file backend writes in place, so a kill can cut it short) is
 *     restored from the backend's own backups: <stack>.json.bak, else the newest readable one under
 *     .pulumi/backups (objects in a bucket are replaced whole, so there this finds nothing to do);
 *  2. stale locks are removed: those whose holder ran on this machine and is gone. A lock held by a live
 *     process, or by a job on another machine, is left alone and reported (--force removes it: only when
 *     you know that job is dead, since a live update would then race another);
 *  3. `pulumi refresh` reads what the target really holds and drops pending creates it cannot resolve
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
import { StackLockedError, describeLock, readLocks } from "./locks";
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

function processInfo(pid: number): { ppid: number; argv: string[] } | undefined {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
        return { ppid, argv };
    } catch {
        return undefined;
    }
}

/** A Pulumi plugin by what it runs (not by any mention of a plugin name, e.g. a `go build -o pulumi-resource-x`). */
export function isPulumiPlugin(argv: string[]): boolean {
    const exe = path.basename(argv[0] ?? "");
    if (/^pulumi-(resource|language|analyzer)-/.test(exe)) return true;
    return (
        exe === "node" &&
        /@pulumi\/pulumi\/cmd\/(run|run-policy-pack)(\/index\.js)?$/.test(argv[1] ?? "")
    );
}

function isPulumiProcess(argv: string[]): boolean {
    return /^pulumi(-|$)/.test(path.basename(argv[0] ?? "")) || isPulumiPlugin(argv);
}

/**
 * Kills Pulumi plugin processes orphaned by a killed CLI. The CLI starts its plugins in their own process
 * groups, so a SIGKILL of the CLI leaves the language host, the program (seen spinning at 60% CPU and
 * growing to 12 GB) and provider plugins running. A plugin is an orphan when its parent is no longer a
 * Pulumi process; live updates are never touched.
 */
export function killOrphanedPlugins(): number[] {
    const killed: number[] = [];
    // Killing a language host orphans its program in turn, hence the passes.
    for (let pass = 0; pass < 3; pass++) {
        let found = false;
        for (const entry of fs.readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
            const pid = Number(entry);
            const info = processInfo(pid);
            if (!info || pid === process.pid || !isPulumiPlugin(info.argv)) continue;
            const parent = processInfo(info.ppid);
            if (parent && isPulumiProcess(parent.argv)) continue;
            try {
                process.kill(pid, "SIGKILL");
                killed.push(pid);
                found = true;
            } catch {
                /* already gone */
            }
        }
        if (!found) break;
        spawnSync("sleep", ["0.2"]);
    }
    return killed;
}

/** The stack's target as its stack file sets it (the program's default otherwise). */
function targetOf(stack: string, workDir: string): string {
    try {
        return readStackSettings(stack, workDir).target;
    } catch {
        return readStackFile(stack, workDir).target ?? "asm";
    }
}

export interface RecoverOptions extends EngineOptions {
    /** Remove locks of live processes or of other machines too. */
    force?: boolean;
}

export async function recover(stack: string, opts: RecoverOptions = {}): Promise<string[]> {
    const env = { ...process.env, ...engineEnv(stack, opts) };
    const cwd = opts.workDir ?? PROJECT_ROOT;
    const pulumi = (args: string[]) =>
        spawnSync(toolchainBinary("pulumi"), [...args, "--stack", stack], {
            cwd,
            env,
            encoding: "utf8",
        });
    const store = stateStoreFor(stack, opts);
    const done: string[] = [];
    const orphans = killOrphanedPlugins();
    if (orphans.length > 0)
        done.push(`stopped ${orphans.length} plugin process(es) orphaned by the killed update`);
    const repaired = await repairCheckpoint(store, stack);
    if (repaired) done.push(repaired);
    const removeStaleLocks = async () => {
        const locks = await readLocks(store, stack);
        const live = locks.filter((l) => !l.stale && !opts.force);
        if (live.length > 0) throw new StackLockedError(stack, live);
        for (const lock of locks) {
            await store.remove(lock.key);
            done.push(`removed the ${lock.stale ? "stale " : ""}lock ${describeLock(lock)}`);
        }
    };
    await removeStaleLocks();
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
        // Once more after a pause: processes of the killed update may still have been winding down.
        spawnSync("sleep", ["3"]);
        killOrphanedPlugins();
        await removeStaleLocks();
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
