import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { EngineOptions } from "../../tools/engine/engine";
import { recover } from "../../tools/state/recover";
import { renderedVirtualService, routesOf } from "../../tools/rollout/routes";
import { StateStore } from "../../tools/state/stateStore";
import {
    removeStackOnBucket,
    renderStackOnBucket,
    soundCheckpoint,
    stateCanaryWeight,
} from "../support/backend";
import { TestObjectStore } from "../support/objectstore";

const STACK = "outage";
const CHECKPOINT = `.pulumi/stacks/asm-tcp-shift/${STACK}.json`;

/**
 * The object server gone for longer than the CLI's retries of a checkpoint write (pulumi/pkg/backend/diy/state.go:
 * 10 retries, 1 s apart and growing by 1.2x, each with the S3 client's own retries; about 80 s here, mostly idle, so
 * scripts/test-all.sh runs this file beside the integration and rollout tiers).
 */
describe("a long outage of the object-store backend", () => {
    let server: TestObjectStore;
    let store: StateStore;
    let dir: string;
    let engine: EngineOptions;
    let stack: Stack;
    const weights = () =>
        routesOf(renderedVirtualService(path.join(dir, "rendered")))[0].destinations.map(
            (d) => d.weight,
        );
    const stateWeight = (s: Stack = stack) => stateCanaryWeight(s);

    before(async () => {
        ({ server, store, dir, engine, stack } = await renderStackOnBucket("outage", STACK));
    });

    after(() => removeStackOnBucket({ server, dir }));

    it("the object server down for longer than the CLI retries: the up fails clearly, the state holds, recover converges", async () => {
        await stack.setAllConfig({ v2Weight: { value: "45" }, replicas: { value: "2" } });
        const before = (await store.read(CHECKPOINT))!.toString();
        let killedAt = 0;
        const running = stack.up({
            onEvent: (e) => {
                if (!killedAt && e.resourcePreEvent?.metadata.op === "update") {
                    server.kill();
                    killedAt = Date.now();
                }
            },
        });
        const error = await running.then(
            () => "",
            (err: Error) => err.message,
        );
        const failedAfter = Date.now() - killedAt;
        server.start();
        assert.ok(killedAt > 0, "the server was killed mid-update");
        assert.match(
            error,
            /An IO error occurred while writing the new snapshot file[\s\S]*connection refused/,
        );
        // The bucket holds the last whole checkpoint (before or after the step), never less than before the update.
        const after = soundCheckpoint((await store.read(CHECKPOINT))!.toString());
        assert.deepEqual(after.sort(), soundCheckpoint(before).sort());
        // The next command says the stack is locked by the dead update, and how to clear it.
        await assert.rejects(
            stack.up(),
            /the stack is currently locked by 1 lock[\s\S]*pulumi cancel/,
        );
        // The CLI has exited, but its lock cannot prove so (it records no boot id or pid namespace): --force.
        await assert.rejects(recover(STACK, engine), /^(Error: )?recover changed nothing/);
        const steps = await recover(STACK, { ...engine, force: true });
        assert.ok(
            steps.some((s) => s.startsWith("removed the lock") && s.endsWith("(--force)")),
            steps.join("; "),
        );
        await stack.up();
        assert.equal(await stateWeight(), 45);
        assert.deepEqual(weights(), [55, 45]);
        assert.deepEqual(Object.keys((await stack.preview()).changeSummary), ["same"]);
        process.stderr.write(
            `# server down for good mid-update: the up failed after ${failedAfter} ms with: ${error
                .split("\n")
                .find((l) => /IO error/.test(l))
                ?.trim()}\n`,
        );
    });
});
