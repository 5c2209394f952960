/**
 * recover: brings a stack back after an update that was killed (SIGKILL, lost machine):
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
import { UsageError, log, runCli } from "./cli";
import { EngineOptions, PROJECT_ROOT, engineEnv, toolchainBinary } from "./engine";

const PROJECT = "asm-tcp-shift";

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

export function recover(stack: string, opts: EngineOptions = {}): string[] {
    const env = { ...process.env, ...engineEnv(stack, opts) };
    const cwd = opts.workDir ?? PROJECT_ROOT;
    const pulumi = (args: string[]) => spawnSync(toolchainBinary("pulumi"), [...args, "--stack", stack], { cwd, env, encoding: "utf8" });
    const done: string[] = [];
    const backend = env.PULUMI_BACKEND_URL ?? "";
    if (backend.startsWith("file://")) {
        const repaired = repairCheckpoint(backend.slice("file://".length).split("?")[0], stack);
        if (repaired) done.push(repaired);
    }
    const cancel = pulumi(["cancel", "--yes"]);
    if (cancel.status === 0) done.push("removed the stale update lock");
    const refresh = pulumi(["refresh", "--yes", "--clear-pending-creates", "--non-interactive"]);
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
