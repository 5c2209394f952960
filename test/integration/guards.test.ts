import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import {
    EngineOptions,
    engineEnv,
    openStack,
    scratchProject,
    stateStoreOf,
    toolchainBinary,
} from "../../tools/engine/engine";
import { runPreview } from "../../tools/rollout/preview";
import { shift } from "../../tools/rollout/shift";
import { renderedVirtualService, routesOf } from "../../tools/rollout/routes";
import { acquireRolloutLock } from "../../tools/state/locks";

/**
 * Every writer runs the program and, when it asks for the pack, the pack: so the rollout lock and the step limit
 * hold for a plain `pulumi up` through the real CLI, which passes nothing (no lock key, no previous weight), as the
 * deploy workflow's apply step and `npm run pulumi -- up` run it.
 */
describe("one guard for every writer: a plain pulumi up", () => {
    const STACK = "guards";
    let dir: string;
    let engine: EngineOptions;
    let stack: Stack;

    /** The pinned CLI in the engine's environment, in the scratch project, with what the command line says only. */
    const pulumi = (...args: string[]) => {
        const r = spawnSync(toolchainBinary("pulumi"), [...args, "--stack", STACK], {
            cwd: dir,
            env: { ...process.env, ...engineEnv(STACK, engine) },
            encoding: "utf8",
        });
        return { status: r.status, output: `${r.stdout}\n${r.stderr}` };
    };
    const weightsOnDisk = () =>
        routesOf(renderedVirtualService(path.join(dir, "rendered")))[0].destinations.map(
            (d) => d.weight,
        );
    // Sorted by URN: a refused run may rewrite the checkpoint in another order without changing any resource.
    const state = async (only: (r: any) => boolean = () => true) =>
        ((await stack.exportStack()).deployment.resources ?? [])
            .filter(only)
            .map((r: any) => ({ urn: r.urn, outputs: r.outputs }))
            .sort((a: any, b: any) => a.urn.localeCompare(b.urn));
    /**
     * The objects' records. An update that skips its preview registers every resource, and a resource policy stops
     * only the one it judges: the engine then still records the outputs the components (and the stack) reported,
     * which exist in the state only.
     */
    const objects = () => state((r) => r.custom);

    before(async () => {
        dir = scratchProject(fs.mkdtempSync(path.join(os.tmpdir(), "asm-tcp-shift-guards-")));
        engine = {
            workDir: dir,
            backendUrl: `file://${path.join(dir, ".state")}`,
            env: { PULUMI_CONFIG_PASSPHRASE: "guards-test" },
        };
        stack = await openStack(STACK, engine);
        await stack.setAllConfig({ target: { value: "render" }, v2Weight: { value: "20" } });
        await stack.up();
        assert.deepEqual(weightsOnDisk(), [80, 20]);
    });

    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("is refused while a shift holds the rollout lock, naming the shift, with nothing changed", async () => {
        // A shift paused between steps holds this lock, taken as shift takes it.
        const lock = await acquireRolloutLock(stateStoreOf(stack), STACK);
        try {
            const before = await state();
            // A merge resets the weight in the stack file.
            await stack.setConfig("v2Weight", { value: "0" });
            for (const args of [
                ["up", "--yes", "--skip-preview"],
                ["up", "--yes"],
            ]) {
                const run = pulumi(...args);
                assert.notEqual(run.status, 0, run.output);
                assert.match(run.output, /Stack guards is in the middle of a rollout/);
                assert.ok(run.output.includes(lock.key), run.output);
                assert.match(run.output, /shift rollout by .*\(pid \d+\)/);
                assert.match(run.output, /npm run recover -- --stack guards/);
            }
            // The Automation API's update, with no policy pack and no config of its own, is refused the same way.
            await assert.rejects(stack.up(), /Stack guards is in the middle of a rollout/);
            assert.deepEqual(await state(), before);
            assert.deepEqual(weightsOnDisk(), [80, 20]);
            // A preview changes nothing: it goes on, told that an update would be refused.
            const preview = pulumi("preview");
            assert.equal(preview.status, 0, preview.output);
            assert.match(preview.output, /an update would be refused/);
        } finally {
            await lock.release();
            await stack.setConfig("v2Weight", { value: "20" });
        }
        // Once the rollout ends, the same update runs.
        const run = pulumi("up", "--yes", "--skip-preview");
        assert.equal(run.status, 0, run.output);
    });

    it("with --policy-pack, moving the weight by more than the environment's step is refused, no previous weight configured", async () => {
        const before = { state: await state(), objects: await objects() };
        await stack.setConfig("v2Weight", { value: "80" });
        const refused = (run: { status: number | null; output: string }) => {
            assert.notEqual(run.status, 0, run.output);
            assert.match(
                run.output,
                /mandatory[\s\S]*max-weight-step[\s\S]*v2 weight moves 20 -> 80 \(60 points\); the largest allowed step is 25/,
            );
        };
        const policy = [
            "--policy-pack",
            "policy",
            "--policy-pack-config",
            "policy/config/prod.json",
        ];
        try {
            // prod's policy config makes the step limit mandatory. An up with its preview stops in the preview.
            refused(pulumi("up", "--yes", ...policy));
            assert.deepEqual(await state(), before.state);
            assert.deepEqual(weightsOnDisk(), [80, 20]);
            // The deploy workflow's apply step skips the preview: the VirtualService is stopped before it is written.
            refused(pulumi("up", "--yes", "--skip-preview", ...policy));
            assert.deepEqual(await objects(), before.objects);
            assert.deepEqual(weightsOnDisk(), [80, 20]);
            // A step within the limit goes through.
            await stack.setConfig("v2Weight", { value: "45" });
            const run = pulumi("up", "--yes", "--skip-preview", ...policy);
            assert.equal(run.status, 0, run.output);
            assert.deepEqual(weightsOnDisk(), [55, 45]);
        } finally {
            await stack.setConfig("v2Weight", { value: "45" });
        }
    });

    it("during a real shift's pause a plain up is refused, while the shift's own steps go on", async () => {
        const during: { status: number | null; output: string }[] = [];
        const result = await shift({
            stack: STACK,
            steps: [55, 65],
            gate: { kind: "none" },
            pause: true,
            force: false,
            engine,
            workDir: dir,
            confirm: async () => {
                during.push(pulumi("up", "--yes", "--skip-preview"));
                return true;
            },
        });
        assert.equal(result.outcome, "completed", JSON.stringify(result));
        assert.deepEqual(weightsOnDisk(), [35, 65]);
        assert.equal(during.length, 1);
        assert.notEqual(during[0].status, 0, during[0].output);
        assert.match(during[0].output, /Stack guards is in the middle of a rollout/);
        // The rollout is over: its lock is gone, and so is the refusal.
        const run = pulumi("up", "--yes", "--skip-preview");
        assert.equal(run.status, 0, run.output);
    });

    it("the PR preview judges a new stack's weight from 0, not from the weight it is about to set", async () => {
        const fresh = await openStack("guards-new", engine);
        await fresh.setAllConfig({
            target: { value: "render" },
            renderDir: { value: "rendered-new" },
            v2Weight: { value: "80" },
        });
        const summary = await runPreview("guards-new", engine);
        assert.ok(summary.ok, summary.output);
        assert.ok(
            summary.violations.some((v) =>
                /^\[advisory\] max-weight-step .*v2 weight moves 0 -> 80 \(80 points\); the largest allowed step is 50/.test(
                    v,
                ),
            ),
            summary.violations.join("\n"),
        );
    });
});
