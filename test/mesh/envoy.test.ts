import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { DEFAULTS } from "../../config";
import { ECHO_PREFIXES, OBJECT_NAMES } from "../../components/model";
import { gatedUp, openStack, scratchProject, toolchainBinary } from "../../tools/engine/engine";
import {
    GatewayPodInfo,
    envoyStats,
    gatewayConfigDump,
    gatewayPods,
    ingressOf,
    readEnvoyDump,
    receivedRoutes,
    waitForReceivedSplit,
} from "../../tools/cluster/mesh";
import { verify } from "../../tools/rollout/verify";
import {
    MESH_KUBECONFIG,
    apply,
    echoTable,
    env,
    get,
    k,
    meshCluster,
    meshScript,
    podIPs,
    proxyStatus,
    splitMismatch,
    until,
} from "../support/mesh";
import { handEditWeights } from "../support/cluster";

const NAMESPACE = "envoy";
const PORT = DEFAULTS.gatewayPort;
const HOST = (subset: string) =>
    `outbound|${DEFAULTS.servicePort}|${subset}|${OBJECT_NAMES.service}.${NAMESPACE}.svc.cluster.local`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const gatewayDeployment = ["-n", "istio-system", "deployment", "istio-ingressgateway"];

/** Envoy's admin /config_dump?include_eds, raw. */
async function rawDump(admin: string): Promise<any> {
    const res = await fetch(`${admin}/config_dump?include_eds`, {
        signal: AbortSignal.timeout(5000),
    });
    assert.equal(res.status, 200);
    return res.json();
}

/** Every *.update_rejected counter of an Envoy (CDS, LDS, and each cluster's EDS). */
const rejected = (admin: string) => envoyStats(admin, "update_rejected$");

/** A long-lived connection through the CLB stand-in and a gateway pod's Envoy, and what became of it. */
interface Held {
    id: number;
    mode: "idle" | "stream";
    subset?: string;
    openedAt: number;
    replies: number;
    lastReplyAt?: number;
    closedAt?: number;
    how?: string;
    socket: net.Socket;
    timer?: NodeJS.Timeout;
}

/**
 * Opens `n` idle connections (one line, then silence) and `n` streaming ones (a line a second), each answered
 * by tcp-echo through the gateway, and resolves once every one has had its first reply.
 */
async function hold(n: number, firstId = 0): Promise<Held[]> {
    const { host, port } = ingressOf(MESH_KUBECONFIG);
    const open = (id: number, mode: Held["mode"]) =>
        new Promise<Held>((resolve, reject) => {
            const socket = net.connect({ host, port });
            const h: Held = { id, mode, openedAt: Date.now(), replies: 0, socket };
            let buffer = "";
            let seq = 0;
            const send = () => socket.write(`${mode}-${id}-${seq++}\n`);
            socket.setNoDelay(true);
            socket.on("connect", send);
            socket.on("data", (chunk) => {
                buffer += chunk.toString("utf8");
                let nl: number;
                while ((nl = buffer.indexOf("\n")) >= 0) {
                    const line = buffer.slice(0, nl);
                    buffer = buffer.slice(nl + 1);
                    h.replies++;
                    h.lastReplyAt = Date.now();
                    if (!h.subset)
                        h.subset = line.startsWith(`${ECHO_PREFIXES.v2} `)
                            ? "v2"
                            : line.startsWith(`${ECHO_PREFIXES.v1} `)
                              ? "v1"
                              : "?";
                    if (h.replies === 1) {
                        if (mode === "stream") h.timer = setInterval(send, 1000);
                        resolve(h);
                    }
                }
            });
            const closed = (how: string) => {
                if (h.closedAt) return;
                h.closedAt = Date.now();
                h.how = how;
                clearInterval(h.timer);
                if (h.replies === 0)
                    reject(new Error(`connection ${id} closed before its first reply (${how})`));
            };
            socket.on("end", () => closed("FIN"));
            socket.on("error", (e: NodeJS.ErrnoException) => closed(e.code ?? "error"));
            socket.on("close", () => closed("closed"));
        });
    const out: Held[] = [];
    for (let i = 0; i < n; i++)
        out.push(await open(firstId + 2 * i, "idle"), await open(firstId + 2 * i + 1, "stream"));
    return out;
}

