import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { DEFAULTS } from "../../config";
import { ECHO_PREFIXES, OBJECT_NAMES } from "../../components/model";
import { gatedUp, openStack, scratchProject } from "../../tools/engine/engine";
import { envoyStats, gatewayPods, ingressOf, waitForReceivedSplit } from "../../tools/cluster/mesh";
import { gatewayCounterSourceFor, verifyWithGateway } from "../../tools/rollout/gatewayCounts";
import { GatewayComparison } from "../../tools/rollout/verify";
import { MESH_KUBECONFIG, apply, env, k, meshCluster, splitMismatch, until } from "../support/mesh";
import { handEditWeights } from "../support/cluster";

const NAMESPACE = "conns";
const STACK = "mesh-conns";
const PORT = DEFAULTS.gatewayPort;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const seconds = (ms: number) => (ms / 1000).toFixed(2);

/** The tcp_proxy filter of each gateway pod's 31400 listener, as Envoy holds it (admin /config_dump). */
async function tcpProxies(): Promise<any[]> {
    return Promise.all(
        (await gatewayPods(env())).map(async (p) => {
            const dump: any = await (
                await fetch(`${p.admin}/config_dump?resource=dynamic_listeners`, {
                    signal: AbortSignal.timeout(5000),
                })
            ).json();
            const listener = (dump.configs ?? [])
                .map((c: any) => c.active_state?.listener)
                .find((l: any) => l?.name === `0.0.0.0_${PORT}`);
            return listener?.filter_chains?.[0]?.filters?.find(
                (f: any) => f.name === "envoy.filters.network.tcp_proxy",
            )?.typed_config;
        }),
    );
}

const inPlaceUpdates = async () =>
    Promise.all(
        (await gatewayPods(env())).map(
            async (p) =>
                (await envoyStats(p.admin, "^listener_manager\\.listener_in_place_updated$"))[
                    "listener_manager.listener_in_place_updated"
                ] ?? 0,
        ),
    );

/** A connection through the CLB stand-in and a gateway pod's Envoy. */
interface Conn {
    id: number;
    mode: "idle" | "stream";
    subset?: string;
    connectedAt: number;
    replies: number;
    lastReplyAt: number;
    closedAt?: number;
    socket: net.Socket;
    timer?: NodeJS.Timeout;
}

/** Opens a connection, sends a line (and one a second if streaming), and resolves at its first reply. */
let ingress: { host: string; port: number } | undefined;

function connect(id: number, mode: Conn["mode"], onClose?: (c: Conn) => void): Promise<Conn> {
    // Read once: ingressOf runs kubectl synchronously, which would hold up every open connection's timers.
    const { host, port } = (ingress ??= ingressOf(MESH_KUBECONFIG));
    return new Promise((resolve, reject) => {
        const socket = net.connect({ host, port });
        const c: Conn = { id, mode, connectedAt: 0, replies: 0, lastReplyAt: 0, socket };
        let buffer = "";
        const send = () => socket.write(`${mode}-${id}-${c.replies}\n`);
        socket.setNoDelay(true);
        socket.on("connect", () => {
            c.connectedAt = Date.now();
            send();
        });
        socket.on("data", (chunk) => {
            buffer += chunk.toString("utf8");
            let nl: number;
            while ((nl = buffer.indexOf("\n")) >= 0) {
                const line = buffer.slice(0, nl);
                buffer = buffer.slice(nl + 1);
                c.replies++;
                c.lastReplyAt = Date.now();
                c.subset ??= line.startsWith(`${ECHO_PREFIXES.v2} `)
                    ? "v2"
                    : line.startsWith(`${ECHO_PREFIXES.v1} `)
                      ? "v1"
                      : "?";
                if (c.replies === 1) {
                    if (mode === "stream") c.timer = setInterval(send, 1000);
                    resolve(c);
                }
            }
        });
        socket.on("error", () => undefined);
        socket.on("close", () => {
            if (c.closedAt) return;
            c.closedAt = Date.now();
            clearInterval(c.timer);
            if (c.replies === 0)
                reject(new Error(`connection ${id} closed before its first reply`));
            else onClose?.(c);
        });
    });
}

