import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { DEFAULTS } from "../../config";
import { EngineOptions, gatedUp, openStack, scratchProject } from "../../tools/engine/engine";
import { gatewayPods, ingressOf, waitForReceivedSplit } from "../../tools/cluster/mesh";
import { connectionWatchFor } from "../../tools/rollout/drain";
import { liveVirtualService, routesOf } from "../../tools/rollout/routes";
import { Gate, ShiftOptions, shift } from "../../tools/rollout/shift";
import { splitBySubset } from "../../components/weights";
import { MESH_KUBECONFIG, apply, env, k, meshCluster, podIPs, until } from "../support/mesh";
import { handEditWeights } from "../support/cluster";

const NAMESPACE = "shift";

/**
 * shift on a local stack through the live mesh: each step's gate measures, through the ingress gateway,
 * the split istiod translated from the VirtualService the step just applied.
 */
describe("shift through the local mesh", () => {
    let dir: string;
    let engine: EngineOptions;
    let stack: Stack;
    const live = () =>
        routesOf(liveVirtualService(MESH_KUBECONFIG, NAMESPACE))[0].destinations.map(
            (d) => d.weight,
        );
    const declared = async () => Number((await stack.getConfig("v2Weight")).value);
    const verifyGate = (): Gate => {
        const { host, port } = ingressOf(MESH_KUBECONFIG);
        return {
            kind: "verify",
            host,
            port,
            connections: 400,
            concurrency: 20,
            timeoutMs: 3000,
            maxErrorRate: 0.01,
        };
    };
    const awaitApplied = async (w: number) => {
        await waitForReceivedSplit(env(), DEFAULTS.gatewayPort, splitBySubset(w));
    };
    const run = (o: Partial<ShiftOptions> & Pick<ShiftOptions, "steps">) =>
        shift({
            stack: "shift",
            gate: verifyGate(),
            pause: false,
            force: false,
            engine,
            workDir: dir,
            awaitApplied,
            ...o,
        });

    before(async () => {
        meshCluster("up");
        apply(`apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${NAMESPACE}\n`);
        dir = scratchProject(fs.mkdtempSync(path.join(os.tmpdir(), "asm-tcp-shift-shift-")));
        engine = {
            backendUrl: `file://${path.join(dir, ".state")}`,
            env: { PULUMI_CONFIG_PASSPHRASE: "shift-test" },
        };
        stack = await openStack("shift", { ...engine, workDir: dir });
        await stack.setAllConfig({
            target: { value: "local" },
            namespace: { value: NAMESPACE },
            localKubeconfig: { value: MESH_KUBECONFIG },
            v2Weight: { value: "0" },
        });
        await gatedUp(stack);
        await awaitApplied(0);
    });

    after(async () => {
        await stack?.destroy().catch(() => undefined);
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it("walks the steps, each gated by the split measured through the gateway", async () => {
        const result = await run({ steps: [10, 20, 50] });
        assert.equal(result.outcome, "completed", JSON.stringify(result.steps));
        assert.deepEqual(
            result.steps.map((s) => [s.weight, s.status]),
            [
                [10, "applied"],
                [20, "applied"],
                [50, "applied"],
            ],
        );
        assert.deepEqual(live(), [50, 50]);
        assert.equal(await declared(), 50);
    });

    it("rolls back to the last good weight when a gate command fails", async () => {
        const result = await run({
            steps: [60, 80],
            gate: { kind: "command", command: 'test "$V2_WEIGHT" -lt 70' },
        });
        assert.equal(result.outcome, "rolled-back");
        assert.deepEqual(
            result.steps.map((s) => [s.weight, s.status]),
            [
                [60, "applied"],
                [80, "gate-failed"],
            ],
        );
        assert.equal(result.finalWeight, 60);
        assert.deepEqual(live(), [40, 60]);
        assert.equal(await declared(), 60);
    });

    it("rolls back when the measured split fails (v2 has no endpoints)", async () => {
        k("-n", NAMESPACE, "scale", "deployment", "tcp-echo-v2", "--replicas=0");
        try {
            await until("no v2 pods", () => podIPs(NAMESPACE, "version=v2").length === 0);
            const result = await run({ steps: [70] });
            assert.equal(result.outcome, "rolled-back");
            assert.match(result.steps[0].detail ?? "", /verdict\s+inconclusive/);
            assert.deepEqual(live(), [40, 60]);
            assert.equal(await declared(), 60);
        } finally {
            k("-n", NAMESPACE, "scale", "deployment", "tcp-echo-v2", "--replicas=1");
            await until("v2 back", () => podIPs(NAMESPACE, "version=v2").length === 1);
        }
    });

    it("rolls back when a step breaks a mandatory policy (largest step)", async () => {
        const result = await run({ steps: [100], maxStep: 20, gate: { kind: "none" } });
        assert.equal(result.outcome, "rolled-back");
        assert.equal(result.steps[0].status, "up-failed");
        assert.match(result.steps[0].detail ?? "", /max-weight-step|mandatory/);
        assert.deepEqual(live(), [40, 60]);
        assert.equal(await declared(), 60);
    });

    it("stops where the operator declines the next step", async () => {
        const asked: string[] = [];
        const result = await run({
            steps: [70, 80],
            pause: true,
            confirm: async (q) => (asked.push(q), false),
        });
        assert.equal(result.outcome, "stopped");
        assert.deepEqual(asked, ["v2 weight is 70. Promote to 80?"]);
        assert.deepEqual(live(), [30, 70]);
    });

    it("refuses to start on drift unless forced", async () => {
        k(...handEditWeights(NAMESPACE, 90, 10));
        const refused = await run({ steps: [80] });
        assert.equal(refused.outcome, "refused");
        assert.equal(await declared(), 70);
        const forced = await run({ steps: [80], force: true, gate: { kind: "none" } });
        assert.equal(forced.outcome, "completed");
        assert.deepEqual(live(), [20, 80]);
    });

    describe("with a short drain time (drainDuration 3 s on the gateway pods)", () => {
        const DRAIN = 3;
        const gatewayDeployment = [
            "-n",
            "istio-system",
            "patch",
            "deployment",
            "istio-ingressgateway",
        ];

        before(async () => {
            // As on a real gateway: the pod's own ProxyConfig sets the drain time; a short one keeps the test fast.
            k(
                ...gatewayDeployment,
                "--type=merge",
                "-p",
                JSON.stringify({
                    spec: {
                        template: {
                            metadata: {
                                annotations: {
                                    "proxy.istio.io/config": `drainDuration: ${DRAIN}s\n`,
                                },
                            },
                        },
                    },
                }),
            );
            await until(
                `every gateway pod's Envoy ready with a ${DRAIN} s drain time`,
                async () => {
                    const pods = await gatewayPods(env());
                    return (
                        pods.length > 0 && pods.every((p) => p.ready && p.drainSeconds === DRAIN)
                    );
                },
                120_000,
                200,
            );
            await waitForReceivedSplit(env(), DEFAULTS.gatewayPort, splitBySubset(80), 60_000);
        });

        after(() => {
            k(
                ...gatewayDeployment,
                "--type=json",
                "-p",
                JSON.stringify([
                    {
                        op: "remove",
                        path: "/spec/template/metadata/annotations/proxy.istio.io~1config",
                    },
                ]),
            );
        });

        it("refuses a settle time shorter than the drain time unless --drain wait or --force", async () => {
            const result = await run({
                steps: [90],
                gate: { kind: "none" },
                requestedSettleSeconds: 1,
                connections: connectionWatchFor("shift", dir),
            });
            assert.equal(result.outcome, "refused");
            assert.match(
                result.message ?? "",
                /--settle-seconds 1 is shorter than the gateway's drain time \(3 s\)/,
            );
            assert.equal(await declared(), 80);
        });

        it("--drain wait: counts the open connection before the step, and the step ends only once its chain drained", async () => {
            const { host, port } = ingressOf(MESH_KUBECONFIG);
            const socket = net.connect({ host, port });
            let closedAt: number | undefined;
            socket.on("close", () => (closedAt ??= Date.now()));
            socket.on("error", () => undefined);
            try {
                await new Promise<void>((resolve, reject) => {
                    socket.on("connect", () => socket.write("held\n"));
                    socket.once("data", () => resolve());
                    socket.once("error", reject);
                });
                const watch = connectionWatchFor("shift", dir);
                const probe = await until("the held connection counted", async () => {
                    const p = await watch.probe();
                    return (p.open ?? 0) >= 1 && p;
                });
                assert.equal(probe.drainSeconds, DRAIN);
                const result = await run({
                    steps: [90],
                    gate: { kind: "none" },
                    requestedSettleSeconds: 1,
                    connections: watch,
                    drainWait: true,
                });
                const ended = Date.now();
                assert.equal(result.outcome, "completed", JSON.stringify(result));
                assert.deepEqual(live(), [10, 90]);
                // Envoy closes the old chain's connections when its drain ends, so the held one closed before the
                // step returned (the VirtualService changes mid-update, so the drain may end before `up` does).
                await until("the held connection closed", () => closedAt !== undefined, 2000);
                assert.ok(
                    closedAt! <= ended + 500,
                    `closed ${closedAt! - ended} ms after shift returned`,
                );
                assert.equal((await watch.probe()).open, 0);
            } finally {
                socket.destroy();
            }
        });
    });
});
