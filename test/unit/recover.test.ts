import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { rolloutLockPrefix, updateLockPrefix } from "../../tools/state/locks";
import {
    ProcessInfo,
    PulumiRun,
    isPulumiPlugin,
    killOrphanedPlugins,
    orphanedPluginsOf,
    recover,
    repairCheckpoint,
    stopOrphanedPlugins,
} from "../../tools/state/recover";
import { StateStore, openStateStore } from "../../tools/state/stateStore";
import { tempDirs } from "../support/tempDirs";
import { until } from "../support/wait";

const backends = tempDirs();

function backend(files: Record<string, string>): string {
    const dir = backends.make("asm-recover-");
    for (const [name, content] of Object.entries(files)) {
        const file = path.join(dir, ".pulumi", name);
        fs.mkdirSync(path.dirname(file), { recursive: true });
        fs.writeFileSync(file, content);
    }
    return dir;
}
const GOOD = JSON.stringify({ version: 3, checkpoint: { stack: "s", latest: { resources: [] } } });
const stackFile = (dir: string) => path.join(dir, ".pulumi/stacks/asm-tcp-shift/s.json");

describe("repairCheckpoint", () => {
    it("leaves a readable checkpoint alone", async () => {
        const dir = backend({ "stacks/asm-tcp-shift/s.json": GOOD });
        assert.equal(await repairCheckpoint(openStateStore(`file://${dir}`), "s"), undefined);
    });

    it("restores a checkpoint cut short mid-write from <stack>.json.bak, keeping the broken one aside", async () => {
        const dir = backend({
            "stacks/asm-tcp-shift/s.json": GOOD.slice(0, 20),
            "stacks/asm-tcp-shift/s.json.bak": GOOD,
        });
        assert.match(
            (await repairCheckpoint(openStateStore(`file://${dir}`), "s")) ?? "",
            /restored .* from .*s\.json\.bak/,
        );
        assert.equal(fs.readFileSync(stackFile(dir), "utf8"), GOOD);
        assert.equal(
            fs.readdirSync(path.dirname(stackFile(dir))).filter((f) => f.includes(".corrupt-"))
                .length,
            1,
        );
    });

    it("falls back to the newest readable file in .pulumi/backups", async () => {
        const dir = backend({
            "stacks/asm-tcp-shift/s.json": "",
            "stacks/asm-tcp-shift/s.json.bak": "{",
            "backups/asm-tcp-shift/s/s.1.json": GOOD,
        });
        assert.match(
            (await repairCheckpoint(openStateStore(`file://${dir}`), "s")) ?? "",
            /backups/,
        );
        assert.equal(fs.readFileSync(stackFile(dir), "utf8"), GOOD);
    });

    it("says so when nothing readable is left", async () => {
        const dir = backend({ "stacks/asm-tcp-shift/s.json": "" });
        await assert.rejects(
            repairCheckpoint(openStateStore(`file://${dir}`), "s"),
            /no readable backup/,
        );
    });
});

describe("isPulumiPlugin", () => {
    it("recognises plugins by what they execute", () => {
        assert.ok(
            isPulumiPlugin([
                "/root/.pulumi/plugins/resource-kubernetes-v4.25.0/pulumi-resource-kubernetes",
                "127.0.0.1:1234",
            ]),
        );
        assert.ok(isPulumiPlugin(["/opt/bin/pulumi-language-nodejs", "127.0.0.1:1234"]));
        assert.ok(
            isPulumiPlugin([
                "/usr/bin/node",
                "/p/node_modules/@pulumi/pulumi/cmd/run/index.js",
                "--monitor",
                "x",
            ]),
        );
        assert.ok(
            isPulumiPlugin(["node", "/p/node_modules/@pulumi/pulumi/cmd/run-policy-pack/index.js"]),
        );
    });
    it("leaves alone processes that merely mention a plugin", () => {
        assert.ok(
            !isPulumiPlugin([
                "go",
                "build",
                "-o",
                "/tmp/x/pulumi-resource-kubernetes",
                "./cmd/pulumi-resource-kubernetes",
            ]),
        );
        assert.ok(!isPulumiPlugin(["/usr/bin/node", "/p/tools/verify.ts"]));
        assert.ok(!isPulumiPlugin(["/usr/bin/pulumi", "up"]));
    });
});

const WORK = "/srv/checkouts/asm-tcp-shift";
const INIT: ProcessInfo = { pid: 1, ppid: 0, sid: 1, argv: ["/sbin/init"], env: {} };

/**
 * The plugin processes of one update as Pulumi starts them (language host, a provider, the program under the
 * language host), under their CLI while it runs, orphaned once it is killed.
 */
