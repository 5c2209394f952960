import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { EchoServer, startEchoServer } from "../../tools/echoServers";
import { EngineOptions, openStack, scratchProject } from "../../tools/engine";
import { RunningProxy, startWeightedProxy } from "../../tools/localGateway";
import { renderedVirtualService, routesOf } from "../../tools/routes";
import { Gate, ShiftOptions, shift } from "../../tools/shift";
import { seededRandom } from "../support/random";

/**
 * shift against a render-target stack, with a weighted proxy that follows the rendered VirtualService
 * in front of Istio's tcp-echo servers: the gate measures the split the stack just declared.
 */
describe("shift", () => {
    let dir: string;
    let engine: EngineOptions;
    let stack: Stack;
    let v1: EchoServer, v2: EchoServer;
    let proxy: RunningProxy;
    const rendered = () => routesOf(renderedVirtualService(path.join(dir, "rendered")))[0].destinations.map((d) => d.weight);
    const declared = async () => Number((await stack.getConfig("v2Weight")).value);
    const verifyGate = (): Gate => ({ kind: "verify", host: "127.0.0.1", port: proxy.port, connections: 400, concurrency: 20, timeoutMs: 2000, maxErrorRate: 0.01 });
    const run = (o: Partial<ShiftOptions> & Pick<ShiftOptions, "steps">) => shift({ stack: "shift", gate: verifyGate(), pause: false, force: false, engine, workDir: dir, ...o });

    before(async () => {
        dir = scratchProject(fs.mkdtempSync(path.join(os.tmpdir(), "asm-tcp-shift-shift-")));
        engine = { backendUrl: `file://${path.join(dir, ".state")}`, env: { PULUMI_CONFIG_PASSPHRASE: "shift-test" } };
        stack = await openStack("shift", { ...engine, workDir: dir });
        await stack.setAllConfig({ target: { value: "render" }, v2Weight: { value: "0" } });
        await stack.up();
        v1 = await startEchoServer("v1", "one");
        v2 = await startEchoServer("v2", "two");
        proxy = await startWeightedProxy({
            backends: [
                { name: "v1", port: v1.port },
                { name: "v2", port: v2.port },
            ],
            weights: () => {
                const [stable, canary] = rendered();
                return { v1: stable, v2: canary };
            },
            random: seededRandom(11),
        });
    });

    after(async () => {
        await proxy.close();
        await Promise.all([v1.stop(), v2.stop()]);
        fs.rmSync(dir, { recursive: true, force: true });
    });

    it("walks the steps, each gated by a measured split", async () => {
        const result = await run({ steps: [10, 20, 50] });
        assert.equal(result.outcome, "completed");
        assert.deepEqual(result.steps.map((s) => [s.weight, s.status]), [
            [10, "applied"],
            [20, "applied"],
            [50, "applied"],
        ]);
        assert.deepEqual(rendered(), [50, 50]);
        assert.equal(await declared(), 50);
    });

    it("rolls back to the last good weight when a gate command fails", async () => {
        const result = await run({ steps: [60, 80], gate: { kind: "command", command: 'test "$V2_WEIGHT" -lt 70' } });
        assert.equal(result.outcome, "rolled-back");
        assert.deepEqual(result.steps.map((s) => [s.weight, s.status]), [
            [60, "applied"],
            [80, "gate-failed"],
        ]);
        assert.equal(result.finalWeight, 60);
        assert.deepEqual(rendered(), [40, 60]);
        assert.equal(await declared(), 60);
    });

    it("rolls back when the measured split fails (v2 down)", async () => {
        await v2.stop();
        try {
            const result = await run({ steps: [70] });
            assert.equal(result.outcome, "rolled-back");
            assert.match(result.steps[0].detail ?? "", /verdict\s+inconclusive/);
            assert.deepEqual(rendered(), [40, 60]);
            assert.equal(await declared(), 60);
        } finally {
            v2 = await startEchoServer("v2", "two", v2.port);
        }
    });

    it("rolls back when a step breaks a mandatory policy (largest step)", async () => {
        const result = await run({ steps: [100], maxStep: 20, gate: { kind: "none" } });
        assert.equal(result.outcome, "rolled-back");
        assert.equal(result.steps[0].status, "up-failed");
        assert.match(result.steps[0].detail ?? "", /max-weight-step|mandatory/);
        assert.deepEqual(rendered(), [40, 60]);
        assert.equal(await declared(), 60);
    });

    it("stops where the operator declines the next step", async () => {
        const asked: string[] = [];
        const result = await run({ steps: [70, 80], pause: true, confirm: async (q) => (asked.push(q), false) });
        assert.equal(result.outcome, "stopped");
        assert.deepEqual(asked, ["v2 weight is 70. Promote to 80?"]);
        assert.deepEqual(rendered(), [30, 70]);
    });

    it("refuses to start on drift unless forced", async () => {
        const file = fs.readdirSync(path.join(dir, "rendered/1-manifest")).find((f) => f.includes("virtualservice"))!;
        const full = path.join(dir, "rendered/1-manifest", file);
        const original = fs.readFileSync(full, "utf8");
        fs.writeFileSync(full, original.replace("weight: 30", "weight: 90").replace("weight: 70", "weight: 10"));
        const refused = await run({ steps: [80] });
        assert.equal(refused.outcome, "refused");
        assert.equal(await declared(), 70);
        const forced = await run({ steps: [80], force: true, gate: { kind: "none" } });
        assert.equal(forced.outcome, "completed");
        assert.deepEqual(rendered(), [20, 80]);
    });
});
