/**
 * recover: brings a stack back after an update that was killed (SIGKILL, lost machine):
 *  0. plugin processes the killed CLI left behind are stopped;
 *  1. a checkpoint cut short mid-write (the file backend writes in place) is restored from the
 *     backend's own backups: <stack>.json.bak, else the newest readable file under .pulumi/backups;
 *  2. the dead update's lock is removed (`pulumi cancel`);
 *  3. `pulumi refresh` reads what the target really holds and drops pending creates it cannot resolve.
 * The next `up` then converges.
 *   npm run recover -- --stack local
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { parseArgs } from "util";
import { PROJECT } from "../config";
import { UsageError, log, runCli } from "./cli";
import { EngineOptions, PROJECT_ROOT, engineEnv, toolchainBinary } from "./engine";


function readable(file: string): boolean {
    try {
        const doc = JSON.parse(fs.readFileSync(file, "utf8"));
        return typeof doc === "object" && doc !== null && "checkpoint" in doc;
    } catch {
        return false;
    }
}

function copyWithAttrs(from: string, to: string): void {
    fs.copyFileSync(from, to);
    if (fs.existsSync(`${from}.attrs`)) fs.copyFileSync(`${from}.attrs`, `${to}.attrs`);
}

/** Restores an unreadable file-backend checkpoint from the newest readable backup; returns what it did. */
export function repairCheckpoint(backendDir: string, stack: string): string | undefined {
    const checkpoint = path.join(backendDir, ".pulumi", "stacks", PROJECT, `${stack}.json`);
    if (!fs.existsSync(checkpoint) || readable(checkpoint)) return undefined;
    const backups = path.join(backendDir, ".pulumi", "backups", PROJECT, stack);
    const candidates = [
        `${checkpoint}.bak`,
        ...(fs.existsSync(backups)
            ? fs
                  .readdirSync(backups)
                  .filter((f) => f.endsWith(".json"))
                  .map((f) => path.join(backups, f))
                  .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)
            : []),
    ];
    const good = candidates.find((c) => fs.existsSync(c) && readable(c));
    if (!good) throw new Error(`checkpoint ${checkpoint} is unreadable and no readable backup was found`);
    fs.copyFileSync(checkpoint, `${checkpoint}.corrupt-${Date.now()}`);
    copyWithAttrs(good, checkpoint);
    return `restored the cut-short checkpoint from ${path.relative(backendDir, good)}`;
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
    return exe === "node" && /@pulumi\/pulumi\/cmd\/(run|run-policy-pack)(\/index\.js)?$/.test(argv[1] ?? "");
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

export function recover(stack: string, opts: EngineOptions = {}): string[] {
    const env = { ...process.env, ...engineEnv(stack, opts) };
    const cwd = opts.workDir ?? PROJECT_ROOT;
    const pulumi = (args: string[]) => spawnSync(toolchainBinary("pulumi"), [...args, "--stack", stack], { cwd, env, encoding: "utf8" });
    const done: string[] = [];
    const orphans = killOrphanedPlugins();
    if (orphans.length > 0) done.push(`stopped ${orphans.length} plugin process(es) orphaned by the killed update`);
    const backend = env.PULUMI_BACKEND_URL ?? "";
    if (backend.startsWith("file://")) {
        const repaired = repairCheckpoint(backend.slice("file://".length).split("?")[0], stack);
        if (repaired) done.push(repaired);
    }
    const cancel = pulumi(["cancel", "--yes"]);
    if (cancel.status === 0) done.push("removed the stale update lock");
    const refreshArgs = ["refresh", "--yes", "--clear-pending-creates", "--non-interactive"];
    let refresh = pulumi(refreshArgs);
    if (refresh.status !== 0) {
        // Once more after a pause: processes of the killed update may still have been winding down.
        spawnSync("sleep", ["3"]);
        killOrphanedPlugins();
        pulumi(["cancel", "--yes"]);
        const first = `${refresh.stdout}\n${refresh.stderr}`;
        refresh = pulumi(refreshArgs);
        if (refresh.status === 0) done.push(`refresh succeeded on the second try; the first said:\n${first.trim().split("\n").slice(-8).join("\n")}`);
    }
    if (refresh.status !== 0) throw new Error(`pulumi refresh failed:\n${refresh.stdout}\n${refresh.stderr}`);
    done.push("refreshed the state from the target");
    return done;
}

const USAGE = "usage: recover --stack NAME";

export async function main(argv = process.argv.slice(2)): Promise<number> {
    const { values } = parseArgs({ args: argv, options: { stack: { type: "string" }, help: { type: "boolean", short: "h", default: false } } });
    if (values.help) {
        process.stdout.write(`${USAGE}\n`);
        return 0;
    }
    if (!values.stack) throw new UsageError("--stack is required");
    for (const step of recover(values.stack)) log("recover", step);
    log("recover", "done; run `up` to converge");
    return 0;
}

if (require.main === module) runCli("recover", USAGE, main);