function release(held: Held[]) {
    for (const h of held) {
        clearInterval(h.timer);
        h.socket.destroy();
    }
}

const seconds = (ms: number | undefined) => (ms === undefined ? "-" : (ms / 1000).toFixed(2));

/**
 * The gateway pods are Envoy: bootstrapped as Istio's router proxy, fed by istiod through asm-local's relay,
 * behind the CLB stand-in. What Envoy holds, that it ACKs all of it, how it behaves when killed or when istiod
 * is away, and what happens to open connections on a weight change, an EDS-only change and a pod restart.
 */
describe("the gateway pods are Envoy", () => {
    let dir: string;
    let stack: Stack;
    const rows: string[] = [
        "| event | connection | mode | subset | outcome | closed at, s after the change | s after Envoy had it | replies |",
        "|---|---|---|---|---|---|---|---|",
    ];
    const deployment = () =>
        get(...gatewayDeployment.slice(0, 2), "get", ...gatewayDeployment.slice(2));
    const measure = async (connections: number) => {
        const { host, port } = ingressOf(MESH_KUBECONFIG);
        return verify({
            host,
            port,
            connections,
            concurrency: 20,
            timeoutMs: 3000,
            expectedWeight: 0,
            prefixes: ECHO_PREFIXES,
            maxErrorRate: 0,
        });
    };
    /** Every gateway pod of the Deployment listed by the runner, Envoy ready, optionally with this drain time. */
    const readyPods = (drainSeconds?: number) =>
        until(
            `every gateway pod's Envoy ready${drainSeconds ? ` with --drain-time-s ${drainSeconds}` : ""}`,
            async () => {
                const pods = await gatewayPods(env());
                const ok =
                    pods.length === deployment().spec.replicas &&
                    pods.every(
                        (p) =>
                            p.ready &&
                            (drainSeconds === undefined || p.drainSeconds === drainSeconds),
                    );
                return ok && pods;
            },
            90_000,
            200,
        );

    before(async () => {
        meshCluster("up");
        dir = scratchProject(fs.mkdtempSync(path.join(os.tmpdir(), "asm-tcp-shift-envoy-")));
        stack = await openStack("mesh-envoy", {
            workDir: dir,
            backendUrl: `file://${path.join(dir, ".state")}`,
            env: { PULUMI_CONFIG_PASSPHRASE: "mesh-envoy-test" },
        });
        apply(`apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${NAMESPACE}\n`);
        await stack.setAllConfig({
            target: { value: "local" },
            namespace: { value: NAMESPACE },
            localKubeconfig: { value: MESH_KUBECONFIG },
            replicas: { value: "2" },
            v2Weight: { value: "0" },
        });
        await gatedUp(stack);
        await readyPods();
        await waitForReceivedSplit(env(), PORT, { v1: 100 }, 60_000);
    });

    after(async () => {
        console.log(`\n${rows.join("\n")}\n`);
        await stack?.destroy().catch(() => undefined);
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it("each gateway pod is an Envoy process with pilot-agent's flags, its node as Istio's router proxy", async () => {
        const pods = await readyPods();
        assert.equal(pods.length, 2);
        for (const p of pods) {
            const cmdline = fs.readFileSync(`/proc/${p.pid}/cmdline`, "utf8").split("\0").join(" ");
            assert.match(path.basename(cmdline.split(" ")[0]), /^envoy$/, cmdline);
            for (const flag of [
                `--drain-time-s ${p.drainSeconds}`,
                "--drain-strategy immediate",
                "--local-address-ip-version v4",
                "--disable-hot-restart",
                "--concurrency 1",
            ])
                assert.ok(cmdline.includes(flag), `${flag} in ${cmdline}`);
            const info = (await (await fetch(`${p.admin}/server_info`)).json()) as any;
            assert.equal(info.state, "LIVE");
            assert.match(info.version, /\/1\.\d+\.\d+\//);
            const [namespace, name] = p.pod.split("/");
            assert.equal(
                info.node.id,
                `router~${p.ip}~${name}.${namespace}~${namespace}.svc.cluster.local`,
            );
            assert.equal(info.node.cluster, "istio-ingressgateway.istio-system");
            assert.equal(info.node.metadata.NAMESPACE, "istio-system");
            assert.equal(info.node.metadata.INSTANCE_IPS, p.ip);
            assert.equal(info.node.metadata.LABELS.istio, "ingressgateway");
            assert.match(p.admin, /^http:\/\/127\.0\.0\.1:\d+$/);
        }
    });

    it("memory at rest: each Envoy, and the whole local mesh with its cluster", async () => {
        const pods = await readyPods();
        await sleep(3000);
        const rss = (pid: number) =>
            Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))![1]) /
            1024;
        const envoys = pods.map((p) => rss(p.pid));
        const status = meshCluster("status");
        const mesh = Number(/^mesh total\s+(\d+)/m.exec(status)![1]);
        const kube = Number(/control plane \(etcd, kube-\*, kwok\): (\d+) MB/.exec(status)![1]);
        console.log(
            `\nmemory at rest (${new Date().toISOString()}, ${os.cpus().length} CPUs, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB): ` +
                `Envoy per gateway pod ${envoys.map((m) => `${m.toFixed(0)} MB`).join(", ")}; ` +
                `mesh processes ${mesh} MB; control plane ${kube} MB; together ${mesh + kube} MB\n${status}`,
        );
        for (const m of envoys) assert.ok(m < 200, `an Envoy at rest uses ${m.toFixed(0)} MB`);
        assert.ok(mesh + kube <= 1536, `the local mesh and its cluster use ${mesh + kube} MB`);
    });

    it("Envoy ACKs every resource istiod sends: no update rejected, no NACK at the relay, SYNCED in proxy-status", async () => {
        const pods = await readyPods();
        for (const p of pods) {
            const r = await rejected(p.admin);
            assert.ok(Object.keys(r).length >= 3, JSON.stringify(r)); // CDS, LDS and the EDS of each cluster
            assert.deepEqual(
                Object.entries(r).filter(([, v]) => v !== 0),
                [],
                `${p.pod} rejected updates`,
            );
            const ok = await envoyStats(
                p.admin,
                "^(cluster_manager\\.cds|listener_manager\\.lds)\\.update_success$",
            );
            assert.ok(
                ok["cluster_manager.cds.update_success"] > 0 &&
                    ok["listener_manager.lds.update_success"] > 0,
                JSON.stringify(ok),
            );
            assert.deepEqual(p.relay.nacks, [], `${p.pod}: NACKs seen by the relay`);
        }
        await until("every gateway pod SYNCED", () => {
            const text = proxyStatus();
            return pods.every((p) =>
                text
                    .split("\n")
                    .some(
                        (l) =>
                            l.startsWith(`${p.pod.split("/")[1]}.istio-system`) &&
                            (l.match(/SYNCED/g) ?? []).length >= 3,
                    ),
            );
        });
    });

    it("Envoy's own config dump holds the 31400 listener on the pod's loopback port, the two subset clusters and their endpoints (istioctl proxy-config --file)", async () => {
        const pods = await readyPods();
        const echo = echoTable();
        const loopbackOf = (selector: string) =>
            podIPs(NAMESPACE, selector)
                .map(
                    (ip) =>
                        echo.find((e) => e.address === `${ip}:${DEFAULTS.servicePort}`)?.loopback,
                )
                .sort();
        const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "asm-tcp-shift-dump-"));
        try {
            for (const p of pods) {
                const raw = await rawDump(p.admin);
                const dump = readEnvoyDump(p, raw);
                const listener = dump.listeners.find((l) => l.name === `0.0.0.0_${PORT}`);
                assert.ok(listener, JSON.stringify(dump.listeners));
                assert.equal(
                    listener.loopback,
                    p.listeners[String(PORT)],
                    "bound where the relay put it",
                );
                assert.deepEqual(
                    listener.tcpProxy?.weightedClusters ?? [
                        { name: listener.tcpProxy?.cluster, weight: 100 },
                    ],
                    [{ name: HOST("v1"), weight: 100 }],
                );
                for (const [subset, selector] of [
                    ["v1", "version=v1"],
                    ["v2", "version=v2"],
                ]) {
                    const c = dump.clusters.find((x) => x.name === HOST(subset));
                    assert.equal(c?.type, "EDS", subset);
                    assert.deepEqual(
                        c!.endpoints.map((e) => e.loopback).sort(),
                        loopbackOf(selector),
                        subset,
                    );
                }
                // istioctl reads the same dump from a file (endpoints: from Envoy's /clusters?format=json).
                const file = path.join(tmp, `${p.pod.replace("/", "_")}.json`);
                fs.writeFileSync(file, JSON.stringify(raw));
                const clustersFile = path.join(tmp, `${p.pod.replace("/", "_")}-clusters.json`);
                fs.writeFileSync(
                    clustersFile,
                    await (await fetch(`${p.admin}/clusters?format=json`)).text(),
                );
                const pc = (what: string, f = file) =>
                    execFileSync(
                        toolchainBinary("istioctl"),
                        ["proxy-config", what, "--file", f, "--kubeconfig", MESH_KUBECONFIG],
                        { encoding: "utf8" },
                    );
                const port = p.listeners[String(PORT)].split(":")[1];
                assert.match(pc("listener"), new RegExp(`127\\.0\\.0\\.1\\s+${port}\\s`));
                const clusters = pc("cluster");
                for (const subset of ["v1", "v2"])
                    assert.match(
                        clusters,
                        new RegExp(
                            `${OBJECT_NAMES.service}\\.${NAMESPACE}\\.svc\\.cluster\\.local\\s+${DEFAULTS.servicePort}\\s+${subset}\\s+outbound\\s+EDS`,
                        ),
                        clusters,
                    );
                const endpoints = pc("endpoint", clustersFile);
                for (const lb of [...loopbackOf("version=v1"), ...loopbackOf("version=v2")])
                    assert.match(
                        endpoints,
                        new RegExp(`${lb!.replace(/\./g, "\\.")}\\s+HEALTHY`),
                        endpoints,
                    );
            }
        } finally {
            fs.rmSync(tmp, { recursive: true, force: true });
        }
    });

    it("an Envoy killed: its pod turns NotReady and the CLB stops sending to it; restarted after the back-off, it is resynced from istiod", async () => {
        const [victim] = await readyPods();
        const name = victim.pod.split("/")[1];
        const ready = () =>
            (get("-n", "istio-system", "get", "pod", name).status.conditions ?? []).find(
                (c: any) => c.type === "Ready",
            )?.status;
        process.kill(victim.pid, "SIGKILL");
        await until("the gateway pod NotReady", () => ready() === "False", 10_000);
        const report = await measure(200);
        assert.equal(report.counts.v1, 200, JSON.stringify(report.counts));
        // The kubelet's first back-off is 10 s.
        await until("the gateway pod Ready again", () => ready() === "True", 40_000);
        const again = (await gatewayPods(env())).find((p) => p.pod === victim.pod)!;
        assert.ok(
            again.ready && again.pid !== victim.pid && again.restarts === 1,
            JSON.stringify(again),
        );
        assert.deepEqual(
            again.listeners,
            victim.listeners,
            "the same loopback listener port for the pod's life",
        );
        await waitForReceivedSplit(env(), PORT, { v1: 100 });
        assert.deepEqual(
            Object.values(await rejected(again.admin)).filter((v) => v !== 0),
            [],
        );
        assert.equal((await measure(200)).counts.v1, 200);
    });

    it("istiod stopped: every Envoy keeps its config and serves; a change made meanwhile arrives once istiod is back", async () => {
        meshScript("stop", "istiod");
        try {
            const pods = await readyPods();
            await until(
                "every Envoy disconnected from the control plane",
                async () => {
                    for (const p of pods)
                        if (
                            (await envoyStats(p.admin, "^control_plane\\.connected_state$"))[
                                "control_plane.connected_state"
                            ] !== 0
                        )
                            return false;
                    return true;
                },
                20_000,
            );
            assert.equal((await measure(200)).counts.v1, 200);
            k(...handEditWeights(NAMESPACE, 50, 50));
            await sleep(1000);
            assert.deepEqual(
                receivedRoutes(await gatewayConfigDump(env()), PORT).map((r) => r.split),
                pods.map(() => ({ v1: 100 })),
            );
        } finally {
            meshScript("start", "istiod");
        }
        // Envoy retries its ADS stream with a jittered back-off of up to 30 s.
        await waitForReceivedSplit(env(), PORT, { v1: 50, v2: 50 }, 60_000);
        const { host, port } = ingressOf(MESH_KUBECONFIG);
        const report = await verify({
            host,
            port,
            connections: 1000,
            concurrency: 20,
            timeoutMs: 3000,
            expectedWeight: 50,
            prefixes: ECHO_PREFIXES,
            maxErrorRate: 0.01,
        });
        assert.equal(splitMismatch(report.counts, 1000, 50), undefined);
        k(...handEditWeights(NAMESPACE, 100, 0));
        await waitForReceivedSplit(env(), PORT, { v1: 100 });
    });

    describe("open connections through Envoy (drainDuration 5 s)", () => {
        const DRAIN = 5;
        let pods: GatewayPodInfo[];

        before(async () => {
            // As on a real gateway: the pod's own ProxyConfig (proxy.istio.io/config) sets the drain time.
            k(
                "-n",
                "istio-system",
                "patch",
                "deployment",
                "istio-ingressgateway",
                "--type=merge",
                "-p",
                JSON.stringify({
                    spec: {
                        template: {
                            metadata: {
                                annotations: {
                                    "proxy.istio.io/config": `drainDuration: ${DRAIN}s\nterminationDrainDuration: ${DRAIN}s\n`,
                                },
                            },
                        },
                    },
                }),
            );
            pods = await readyPods(DRAIN);
            await waitForReceivedSplit(env(), PORT, { v1: 100 }, 60_000);
        });

        after(() => {
            k(
                "-n",
                "istio-system",
                "patch",
                "deployment",
                "istio-ingressgateway",
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

        const record = (event: string, held: Held[], changedAt: number, appliedAt: number) => {
            for (const h of held)
                rows.push(
                    `| ${event} | ${h.id} | ${h.mode} | ${h.subset} | ${h.closedAt ? `closed (${h.how})` : "stayed open"} | ${seconds(h.closedAt && h.closedAt - changedAt)} | ${seconds(h.closedAt && h.closedAt - appliedAt)} | ${h.replies} |`,
                );
        };

        it(`a weight change drains the listener's filter chain: every open connection is closed when --drain-time-s (${DRAIN} s) ends, not at once`, async () => {
            const held = await hold(5);
            try {
                const inPlace = async () =>
                    Promise.all(
                        pods.map(
                            async (p) =>
                                (
                                    await envoyStats(
                                        p.admin,
                                        "^listener_manager\\.listener_in_place_updated$",
                                    )
                                )["listener_manager.listener_in_place_updated"] ?? 0,
                        ),
                    );
                const before = await inPlace();
                const changedAt = Date.now();
                k(...handEditWeights(NAMESPACE, 80, 20));
                await waitForReceivedSplit(env(), PORT, { v1: 80, v2: 20 });
                const appliedAt = Date.now();
                const draining = await Promise.all(
                    pods.map(
                        async (p) =>
                            (
                                await envoyStats(
                                    p.admin,
                                    "^listener_manager\\.total_filter_chains_draining$",
                                )
                            )["listener_manager.total_filter_chains_draining"],
                    ),
                );
                await until(
                    "every held connection closed",
                    () => held.every((h) => h.closedAt),
                    (DRAIN + 10) * 1000,
                    50,
                );
                record("weight 0 -> 20 (LDS: filter chain changed)", held, changedAt, appliedAt);
                assert.deepEqual(
                    (await inPlace()).map((n, i) => n - before[i]),
                    pods.map(() => 1),
                    "one in-place filter-chain update per Envoy",
                );
                assert.ok(
                    draining.every((d) => d >= 1),
                    `filter chains draining right after the change: ${draining}`,
                );
                for (const h of held) {
                    const after = h.closedAt! - appliedAt;
                    // Not at once, and at the end of the drain time (the window allows for istiod's push and our polling).
                    assert.ok(
                        h.closedAt! - changedAt >= (DRAIN - 1) * 1000,
                        `connection ${h.id} closed ${seconds(h.closedAt! - changedAt)} s after the change`,
                    );
                    assert.ok(
                        after <= (DRAIN + 3) * 1000,
                        `connection ${h.id} closed ${seconds(after)} s after Envoy had the change`,
                    );
                    if (h.mode === "stream")
                        assert.ok(
                            h.replies >= DRAIN - 1,
                            `connection ${h.id} kept streaming while draining (${h.replies} replies)`,
                        );
                }
            } finally {
                release(held);
            }
        });

        it("a change that leaves the filter chain alone (tcp-echo-v1 scaled 2 -> 3: EDS only) keeps every open connection", async () => {
            const held = await hold(5, 100);
            try {
                const lds = async () =>
                    Promise.all(
                        pods.map(
                            async (p) =>
                                await envoyStats(
                                    p.admin,
                                    "^listener_manager\\.(listener_in_place_updated|listener_modified)$",
                                ),
                        ),
                    );
                const before = await lds();
                const changedAt = Date.now();
                k("-n", NAMESPACE, "scale", "deployment", "tcp-echo-v1", "--replicas=3");
                await until(
                    "three v1 endpoints in every Envoy",
                    async () =>
                        receivedRoutes(await gatewayConfigDump(env()), PORT).every(
                            (r) => r.endpoints.v1?.length === 3,
                        ),
                    60_000,
                );
                const appliedAt = Date.now();
                await sleep((DRAIN + 3) * 1000);
                record("tcp-echo-v1 scaled 2 -> 3 (EDS only)", held, changedAt, appliedAt);
                assert.deepEqual(await lds(), before, "no listener update");
                for (const h of held) {
                    assert.equal(h.closedAt, undefined, `connection ${h.id} was closed (${h.how})`);
                    if (h.mode === "stream")
                        assert.ok(
                            Date.now() - h.lastReplyAt! < 2500,
                            `connection ${h.id} still streams`,
                        );
                }
            } finally {
                release(held);
                k("-n", NAMESPACE, "scale", "deployment", "tcp-echo-v1", "--replicas=2");
            }
        });

        it(`a gateway pod deleted: its Envoy drains for terminationDrainDuration (${DRAIN} s), then its connections close; the other pod's stay`, async () => {
            await until("two v1 pods", () => podIPs(NAMESPACE, "version=v1").length === 2);
            const held = await hold(5, 200);
            try {
                const [victim] = await readyPods(DRAIN);
                const port = victim.listeners[String(PORT)].split(":")[1];
                const active = (
                    await envoyStats(
                        victim.admin,
                        `^listener\\.127\\.0\\.0\\.1_${port}\\.downstream_cx_active$`,
                    )
                )[`listener.127.0.0.1_${port}.downstream_cx_active`];
                const changedAt = Date.now();
                k("-n", "istio-system", "delete", "pod", victim.pod.split("/")[1], "--wait=false");
                await sleep((DRAIN + 5) * 1000);
                record("a gateway pod deleted", held, changedAt, changedAt);
                const closed = held.filter((h) => h.closedAt);
                assert.equal(
                    closed.length,
                    active,
                    `the deleted pod held ${active} of the ${held.length} connections`,
                );
                assert.ok(
                    closed.length > 0 && closed.length < held.length,
                    `${closed.length} closed`,
                );
                for (const h of closed) {
                    const at = h.closedAt! - changedAt;
                    assert.ok(
                        at >= (DRAIN - 1) * 1000 && at <= (DRAIN + 3) * 1000,
                        `connection ${h.id} closed ${seconds(at)} s after the delete`,
                    );
                }
            } finally {
                release(held);
            }
            await readyPods(DRAIN);
        });
    });
});
