import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { EngineEvent, Stack } from "@pulumi/pulumi/automation";
import {
    EngineOptions,
    engineEnv,
    gatedUp,
    openStack,
    scratchProject,
} from "../../tools/engine/engine";
import { StackLockedError, readLocks } from "../../tools/state/locks";
import { recover } from "../../tools/state/recover";
import { renderedVirtualService, routesOf } from "../../tools/rollout/routes";
import { shift } from "../../tools/rollout/shift";
import { StateStore } from "../../tools/state/stateStore";
import {
    pulumiCli,
    removeStackOnBucket,
    renderStackOnBucket,
    soundCheckpoint,
    stateCanaryWeight,
} from "../support/backend";
import { TestObjectStore } from "../support/objectstore";
import { until } from "../support/wait";

const STACK = "team";
const CHECKPOINT = `.pulumi/stacks/asm-tcp-shift/${STACK}.json`;

/**
 * Two jobs on one stack in a shared bucket (the local S3 server), and faults of the server and of a job:
 * the render target keeps each engine run to seconds.
 */
describe("contention and faults on the object-store backend", () => {
    let server: TestObjectStore;
    let store: StateStore;
    let dir: string;
    let engine: EngineOptions;
    let stack: Stack;
    const cliEnv = () => ({ ...process.env, ...engineEnv(STACK, engine) });
    const up = (...extra: string[]) =>
        pulumiCli(["up", "--yes", "--non-interactive", "--stack", STACK, ...extra], dir, cliEnv());
    const weights = (renderDir = "rendered") =>
        routesOf(renderedVirtualService(path.join(dir, renderDir)))[0].destinations.map(
            (d) => d.weight,
        );
    const updateLock = () =>
        readLocks(store, STACK).then((ls) => ls.find((l) => l.kind === "update"));
    const stateWeight = (s: Stack = stack) => stateCanaryWeight(s);

    before(async () => {
        ({ server, store, dir, engine, stack } = await renderStackOnBucket("contention", STACK));
    });

    after(() => removeStackOnBucket({ server, dir }));

    it("two ups on one stack: exactly one runs, the other fails at once naming the lock and how to clear it", async () => {
        await stack.setConfig("v2Weight", { value: "10" });
        const updatesBefore = (await stack.history()).length;
        const first = up();
        const lock = await until("the first up's lock object", updateLock, 60_000, 25);
        const second = up();
        // The project's own gated up (preview, then up) refuses before its preview.
        const gatedStarted = Date.now();
        await assert.rejects(
            gatedUp(stack),
            (err: Error) => err instanceof StackLockedError && err.message.includes(lock.key),
        );
        const gatedMs = Date.now() - gatedStarted;
        const [a, b] = await Promise.all([first.done, second.done]);
        assert.equal(a.code, 0, a.output);
        assert.notEqual(b.code, 0, b.output);
        assert.match(b.output, /the stack is currently locked by 1 lock\(s\)/);
        assert.match(b.output, /delete the lock file with `pulumi cancel`/);
        assert.ok(
            b.output.includes(lock.key),
            `the message names the lock object ${lock.key}:\n${b.output}`,
        );
        assert.match(b.output, new RegExp(`created by .*\\(pid ${lock.pid}\\)`));
        assert.ok(b.ms < 15_000, `the second up took ${b.ms} ms to fail`);
        assert.ok(gatedMs < 2_000, `the gated up took ${gatedMs} ms to fail`);
        assert.equal(
            (await stack.history()).length,
            updatesBefore + 1,
            "one update recorded, not two",
        );
        assert.deepEqual(weights(), [90, 10]);
        assert.deepEqual(await readLocks(store, STACK), []);
        process.stderr.write(`# two ups: second failed after ${b.ms} ms (gated: ${gatedMs} ms)\n`);
    });

    it("two ups started in the same instant never both run", async () => {
        await stack.setConfig("v2Weight", { value: "15" });
        const updatesBefore = (await stack.history()).length;
        const runs = await Promise.all(
            [up("--skip-preview"), up("--skip-preview")].map((r) => r.done),
        );
        const ok = runs.filter((r) => r.code === 0).length;
        // The CLI lists the stack's locks, then reads each: a lock it listed may be released before it reads it,
        // and the CLI then fails on reading that object. Either way it saw the other run's lock and did nothing.
        for (const r of runs.filter((r) => r.code !== 0))
            assert.match(
                r.output,
                /the stack is currently locked by \d lock\(s\)|blob \(key "\.pulumi\/locks\/organization\/asm-tcp-shift\/team\/[^"]+\.json"\) \(code=NotFound\)/,
            );
        assert.ok(ok <= 1, "both ups ran");
        assert.equal((await stack.history()).length, updatesBefore + ok);
        assert.deepEqual(await readLocks(store, STACK), []);
        process.stderr.write(
            `# simultaneous ups: ${ok} ran, ${2 - ok} refused (${runs.map((r) => r.ms).join(", ")} ms)\n`,
        );
        if (ok === 0) await stack.up();
        assert.deepEqual(weights(), [85, 15]);
    });

    it("two shifts on one stack: one runs, the other is refused at once naming the rollout lock", async () => {
        // The second job has its own checkout: the same stack file (encryption salt included), its own folder.
        const other = scratchProject(
            fs.mkdtempSync(path.join(os.tmpdir(), "asm-tcp-shift-contention-b-")),
        );
        fs.copyFileSync(
            path.join(dir, `Pulumi.${STACK}.yaml`),
            path.join(other, `Pulumi.${STACK}.yaml`),
        );
        const otherFile = () => fs.readFileSync(path.join(other, `Pulumi.${STACK}.yaml`), "utf8");
        const otherBefore = otherFile();
        try {
            const first = shift({
                stack: STACK,
                steps: [20, 30],
                gate: { kind: "command", command: "sleep 2" },
                pause: false,
                force: false,
                engine,
                workDir: dir,
            });
            const lock = await until(
                "the first shift's rollout lock",
                () => readLocks(store, STACK).then((ls) => ls.find((l) => l.kind === "rollout")),
                60_000,
                25,
            );
            const started = Date.now();
            const second = await shift({
                stack: STACK,
                steps: [90],
                gate: { kind: "none" },
                pause: false,
                force: false,
                engine: { ...engine, workDir: other },
                workDir: other,
            });
            const ms = Date.now() - started;
            assert.equal(second.outcome, "locked");
            assert.ok(second.message?.includes(lock.key), second.message);
            assert.match(second.message ?? "", /shift rollout by .* \(pid \d+\)/);
            assert.match(second.message ?? "", /npm run recover -- --stack team/);
            assert.ok(ms < 5_000, `the second shift took ${ms} ms to be refused`);
            const done = await first;
            assert.equal(done.outcome, "completed");
            assert.deepEqual(weights(), [70, 30]);
            assert.deepEqual(await readLocks(store, STACK), [], "the rollout lock is released");
            assert.equal(otherFile(), otherBefore, "the refused shift changed nothing");
            process.stderr.write(`# two shifts: second refused after ${ms} ms\n`);
        } finally {
            fs.rmSync(other, { recursive: true, force: true });
        }
    });

    it("a preview beside an up never sees a half-written state", async () => {
        const race = await openStack("race", engine);
        await race.setAllConfig({
            target: { value: "render" },
            renderDir: { value: "rendered-race" },
            v2Weight: { value: "0" },
        });
        const key = ".pulumi/stacks/asm-tcp-shift/race.json";
        let running = true;
        const versions = new Set<string>();
        let reads = 0;
        const reader = (async () => {
            while (running) {
                const text = (await store.read(key))?.toString();
                if (text !== undefined) {
                    versions.add(soundCheckpoint(text).length + ":" + text.length);
                    reads++;
                }
            }
        })();
        const previews: number[] = [];
        const previewer = (async () => {
            const watcher = await openStack("race", engine);
            while (running) {
                const p = await watcher.preview();
                previews.push(Object.values(p.changeSummary).reduce((a, b) => a + (b ?? 0), 0));
            }
        })();
        const result = await race.up();
        running = false;
        await Promise.all([reader, previewer]);
        // The 15 objects and components.
        assert.equal(result.summary.resourceChanges?.create, 15);
        assert.ok(
            reads > 10 && versions.size >= 3,
            `read ${reads} times, ${versions.size} versions`,
        );
        assert.ok(
            previews.length >= 1 && previews.every((n) => n === 15),
            `previews saw ${previews.join(", ")} resources`,
        );
        soundCheckpoint((await store.read(key))!.toString());
        await race.destroy();
        process.stderr.write(
            `# preview beside up: ${reads} reads of ${versions.size} checkpoint versions, ${previews.length} previews, all sound\n`,
        );
    });

    it("the object server killed during an up and restarted: the update completes or fails clearly, and no state is lost", async () => {
        await stack.setAllConfig({ v2Weight: { value: "40" }, replicas: { value: "2" } });
        let killedAt = 0;
        const events: EngineEvent[] = [];
        const running = stack.up({
            onEvent: (e) => {
                events.push(e);
                if (!killedAt && e.resourcePreEvent?.metadata.op === "update") {
                    server.kill();
                    killedAt = Date.now();
                }
            },
        });
        await until("the kill", () => killedAt > 0, 60_000, 25);
        // Meanwhile another command reports the outage plainly.
        const during = await pulumiCli(["stack", "output", "--stack", STACK], dir, cliEnv()).done;
        assert.notEqual(during.code, 0);
        assert.match(during.output, /connection refused/);
        assert.ok(
            during.output.includes(new URL(server.url).searchParams.get("endpoint")!),
            during.output,
        );
        // Down for a few seconds, as a restarted pod or process would be.
        await new Promise((r) => setTimeout(r, Math.max(0, killedAt + 4_000 - Date.now())));
        server.start();
        const downMs = Date.now() - killedAt;
        const outcome = await running.then(
            (r) => r.summary.result,
            (err: Error) => err.message,
        );
        // Whatever happened, the bucket holds a whole, sound checkpoint.
        soundCheckpoint((await store.read(CHECKPOINT))!.toString());
        if (outcome !== "succeeded") {
            assert.match(outcome, /connection refused|the stack is currently locked|IO error/);
            // That up's CLI has exited; a lock it left cannot prove so (the CLI records no boot id or pid namespace).
            await recover(STACK, { ...engine, force: true });
            await stack.up();
        }
        assert.equal(await stateWeight(), 40);
        assert.deepEqual(weights(), [60, 40]);
        const again = await stack.preview();
        assert.deepEqual(Object.keys(again.changeSummary), ["same"]);
        assert.deepEqual(await readLocks(store, STACK), []);
        process.stderr.write(
            `# server down ${downMs} ms mid-update: the up ${outcome === "succeeded" ? "retried its writes and succeeded" : `failed: ${outcome.split("\n").find((l) => /error/i.test(l))}`}; meanwhile \`stack output\` failed in ${during.ms} ms\n`,
        );
    });

    it("a job killed mid-update leaves a lock that recover refuses to clear without --force; with it, the next up converges", async () => {
        await stack.setConfig("v2Weight", { value: "50" });
        const job = up("--skip-preview");
        const lock = await until("the job's lock", updateLock, 60_000, 25);
        job.kill();
        await job.done;
        await assert.rejects(stack.up(), /the stack is currently locked by 1 lock/);
        // The CLI records no boot id or pid namespace in its lock: a dead pid of a same-named host proves nothing.
        assert.equal((await readLocks(store, STACK))[0]?.stale, false);
        await assert.rejects(
            recover(STACK, engine),
            /^(Error: )?recover changed nothing: stack team is locked by 1 lock\(s\)[\s\S]*--force/,
        );
        assert.ok(await store.read(lock.key), "the lock is still there");
        const steps = await recover(STACK, { ...engine, force: true });
        assert.ok(
            steps.some(
                (s) =>
                    s.startsWith("removed the lock") &&
                    s.includes(lock.key) &&
                    s.endsWith("(--force)"),
            ),
            steps.join("; "),
        );
        assert.ok(
            steps.includes(
                "render target: nothing live to refresh; the next up rewrites the manifests",
            ),
            steps.join("; "),
        );
        await stack.up();
        assert.deepEqual(weights(), [50, 50]);
        assert.deepEqual(Object.keys((await stack.preview()).changeSummary), ["same"]);
    });

    it("recover leaves the lock of a live job alone", async () => {
        const key = `.pulumi/locks/organization/asm-tcp-shift/${STACK}/live-job.json`;
        await store.write(
            key,
            JSON.stringify({
                pid: process.pid,
                username: "ci",
                hostname: os.hostname(),
                timestamp: new Date().toISOString(),
            }),
        );
        try {
            await assert.rejects(
                recover(STACK, engine),
                /stack team is locked by 1 lock\(s\)[\s\S]*live-job\.json/,
            );
            assert.ok(await store.read(key), "the live job's lock is still there");
        } finally {
            await store.remove(key);
        }
    });
});