function release(conns: Conn[]) {
    for (const c of conns) {
        clearInterval(c.timer);
        c.socket.destroy();
    }
}

const count = (conns: Conn[]) => ({
    v1: conns.filter((c) => c.subset === "v1").length,
    v2: conns.filter((c) => c.subset === "v2").length,
});

/**
 * What DestinationRule connection pool durations do to long-lived connections through Envoy, and verify's
 * reading of the gateway's own counters, on a stack of its own at v2 weight 20 (drainDuration: the mesh's 45 s).
 */
describe("connections through Envoy: the gateway's own counters and the connection pool durations", () => {
    let dir: string;
    let stack: Stack;

    before(async () => {
        meshCluster("up");
        dir = scratchProject(fs.mkdtempSync(path.join(os.tmpdir(), "asm-tcp-shift-conns-")));
        stack = await openStack(STACK, {
            workDir: dir,
            backendUrl: `file://${path.join(dir, ".state")}`,
            env: { PULUMI_CONFIG_PASSPHRASE: "mesh-conns-test" },
        });
        apply(`apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${NAMESPACE}\n`);
        await stack.setAllConfig({
            target: { value: "local" },
            namespace: { value: NAMESPACE },
            localKubeconfig: { value: MESH_KUBECONFIG },
            v2Weight: { value: "20" },
        });
        await gatedUp(stack);
        await waitForReceivedSplit(env(), PORT, { v1: 80, v2: 20 }, 60_000);
    });

    after(async () => {
        await stack?.destroy().catch(() => undefined);
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    const verifyAt20 = (connections: number) => {
        const { host, port } = ingressOf(MESH_KUBECONFIG);
        return verifyWithGateway(
            {
                host,
                port,
                connections,
                concurrency: 20,
                timeoutMs: 3000,
                expectedWeight: 20,
                prefixes: ECHO_PREFIXES,
                maxErrorRate: 0.01,
            },
            gatewayCounterSourceFor(STACK, dir),
        );
    };

    it("verify reads each gateway pod's upstream_cx_total per subset before and after its run: the gateway counted exactly the replies' split", async () => {
        const { report, gateway } = await verifyAt20(400);
        assert.ok(!("unreadable" in gateway), JSON.stringify(gateway));
        const g = gateway as GatewayComparison;
        console.log(
            `\nreplies v1 ${report.counts.v1} v2 ${report.counts.v2}; gateway v1 ${g.gateway.v1} v2 ${g.gateway.v2}; ${g.reason}`,
        );
        // Each connection is one upstream connection to the subset whose pods answered it.
        assert.deepEqual(g.difference, { v1: 0, v2: 0 });
        assert.equal(g.gateway.v1 + g.gateway.v2, 400);
        assert.equal(report.verdict, "consistent", report.reason);
        assert.equal(g.gateway.verdict, "consistent");
        assert.equal(g.agreement, "agree", g.reason);
        assert.deepEqual(g.notes, []);
    });

    it("a stale gateway is seen in its own counters: verify expecting 50 while the gateway serves 20 is inconsistent on both sides", async () => {
        const { host, port } = ingressOf(MESH_KUBECONFIG);
        const { report, gateway } = await verifyWithGateway(
            {
                host,
                port,
                connections: 400,
                concurrency: 20,
                timeoutMs: 3000,
                expectedWeight: 50,
                prefixes: ECHO_PREFIXES,
                maxErrorRate: 0.01,
            },
            gatewayCounterSourceFor(STACK, dir),
        );
        const g = gateway as GatewayComparison;
        assert.equal(report.verdict, "inconsistent");
        assert.equal(g.gateway.verdict, "inconsistent");
        assert.equal(g.agreement, "agree", "the client and the gateway saw the same wrong split");
    });

    it("30 live runs of verify at the true weight (w = 20, 300 connections each) through Envoy: none rejected, on either side", async () => {
        const RUNS = 30;
        const started = Date.now();
        const rejected: string[] = [];
        const gatewayRejected: string[] = [];
        for (let i = 0; i < RUNS; i++) {
            const { report, gateway } = await verifyAt20(300);
            if (report.verdict !== "consistent")
                rejected.push(`run ${i}: ${report.verdict}: ${report.reason}`);
            if ("unreadable" in gateway || gateway.gateway.verdict !== "consistent")
                gatewayRejected.push(`run ${i}: ${JSON.stringify(gateway)}`);
        }
        console.log(
            `\n${RUNS} verify runs of 300 connections at w=20 through Envoy: ${rejected.length} rejected by the client's gate, ${gatewayRejected.length} by the gateway's counters, in ${seconds(Date.now() - started)} s`,
        );
        assert.deepEqual(rejected, []);
        assert.deepEqual(gatewayRejected, []);
    });

    describe("connectionPool.tcp durations from the stack config", () => {
        const MAX = 10;
        const IDLE = 3;

        it(`maxConnectionDuration ${MAX}s: Envoy closes every connection, idle or streaming, ${MAX} s after it was accepted, also after a weight change (before the 45 s drain ends); the reconnects take the new split`, async () => {
            const updatesBefore = await inPlaceUpdates();
            await stack.setConfig("connectionPool", {
                value: JSON.stringify({ maxConnectionDuration: `${MAX}s` }),
            });
            await gatedUp(stack);
            await until(
                "every Envoy's tcp_proxy has max_downstream_connection_duration",
                async () =>
                    (await tcpProxies()).every(
                        (t) => t?.max_downstream_connection_duration === `${MAX}s`,
                    ),
                60_000,
                100,
            );
            assert.deepEqual(
                (await inPlaceUpdates()).map((n, i) => n - updatesBefore[i]),
                updatesBefore.map(() => 1),
                "the DestinationRule change replaced the port's filter chain, as a weight change does",
            );
            const cluster = `outbound|${DEFAULTS.servicePort}|v1|${OBJECT_NAMES.service}.${NAMESPACE}.svc.cluster.local`;
            const [first] = await gatewayPods(env());
            const clusters: any = await (
                await fetch(`${first.admin}/config_dump?resource=dynamic_active_clusters`)
            ).json();
            console.log(
                `\n${cluster} as Envoy holds it: ${JSON.stringify(
                    clusters.configs.find((c: any) => c.cluster?.name === cluster)?.cluster
                        ?.typed_extension_protocol_options ?? null,
                )}`,
            );

            const reconnects: Conn[] = [];
            const pending: Promise<Conn>[] = [];
            const N = 100;
            const originals: Conn[] = [];
            // Ten at a time, so that all are open well before the first reaches its maximum.
            for (let i = 0; i < N; i += 10)
                originals.push(
                    ...(await Promise.all(
                        Array.from({ length: 10 }, (_, j) =>
                            connect(i + j, j === 0 ? "stream" : "idle", (c) =>
                                pending.push(
                                    connect(1000 + c.id, "idle").then((r) => {
                                        reconnects.push(r);
                                        return r;
                                    }),
                                ),
                            ),
                        ),
                    )),
                );
            try {
                const changedAt = Date.now();
                k(...handEditWeights(NAMESPACE, 50, 50));
                await waitForReceivedSplit(env(), PORT, { v1: 50, v2: 50 });
                const appliedAt = Date.now();
                await until(
                    "every original connection closed",
                    () => originals.every((c) => c.closedAt),
                    (MAX + 10) * 1000,
                    50,
                );
                await Promise.all(pending);
                const lifetimes = originals.map((c) => c.closedAt! - c.connectedAt);
                console.log(
                    `\nmaxConnectionDuration ${MAX}s: ${N} connections opened at w=20 (${JSON.stringify(count(originals))}), weight 20 -> 50 written ${seconds(changedAt - originals[0].connectedAt)} s after the first, applied ${seconds(appliedAt - changedAt)} s later; closed ${seconds(Math.min(...lifetimes))}..${seconds(Math.max(...lifetimes))} s after each was accepted, the last ${seconds(Math.max(...originals.map((c) => c.closedAt!)) - changedAt)} s after the weight change; reconnects ${JSON.stringify(count(reconnects))}`,
                );
                for (const c of originals) {
                    const life = c.closedAt! - c.connectedAt;
                    assert.ok(
                        life >= (MAX - 0.5) * 1000 && life <= (MAX + 3) * 1000,
                        `connection ${c.id} (${c.mode}) lived ${seconds(life)} s`,
                    );
                    assert.ok(
                        c.closedAt! > appliedAt,
                        `connection ${c.id} closed before the new split was served`,
                    );
                    if (c.mode === "stream")
                        assert.ok(
                            c.replies >= MAX - 2,
                            `connection ${c.id} streamed until closed (${c.replies} replies)`,
                        );
                }
                assert.equal(splitMismatch(count(originals), N, 20), undefined);
                assert.equal(reconnects.length, N);
                assert.equal(splitMismatch(count(reconnects), N, 50), undefined);
            } finally {
                release([...originals, ...reconnects]);
            }
            k(...handEditWeights(NAMESPACE, 80, 20));
            await waitForReceivedSplit(env(), PORT, { v1: 80, v2: 20 });
        });

        it(`idleTimeout ${IDLE}s: Envoy closes an idle connection ${IDLE} s after its last byte and keeps a streaming one`, async () => {
            await stack.setConfig("connectionPool", {
                value: JSON.stringify({ idleTimeout: `${IDLE}s` }),
            });
            await gatedUp(stack);
            await until(
                "every Envoy's tcp_proxy has idle_timeout and no maximum duration",
                async () =>
                    (await tcpProxies()).every(
                        (t) =>
                            t?.idle_timeout === `${IDLE}s` &&
                            t?.max_downstream_connection_duration === undefined,
                    ),
                60_000,
                100,
            );
            const conns: Conn[] = [];
            for (let i = 0; i < 5; i++)
                conns.push(await connect(2 * i, "idle"), await connect(2 * i + 1, "stream"));
            try {
                await sleep((IDLE + 6) * 1000);
                const checkedAt = Date.now();
                for (const c of conns) {
                    if (c.mode === "idle") {
                        assert.ok(c.closedAt, `idle connection ${c.id} still open`);
                        const silent = c.closedAt! - c.lastReplyAt;
                        assert.ok(
                            silent >= (IDLE - 0.5) * 1000 && silent <= (IDLE + 2) * 1000,
                            `idle connection ${c.id} closed ${seconds(silent)} s after its last byte`,
                        );
                    } else {
                        assert.equal(
                            c.closedAt,
                            undefined,
                            `streaming connection ${c.id} was closed`,
                        );
                        assert.ok(
                            checkedAt - c.lastReplyAt < 2500,
                            `connection ${c.id} still streams`,
                        );
                        assert.ok(
                            c.replies >= IDLE + 5,
                            `connection ${c.id}: ${c.replies} replies`,
                        );
                    }
                }
                console.log(
                    `\nidleTimeout ${IDLE}s: idle connections closed ${conns
                        .filter((c) => c.mode === "idle")
                        .map((c) => seconds(c.closedAt! - c.lastReplyAt))
                        .join(
                            ", ",
                        )} s after their last byte; streaming ones open after ${seconds(checkedAt - conns[1].connectedAt)} s (${conns
                        .filter((c) => c.mode === "stream")
                        .map((c) => c.replies)
                        .join(", ")} replies)`,
                );
            } finally {
                release(conns);
            }
        });
    });
});