function update(o: {
    stack: string;
    port: number;
    first: number;
    cwd?: string;
    live?: boolean;
    program?: boolean;
    netns?: string;
    env?: Record<string, string>;
}): ProcessInfo[] {
    const engine = `127.0.0.1:${o.port}`;
    const cwd = o.cwd ?? WORK;
    const common = { sid: 500, cwd, netns: o.netns ?? "net:[4026531840]" };
    const parent = o.live ? o.first : 1;
    const procs: ProcessInfo[] = [
        {
            ...common,
            pid: o.first + 1,
            ppid: parent,
            argv: ["/opt/bin/pulumi-language-nodejs", engine],
            env: { ...o.env },
        },
        {
            ...common,
            pid: o.first + 2,
            ppid: parent,
            argv: [
                "/root/.pulumi/plugins/resource-kubernetes-v4.25.0/pulumi-resource-kubernetes",
                engine,
            ],
            env: { PULUMI_PROJECT: "asm-tcp-shift", ...o.env },
        },
    ];
    if (o.program !== false)
        procs.push({
            ...common,
            pid: o.first + 3,
            ppid: o.first + 1,
            argv: [
                "/usr/bin/node",
                `${cwd}/node_modules/@pulumi/pulumi/cmd/run/index.js`,
                "--monitor",
                "127.0.0.1:1",
                "--engine",
                engine,
                "--project",
                "asm-tcp-shift",
                "--stack",
                o.stack,
                "--pwd",
                cwd,
                ".",
            ],
            env: { ...o.env },
        });
    if (o.live)
        procs.push({
            ...common,
            pid: o.first,
            ppid: 1,
            argv: ["/usr/bin/pulumi", "up", "--stack", o.stack],
            env: {},
        });
    return procs;
}
const pids = (procs: { pid: number }[]) => procs.map((p) => p.pid).sort();

describe("orphanedPluginsOf", () => {
    it("the plugins a killed update of this stack left behind are its, the program under its language host too", () => {
        const killed = update({ stack: "s", port: 2, first: 100 });
        const { ours, leftAlone } = orphanedPluginsOf([INIT, ...killed], {
            stack: "s",
            workDir: WORK,
        });
        assert.deepEqual(pids(ours), [101, 102, 103]);
        assert.deepEqual(leftAlone, []);
    });

    it("leaves alone, and reports, the plugins of another stack, another checkout and another backend", () => {
        const backend = { PULUMI_BACKEND_URL: "s3://team-state" };
        const procs = [
            INIT,
            ...update({ stack: "other", port: 2, first: 100 }),
            ...update({ stack: "s", port: 3, first: 200, cwd: "/home/me/asm-tcp-shift" }),
            ...update({ stack: "s", port: 4, first: 300, env: backend }),
        ];
        const { ours, leftAlone } = orphanedPluginsOf(procs, {
            stack: "s",
            workDir: WORK,
            backendUrl: "file:///srv/state",
        });
        assert.deepEqual(ours, []);
        const why = Object.fromEntries(leftAlone.map((p) => [p.pid, p.why]));
        assert.equal(why[101], "an update of stack other");
        assert.equal(why[203], "an update run in /home/me/asm-tcp-shift");
        assert.equal(why[302], "an update on backend s3://team-state");
        assert.equal(leftAlone.length, 9);
    });

    it("stops each plugin once, though one may still be listed on the next pass", () => {
        const table = [INIT, ...update({ stack: "s", port: 2, first: 100 })];
        const killed: number[] = [];
        const { stopped } = stopOrphanedPlugins(
            { stack: "s", workDir: WORK },
            { processes: () => table, kill: (pid) => killed.push(pid) },
        );
        assert.deepEqual(
            [killed.sort(), stopped.sort()],
            [
                [101, 102, 103],
                [101, 102, 103],
            ],
        );
    });

    it("never counts plugins under a live CLI, of this stack or another", () => {
        const procs = [INIT, ...update({ stack: "s", port: 2, first: 100, live: true })];
        assert.deepEqual(orphanedPluginsOf(procs, { stack: "s", workDir: WORK }), {
            ours: [],
            leftAlone: [],
        });
    });

    it("leaves alone providers whose update names no stack any more (its program has exited)", () => {
        const procs = [INIT, ...update({ stack: "s", port: 2, first: 100, program: false })];
        const { ours, leftAlone } = orphanedPluginsOf(procs, { stack: "s", workDir: WORK });
        assert.deepEqual(ours, []);
        assert.deepEqual(
            leftAlone.map((p) => p.why),
            ["no process of its update names a stack", "no process of its update names a stack"],
        );
    });

    it("ties a policy pack by the stack and project the engine gives it", () => {
        const killed = update({ stack: "s", port: 2, first: 100, program: false });
        const pack: ProcessInfo = {
            pid: 110,
            ppid: 1,
            sid: 500,
            cwd: `${WORK}/policy`,
            netns: "net:[4026531840]",
            argv: [
                "/usr/bin/node",
                `${WORK}/policy/node_modules/@pulumi/pulumi/cmd/run-policy-pack/index.js`,
                "127.0.0.1:2",
                ".",
            ],
            env: { PULUMI_STACK: "s", PULUMI_PROJECT: "asm-tcp-shift" },
        };
        const { ours } = orphanedPluginsOf([INIT, ...killed, pack], { stack: "s", workDir: WORK });
        assert.deepEqual(pids(ours), [101, 102, 110]);
    });

    it("tells apart two updates on one engine port in different network namespaces", () => {
        const procs = [
            INIT,
            ...update({ stack: "s", port: 2, first: 100 }),
            ...update({
                stack: "s",
                port: 2,
                first: 200,
                netns: "net:[4026532777]",
                program: false,
            }),
        ];
        const { ours, leftAlone } = orphanedPluginsOf(procs, { stack: "s", workDir: WORK });
        assert.deepEqual(pids(ours), [101, 102, 103]);
        assert.deepEqual(pids(leftAlone), [201, 202]);
    });
});

describe("killOrphanedPlugins", () => {
    const work = tempDirs();
    it("stops the orphaned plugins of its stack and leaves another stack's running (real processes)", async () => {
        const dir = fs.realpathSync(work.make("asm-recover-work-"));
        // Node under a provider's name, and at the program's entry point: each sleeps until stopped.
        const entry = path.join(dir, "node_modules/@pulumi/pulumi/cmd/run/index.js");
        fs.mkdirSync(path.dirname(entry), { recursive: true });
        fs.writeFileSync(entry, "setInterval(() => {}, 1 << 30);\n");
        fs.mkdirSync(path.join(dir, "bin"));
        for (const name of ["node", "pulumi-resource-fake"])
            fs.symlinkSync(process.execPath, path.join(dir, "bin", name));
        // Started from a shell that exits at once: orphans, as a killed CLI leaves them.
        const orphan = (...argv: string[]) =>
            Number(
                spawnSync(
                    "sh",
                    ["-c", '"$@" </dev/null >/dev/null 2>&1 & echo $!', "sh", ...argv],
                    {
                        cwd: dir,
                        encoding: "utf8",
                    },
                ).stdout.trim(),
            );
        const plugins = (stack: string, port: number) => [
            orphan(
                `${dir}/bin/pulumi-resource-fake`,
                "-e",
                "setInterval(() => {}, 1 << 30)",
                `127.0.0.1:${port}`,
            ),
            orphan(
                `${dir}/bin/node`,
                entry,
                "--engine",
                `127.0.0.1:${port}`,
                "--project",
                "asm-tcp-shift",
                "--stack",
                stack,
                "--pwd",
                dir,
            ),
        ];
        const mine = plugins("s", 2);
        const theirs = plugins("other", 3);
        const running = (pid: number) => {
            try {
                return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").startsWith(`${dir}/bin/`);
            } catch {
                return false;
            }
        };
        try {
            await until("the fake plugins", () => [...mine, ...theirs].every(running), 10_000);
            assert.deepEqual(killOrphanedPlugins("s", dir).sort(), mine.sort());
            assert.ok(theirs.every(running), "the other stack's plugins still run");
        } finally {
            for (const pid of [...mine, ...theirs]) {
                try {
                    process.kill(pid, "SIGTERM");
                } catch {
                    /* stopped by the test */
                }
            }
        }
    });
});

describe("recover", () => {
    const dirs = tempDirs();
    const BOOT_ID = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    const PID_NAMESPACE = fs.readlinkSync("/proc/self/ns/pid");
    const deadPid = () =>
        Number(spawnSync("sh", ["-c", "echo $$"], { encoding: "utf8" }).stdout.trim());
    const CUT = GOOD.slice(0, 20);

    /** A render stack whose killed update left a cut-short checkpoint, a lock, and plugins of it and of another stack. */
    function scene(lock: { key: string; body: Record<string, unknown> }) {
        const workDir = fs.realpathSync(dirs.make("asm-recover-work-"));
        fs.writeFileSync(
            path.join(workDir, "Pulumi.s.yaml"),
            'config:\n  asm-tcp-shift:target: render\n  asm-tcp-shift:v2Weight: "10"\n',
        );
        const dir = backend({
            "stacks/asm-tcp-shift/s.json": CUT,
            "stacks/asm-tcp-shift/s.json.bak": GOOD,
        });
        const files = openStateStore(`file://${dir}`);
        const changes: string[] = [];
        const store: StateStore = {
            ...files,
            describe: (key) => files.describe(key),
            read: (key) => files.read(key),
            list: (prefix) => files.list(prefix),
            write: (key, data) => (changes.push(`write ${key}`), files.write(key, data)),
            remove: (key) => (changes.push(`remove ${key}`), files.remove(key)),
        };
        let table = [
            INIT,
            ...update({ stack: "s", port: 2, first: 100, cwd: workDir }),
            ...update({ stack: "other", port: 3, first: 200, cwd: workDir }),
        ];
        const killed: number[] = [];
        const cli: string[][] = [];
        const io = {
            store,
            processes: () => table,
            kill: (pid: number) => {
                killed.push(pid);
                table = table.filter((p) => p.pid !== pid);
            },
            pulumi: (args: string[]): PulumiRun => {
                cli.push(args);
                const stdout = JSON.stringify({ version: 3, deployment: {} });
                return { status: 0, stdout, stderr: "", started: Date.now(), ended: Date.now() };
            },
        };
        const lockFile = path.join(dir, lock.key);
        fs.mkdirSync(path.dirname(lockFile), { recursive: true });
        fs.writeFileSync(lockFile, JSON.stringify(lock.body));
        const checkpoint = () => fs.readFileSync(stackFile(dir), "utf8");
        const lockLeft = () => fs.existsSync(lockFile);
        // backendUrl: how the store is reached without io (the engine environment is not computed here).
        const opts = { workDir, backendUrl: `file://${dir}`, io };
        return { opts, changes, killed, cli, checkpoint, lockLeft };
    }
    const pulumiLock = (pid: number) => ({
        pid,
        username: "ci",
        hostname: os.hostname(),
        timestamp: new Date().toISOString(),
    });

    it("while a live job holds the stack it stops nothing, rewrites nothing, removes nothing and runs no CLI", async () => {
        const s = scene({
            key: `${updateLockPrefix("s")}live.json`,
            body: pulumiLock(process.pid),
        });
        const err = await recover("s", s.opts).then(
            () => new Error("recover went on"),
            (e: Error) => e,
        );
        assert.equal(s.checkpoint(), CUT, "the checkpoint was not rewritten");
        assert.deepEqual(s.changes, [], "nothing written to or removed from the backend");
        assert.ok(s.lockLeft());
        assert.deepEqual(s.killed, []);
        assert.deepEqual(s.cli, []);
        assert.match(err.message, /^recover changed nothing: stack s is locked by 1 lock\(s\)/);
        assert.ok(
            err.message.includes(
                `live.json: pulumi update by ci@${os.hostname()} (pid ${process.pid})`,
            ),
            err.message,
        );
        assert.ok(err.message.includes("npm run recover -- --stack s --force"), err.message);
    });

    it("leaves the lock of a same-named host in another pid namespace, and everything else, alone", async () => {
        const s = scene({
            key: `${rolloutLockPrefix("s")}ci.json`,
            body: { ...pulumiLock(deadPid()), bootId: BOOT_ID, pidNamespace: "pid:[4026532999]" },
        });
        const err = await recover("s", s.opts).then(
            () => new Error("recover went on"),
            (e: Error) => e,
        );
        assert.ok(s.lockLeft(), "the lock is still there");
        assert.equal(s.checkpoint(), CUT);
        assert.deepEqual([s.killed, s.changes, s.cli], [[], [], []]);
        assert.match(err.message, /^recover changed nothing[\s\S]*another pid namespace/);
    });

    it("a pulumi update lock of a dead pid of this hostname needs --force; then only this stack's plugins stop", async () => {
        const s = scene({
            key: `${updateLockPrefix("s")}killed.json`,
            body: pulumiLock(deadPid()),
        });
        await assert.rejects(recover("s", s.opts), /recover changed nothing/);
        assert.deepEqual([s.killed, s.changes, s.cli], [[], [], []]);
        const steps = await recover("s", { ...s.opts, force: true });
        assert.deepEqual(s.killed.sort(), [101, 102, 103]);
        assert.equal(s.checkpoint(), GOOD);
        assert.ok(!s.lockLeft());
        assert.ok(
            steps.some((x) => /^removed the lock .*killed\.json.*\(--force\)$/.test(x)),
            steps.join("\n"),
        );
        assert.ok(
            steps.some(
                (x) =>
                    x.startsWith("left alone 3 orphaned plugin process(es) not tied to stack s") &&
                    x.includes("an update of stack other"),
            ),
            steps.join("\n"),
        );
        assert.deepEqual(s.cli, [["stack", "export"]]);
    });

    it("removes without --force a lock of this boot and pid namespace whose process is gone", async () => {
        const s = scene({
            key: `${rolloutLockPrefix("s")}gone.json`,
            body: { ...pulumiLock(deadPid()), bootId: BOOT_ID, pidNamespace: PID_NAMESPACE },
        });
        const steps = await recover("s", s.opts);
        assert.ok(!s.lockLeft());
        assert.ok(
            steps.some(
                (x) => x.startsWith("removed the stale lock") && x.includes("that process is gone"),
            ),
        );
        assert.deepEqual(s.killed.sort(), [101, 102, 103]);
    });
});
