/**
 * Benchmarks of the real engine, printed as figures and ratios (not a test: nothing here passes or fails).
 *   npm run bench [-- --quick] [-- --only weight|render|cluster|scale|envoy|asm] [-- --cluster] [-- --rounds N]
 * 1. weight change on the local cluster, each figure against a floor run the same way in the same run (runs
 *    alternate, medians): the floor is bench/floor (one VirtualService) with bench/floor-policy (one policy).
 *    Ungated: `up` of each, no pack. Gated: preview with the pack, then `up` with it (gatedUp, as shift and the
 *    deploy workflow make it), for each. PR preview: preview with the pack of each. Physical floor: `kubectl apply`;
 * 2. render target: preview, a refused preview (bad config) against a passing one, first up, weight-change up,
 *    resources changed per weight change;
 * 3. local cluster: weight change by `pulumi up` vs `kubectl apply` of the same VirtualService; the mesh:
 *    propagation from the write to the first connection the gateway routes with the new split (through
 *    istiod and the gateway stand-in), and the memory of every process of the local mesh at rest;
 * 4. scale: preview time with 1, 10 and 50 routed services;
 * 5. envoy: connections per second through one gateway pod's Envoy (its own loopback listener, the CLB stand-in
 *    left out) against the same client straight to the echo pod behind it, alternating rounds, medians.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { performance } from "perf_hooks";
import { execFileSync, spawnSync } from "child_process";
import * as net from "net";
import { gatewayPods, ingressOf, meshEnv, waitForReceivedSplit } from "../tools/cluster/mesh";
import { stringify } from "yaml";
import {
    POLICY_PACK_DIR,
    PROJECT_ROOT,
    gatedUp,
    openStack,
    scratchProject,
    setSecretConfig,
} from "../tools/engine/engine";
import { kubectl } from "../tools/cluster/kubectl";
import { liveVirtualService } from "../tools/rollout/routes";

const quick = process.argv.includes("--quick");
const only = process.argv.includes("--only")
    ? process.argv[process.argv.indexOf("--only") + 1]
    : undefined;
const ROUNDS = quick ? 1 : 3;
/**
 * Rounds of the weight-change comparison: each round runs every path once, in turn. Single runs spread by up to
 * ±20% on two shared cores; `--rounds N` takes more for a steadier median.
 */
const roundsGiven = process.argv.includes("--rounds")
    ? process.argv[process.argv.indexOf("--rounds") + 1]
    : undefined;
const WEIGHT_ROUNDS = roundsGiven === undefined ? (quick ? 3 : 5) : Number(roundsGiven);
if (!Number.isInteger(WEIGHT_ROUNDS) || WEIGHT_ROUNDS < 1)
    throw new Error(
        `--rounds takes a whole number, at least 1; got ${JSON.stringify(roundsGiven)}`,
    );
const results: Record<string, number | string> = {};

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
    const start = performance.now();
    const value = await fn();
    return [(performance.now() - start) / 1000, value];
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (s: number) => `${s.toFixed(2)}s`;
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
function report(name: string, value: number | string) {
    results[name] = value;
    console.log(`${name.padEnd(48)} ${typeof value === "number" ? fmt(value) : value}`);
}
function scratch(prefix: string) {
    const dir = scratchProject(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
    return {
        dir,
        opts: {
            workDir: dir,
            backendUrl: `file://${path.join(dir, ".state")}`,
            env: { PULUMI_CONFIG_PASSPHRASE: "bench" },
        },
    };
}

/** `kubectl apply --server-side` of a manifest file, the way an operator would change the VirtualService by hand. */
function applyAsKubectlUser(kubeconfig: string, file: string): string {
    return kubectl(kubeconfig, [
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager",
        "bench",
        "-f",
        file,
    ]);
}

async function renderTarget() {
    const { dir, opts } = scratch("asm-bench-render-");
    const stack = await openStack("bench", opts);
    await stack.setAllConfig({ target: { value: "render" }, v2Weight: { value: "0" } });
    const [coldTime] = await timed(() => stack.preview());
    report("render: preview, first in a new folder (cold caches)", coldTime);
    const transpiled: number[] = [];
    const checked: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
        transpiled.push((await timed(() => stack.preview()))[0]);
        stack.workspace.envVars.PULUMI_NODEJS_TRANSPILE_ONLY = "false";
        checked.push((await timed(() => stack.preview()))[0]);
        // Back to the project's own setting (tsconfig.json's noCheck).
        delete stack.workspace.envVars.PULUMI_NODEJS_TRANSPILE_ONLY;
    }
    report(`render: preview, transpile only (median of ${ROUNDS})`, median(transpiled));
    report(`render: preview, ts-node type-checking (median of ${ROUNDS})`, median(checked));
    report(
        "render: ratio type-checking / transpile-only preview",
        `${(median(checked) / median(transpiled)).toFixed(1)}x`,
    );
    // A refused stack (bad config) against a passing preview: the refusal must not cost more than the work it saves.
    await stack.setConfig("v2Weight", { value: "101" });
    const refused: number[] = [];
    for (let i = 0; i < ROUNDS; i++)
        refused.push((await timed(() => stack.preview().catch(() => undefined)))[0]);
    await stack.setConfig("v2Weight", { value: "0" });
    report(`render: refused preview, v2Weight 101 (median of ${ROUNDS})`, median(refused));
    report(
        "render: ratio refused / passing preview",
        `${(median(refused) / median(transpiled)).toFixed(2)}x`,
    );
    const [upTime] = await timed(() => stack.up());
    report("render: first up", upTime);
    const changeTimes: number[] = [];
    let changed = 0;
    for (let i = 0; i < ROUNDS; i++) {
        await stack.setConfig("v2Weight", { value: String(i % 2 === 0 ? 20 : 0) });
        const [t, result] = await timed(() => stack.up());
        changeTimes.push(t);
        changed = result.summary.resourceChanges?.update ?? 0;
    }
    report(`render: weight-change up (median of ${ROUNDS})`, median(changeTimes));
    report("render: resources changed per weight change", String(changed));
    const [policyTime] = await timed(() => gatedUp(stack));
    report("render: gated (preview + up with the pack), no change", policyTime);
    await stack.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
}

/** The bench's own local cluster, apart from the `local` stack's and the tests'. */
const BENCH_CLUSTER = "asm-tcp-shift-bench";
function benchCluster(action: "up" | "down"): void {
    execFileSync("bash", [path.join(PROJECT_ROOT, "scripts/cluster.sh"), action], {
        env: { ...process.env, ASM_TCP_SHIFT_CLUSTER: BENCH_CLUSTER },
        stdio: ["ignore", "ignore", "inherit"],
    });
}

/** A weight change by each mechanism, every figure against the floor run the same way in the same run. */
async function weightChange() {
    const cluster = BENCH_CLUSTER;
    benchCluster("up");
    const kubeconfig = path.join(PROJECT_ROOT, ".local", `cluster-${cluster}`, "kubeconfig");
    const { dir, opts } = scratch("asm-bench-weight-");
    const floorDir = fs.mkdtempSync(path.join(os.tmpdir(), "asm-bench-floor-"));
    try {
        for (const entry of ["Pulumi.yaml", "index.ts"])
            fs.copyFileSync(
                path.join(PROJECT_ROOT, "bench/floor", entry),
                path.join(floorDir, entry),
            );
        for (const entry of ["tsconfig.json", "package.json", "node_modules"])
            fs.symlinkSync(path.join(PROJECT_ROOT, entry), path.join(floorDir, entry));
        const floorPack = path.join(floorDir, "policy");
        fs.mkdirSync(floorPack);
        for (const entry of ["index.ts", "PulumiPolicy.yaml", "package.json"])
            fs.copyFileSync(
                path.join(PROJECT_ROOT, "bench/floor-policy", entry),
                path.join(floorPack, entry),
            );
        fs.symlinkSync(
            path.join(PROJECT_ROOT, "policy/tsconfig.json"),
            path.join(floorPack, "tsconfig.json"),
        );
        fs.symlinkSync(
            path.join(PROJECT_ROOT, "node_modules"),
            path.join(floorPack, "node_modules"),
        );
        const floor = await openStack("floor", {
            workDir: floorDir,
            backendUrl: `file://${path.join(floorDir, ".state")}`,
            env: { PULUMI_CONFIG_PASSPHRASE: "bench", KUBECONFIG: kubeconfig },
        });
        const stack = await openStack("bench-weight", opts);
        await stack.setAllConfig({
            target: { value: "local" },
            v2Weight: { value: "0" },
            localKubeconfig: { value: kubeconfig },
        });
        await floor.setConfig("w", { value: "0" });
        // Warm-up: first runs create everything and fill the compile and plugin caches.
        await floor.up();
        await gatedUp(floor, { policyPacks: [floorPack] });
        await stack.up();
        await gatedUp(stack);

        const times: Record<string, number[]> = {
            floorUngated: [],
            floorGated: [],
            floorPrPreview: [],
            ungated: [],
            gated: [],
            prPreview: [],
            kubectl: [],
        };
        let weight = 0;
        const next = () => String((weight = (weight + 10) % 100));
        const take = async (key: string, fn: () => Promise<unknown>) =>
            times[key].push((await timed(fn))[0]);
        for (let round = 0; round < WEIGHT_ROUNDS; round++) {
            // Every path makes one real change: the weight moves before each of them.
            await floor.setConfig("w", { value: next() });
            await take("floorPrPreview", () => floor.preview({ policyPacks: [floorPack] }));
            await take("floorUngated", () => floor.up());
            await floor.setConfig("w", { value: next() });
            await take("floorGated", () => gatedUp(floor, { policyPacks: [floorPack] }));
            await stack.setConfig("v2Weight", { value: next() });
            await take("prPreview", () => stack.preview({ policyPacks: [POLICY_PACK_DIR] }));
            await take("ungated", () => stack.up());
            await stack.setConfig("v2Weight", { value: next() });
            await take("gated", () => gatedUp(stack));
            const vs = liveVirtualService(kubeconfig, "default", "floor-echo");
            // The same object under its own name, so kubectl and the floor never own the same fields.
            const manifest = {
                apiVersion: vs.apiVersion,
                kind: vs.kind,
                metadata: { name: "kubectl-echo", namespace: vs.metadata.namespace },
                spec: vs.spec,
            };
            manifest.spec.tcp[0].route[0].weight = 50 + (round % 2);
            manifest.spec.tcp[0].route[1].weight = 50 - (round % 2);
            const file = path.join(dir, "vs.yaml");
            fs.writeFileSync(file, stringify(manifest));
            await take("kubectl", async () => applyAsKubectlUser(kubeconfig, file));
        }
        const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
        const n = `median of ${WEIGHT_ROUNDS}, alternating`;
        report(`weight: floor ungated up (${n})`, m.floorUngated);
        report("weight: floor gated (preview + up, one-policy pack)", m.floorGated);
        report("weight: floor PR preview (preview, one-policy pack)", m.floorPrPreview);
        report("weight: ungated up (this program, no pack)", m.ungated);
        report("weight: gated (preview + up, this pack)", m.gated);
        report("weight: PR preview (preview, this pack)", m.prPreview);
        report("weight: kubectl apply --server-side of a VirtualService", m.kubectl);
        report(
            "weight: ratio ungated / floor ungated (goal <= 1.2x)",
            ratio(m.ungated, m.floorUngated),
        );
        report("weight: ratio gated / floor gated (goal <= 1.3x)", ratio(m.gated, m.floorGated));
        report(
            "weight: ratio PR preview / floor PR preview (goal <= 1.2x)",
            ratio(m.prPreview, m.floorPrPreview),
        );
        report("weight: ratio floor ungated up / kubectl apply", ratio(m.floorUngated, m.kubectl));
        for (const [key, runs] of Object.entries(times))
            results[`weight-runs: ${key}`] = runs.map((t) => t.toFixed(2)).join(" ");
        await stack.destroy();
        await floor.destroy();
    } finally {
        benchCluster("down");
        fs.rmSync(dir, { recursive: true, force: true });
        fs.rmSync(floorDir, { recursive: true, force: true });
    }
}

async function localCluster() {
    const cluster = BENCH_CLUSTER;
    const [startTime] = await timed(async () => benchCluster("up"));
    report("cluster: start (built binaries, cold data dir)", startTime);
    const kubeconfig = path.join(PROJECT_ROOT, ".local", `cluster-${cluster}`, "kubeconfig");
    const { dir, opts } = scratch("asm-bench-cluster-");
    try {
        const stack = await openStack("bench-cluster", opts);
        await stack.setAllConfig({
            target: { value: "local" },
            v2Weight: { value: "0" },
            localKubeconfig: { value: kubeconfig },
        });
        const [upTime] = await timed(() => stack.up());
        report("cluster: first up (Deployments Available)", upTime);
        await meshFigures(stack, kubeconfig, dir);

        const pulumiTimes: number[] = [];
        const kubectlTimes: number[] = [];
        for (let i = 0; i < ROUNDS; i++) {
            const weight = i % 2 === 0 ? 20 : 0;
            await stack.setConfig("v2Weight", { value: String(weight) });
            pulumiTimes.push((await timed(() => stack.up()))[0]);
            // The same object, the same change, applied by kubectl (client-side, no preview, no state).
            const vs = liveVirtualService(kubeconfig, "default");
            const manifest = {
                apiVersion: vs.apiVersion,
                kind: vs.kind,
                metadata: { name: vs.metadata.name, namespace: vs.metadata.namespace },
                spec: vs.spec,
            };
            // A real change of the live object: 50/50, whatever the stack just set.
            manifest.spec.tcp[0].route[0].weight = 50;
            manifest.spec.tcp[0].route[1].weight = 50;
            const file = path.join(dir, "vs.yaml");
            fs.writeFileSync(file, stringify(manifest));
            kubectlTimes.push((await timed(async () => applyAsKubectlUser(kubeconfig, file)))[0]);
        }
        const p = median(pulumiTimes);
        const k = median(kubectlTimes);
        report(`cluster: weight change, pulumi up (median of ${ROUNDS})`, p);
        report(`cluster: weight change, kubectl apply (median of ${ROUNDS})`, k);
        report("cluster: ratio pulumi up / kubectl apply", `${(p / k).toFixed(1)}x`);
        await stack.destroy();
    } finally {
        benchCluster("down");
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/**
 * The same weight change (gated `up`, as `npm run local` and `shift` make it) on a `local` stack and on an `asm` stack
 * of the two-cluster topology, in turn, in the same run: what the second provider, the second API server and the
 * access checks cost. The `local` stack is the floor.
 */
async function asmTopology() {
    const local = scratch("asm-bench-local-");
    const asm = scratch("asm-bench-asm-");
    const asmCluster = `${BENCH_CLUSTER}-asm`;
    const asmDir = path.join(PROJECT_ROOT, ".local", `cluster-${asmCluster}`);
    const asmEnv = { ...process.env, ASM_TCP_SHIFT_CLUSTER: asmCluster };
    const runCluster = (env: NodeJS.ProcessEnv, ...args: string[]) =>
        execFileSync("bash", [path.join(PROJECT_ROOT, "scripts/cluster.sh"), ...args], {
            env,
            stdio: ["ignore", "ignore", "inherit"],
        });
    try {
        benchCluster("up");
        const [asmStart] = await timed(async () => runCluster(asmEnv, "up", "--topology", "asm"));
        report("asm: cluster:up --topology asm (built binaries, cold data dir)", asmStart);
        const localKubeconfig = path.join(
            PROJECT_ROOT,
            ".local",
            `cluster-${BENCH_CLUSTER}`,
            "kubeconfig",
        );
        const controlAdmin = path.join(asmDir, "control-plane-admin.kubeconfig");
        for (const kubeconfig of [controlAdmin, path.join(asmDir, "kubeconfig")])
            kubectl(
                kubeconfig,
                ["apply", "-f", "-"],
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: bench}\n",
            );
        kubectl(
            localKubeconfig,
            ["apply", "-f", "-"],
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: bench}\n",
        );

        const localStack = await openStack("bench-local", local.opts);
        await localStack.setAllConfig({
            target: { value: "local" },
            namespace: { value: "bench" },
            v2Weight: { value: "0" },
            localKubeconfig: { value: localKubeconfig },
        });
        const asmStack = await openStack("bench-asm", asm.opts);
        await asmStack.setAllConfig({
            target: { value: "asm" },
            namespace: { value: "bench" },
            v2Weight: { value: "0" },
            asm: {
                value: JSON.stringify({
                    clusterIds: [
                        fs.readFileSync(path.join(asmDir, "data-plane-cluster-id"), "utf8").trim(),
                    ],
                }),
            },
            slb: { value: JSON.stringify({ mode: "managed" }) },
        });
        await setSecretConfig(
            asmStack,
            "controlPlaneKubeconfig",
            fs.readFileSync(path.join(asmDir, "control-plane.kubeconfig"), "utf8"),
        );
        await setSecretConfig(
            asmStack,
            "dataPlaneKubeconfig",
            fs.readFileSync(path.join(asmDir, "data-plane.kubeconfig"), "utf8"),
        );
        // Warm-up: first runs create everything and fill the compile and plugin caches.
        await gatedUp(localStack);
        await gatedUp(asmStack);
        const times = { local: [] as number[], asm: [] as number[] };
        for (let i = 0; i < WEIGHT_ROUNDS; i++) {
            const weight = i % 2 === 0 ? 20 : 0;
            for (const [key, stack] of [
                ["local", localStack],
                ["asm", asmStack],
            ] as const) {
                await stack.setConfig("v2Weight", { value: String(weight) });
                times[key].push((await timed(() => gatedUp(stack)))[0]);
            }
        }
        report(
            `asm: weight change, gated up, local stack (median of ${WEIGHT_ROUNDS})`,
            median(times.local),
        );
        report(
            `asm: weight change, gated up, asm stack (median of ${WEIGHT_ROUNDS})`,
            median(times.asm),
        );
        report("asm: ratio asm stack / local stack", ratio(median(times.asm), median(times.local)));
        for (const [key, runs] of Object.entries(times))
            results[`asm-runs: ${key}`] = runs.map((t) => t.toFixed(2)).join(" ");
        await localStack.destroy();
        await asmStack.destroy();
    } finally {
        benchCluster("down");
        runCluster(asmEnv, "down");
        fs.rmSync(local.dir, { recursive: true, force: true });
        fs.rmSync(asm.dir, { recursive: true, force: true });
    }
}

/** One connection through the gateway: the reply's prefix (one / two), or the error. */
function probe(host: string, port: number): Promise<string> {
    return new Promise((resolve) => {
        const socket = net.connect({ host, port });
        let data = "";
        const done = (v: string) => {
            socket.destroy();
            resolve(v);
        };
        socket.setTimeout(2000, () => done("timeout"));
        socket.on("connect", () => socket.write("bench\n"));
        socket.on("data", (c) => {
            data += c.toString();
            if (data.includes("\n")) done(data.split(" ")[0]);
        });
        socket.on("error", (e) => done(`error ${(e as NodeJS.ErrnoException).code}`));
        socket.on("close", () => done(data ? data.split(" ")[0] : "closed"));
    });
}

/** Connects until a reply comes from `prefix`; returns when (performance.now(), ms). */
async function firstReplyFrom(
    host: string,
    port: number,
    prefix: string,
    timeoutMs = 30_000,
): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
        if ((await probe(host, port)) === prefix) return performance.now();
    }
    throw new Error(`no reply from ${prefix} within ${timeoutMs} ms`);
}

function rssMB(pid: number): number {
    try {
        return (
            Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024
        );
    } catch {
        return 0;
    }
}

/** Every process of the local mesh: control plane (etcd, kube-*, kwok), istiod, controller, echo pods, gateway. */
function meshMemory(cluster: string, meshDir: string): Record<string, number> {
    const pgrep = (args: string[]) =>
        (spawnSync("pgrep", args, { encoding: "utf8" }).stdout ?? "")
            .split("\n")
            .filter(Boolean)
            .map(Number);
    const out: Record<string, number> = {};
    out["control plane (etcd, kube-*, kwok)"] = pgrep([
        "-f",
        path.join(PROJECT_ROOT, ".local/kwok/clusters", cluster) + "/",
    ]).reduce((a, p) => a + rssMB(p), 0);
    for (const c of ["istiod", "controller", "gateway"]) {
        const pid = Number(fs.readFileSync(path.join(meshDir, `${c}.pid`), "utf8"));
        out[c] = rssMB(pid);
        if (c === "controller")
            out["echo pods (tcp-echo)"] = pgrep(["-P", String(pid)]).reduce(
                (a, p) => a + rssMB(p),
                0,
            );
    }
    return out;
}

/** Propagation (p50 over >= 5 changes, pulumi up and kubectl apply) and memory of the local mesh. */
async function meshFigures(
    stack: Awaited<ReturnType<typeof openStack>>,
    kubeconfig: string,
    dir: string,
) {
    const cluster = BENCH_CLUSTER;
    const { host, port } = ingressOf(kubeconfig);
    const memory = meshMemory(cluster, meshEnv(kubeconfig).dir);
    for (const [what, mb] of Object.entries(memory))
        report(`mesh: memory at rest, ${what}`, `${mb.toFixed(0)} MB`);
    report(
        "mesh: memory at rest, every process",
        `${Object.values(memory)
            .reduce((a, b) => a + b, 0)
            .toFixed(0)} MB`,
    );

    const changes = quick ? 3 : 6;
    const afterWrite: number[] = [];
    const fromUp: number[] = [];
    for (let i = 0; i < changes; i++) {
        const weight = i % 2 === 0 ? 100 : 0;
        await stack.setConfig("v2Weight", { value: String(weight) });
        let written = 0;
        const started = performance.now();
        const up = stack.up({
            onEvent: (e) => {
                if (
                    e.resOutputsEvent?.metadata.type.endsWith(":VirtualService") &&
                    e.resOutputsEvent.metadata.op === "update"
                )
                    written = performance.now();
            },
        });
        const seen = await firstReplyFrom(host, port, weight === 100 ? "two" : "one", 120_000);
        await up;
        fromUp.push((seen - started) / 1000);
        afterWrite.push(Math.max(0, seen - written) / 1000);
    }
    report(
        `mesh: propagation, pulumi up start -> first routed connection (p50 of ${changes})`,
        median(fromUp),
    );
    report(
        `mesh: propagation, VirtualService written by pulumi -> first routed connection (p50 of ${changes})`,
        median(afterWrite),
    );

    const viaKubectl: number[] = [];
    const vs = liveVirtualService(kubeconfig, "default");
    for (let i = 0; i < changes; i++) {
        const weight = i % 2 === 0 ? 100 : 0;
        const manifest = {
            apiVersion: vs.apiVersion,
            kind: vs.kind,
            metadata: { name: vs.metadata.name, namespace: vs.metadata.namespace },
            spec: vs.spec,
        };
        manifest.spec.tcp[0].route[0].weight = 100 - weight;
        manifest.spec.tcp[0].route[1].weight = weight;
        const file = path.join(dir, "vs-propagation.yaml");
        fs.writeFileSync(file, stringify(manifest));
        applyAsKubectlUser(kubeconfig, file);
        const written = performance.now();
        const seen = await firstReplyFrom(host, port, weight === 100 ? "two" : "one");
        viaKubectl.push((seen - written) / 1000);
    }
    report(
        `mesh: propagation, kubectl apply returned -> first routed connection (p50 of ${changes})`,
        median(viaKubectl),
    );
    await stack.up({ refresh: true });
}

/**
 * `total` connections, `concurrency` at a time, each: connect, send a line, read the echoed line, close. Returns
 * connections per second and how many did not get their reply.
 */
async function connectionRate(
    host: string,
    port: number,
    total: number,
    concurrency: number,
): Promise<{ perSecond: number; failed: number }> {
    let next = 0;
    let failed = 0;
    const one = () =>
        new Promise<void>((resolve) => {
            const socket = net.connect({ host, port });
            let data = "";
            const done = (ok: boolean) => {
                if (!ok) failed++;
                socket.destroy();
                resolve();
            };
            socket.setTimeout(5000, () => done(false));
            socket.setNoDelay(true);
            socket.on("connect", () => socket.write("bench\n"));
            socket.on("data", (c) => {
                data += c.toString();
                if (data.includes("\n")) done(true);
            });
            socket.on("error", () => done(false));
        });
    const start = performance.now();
    await Promise.all(
        Array.from({ length: concurrency }, async () => {
            while (next++ < total) await one();
        }),
    );
    return { perSecond: total / ((performance.now() - start) / 1000), failed };
}

/**
 * Connections per second through one gateway pod's Envoy against a floor run the same way in the same run: the
 * same client straight to the loopback port of the one echo pod that Envoy sends every connection to (v2 weight
 * 0, one replica). Rounds alternate, so a busy machine slows both sides.
 */
async function envoyRate() {
    const cluster = BENCH_CLUSTER;
    benchCluster("up");
    const kubeconfig = path.join(PROJECT_ROOT, ".local", `cluster-${cluster}`, "kubeconfig");
    const { dir, opts } = scratch("asm-bench-envoy-");
    try {
        const stack = await openStack("bench-envoy", opts);
        await stack.setAllConfig({
            target: { value: "local" },
            v2Weight: { value: "0" },
            localKubeconfig: { value: kubeconfig },
        });
        await stack.up();
        const env = meshEnv(kubeconfig);
        await waitForReceivedSplit(env, 31400, { v1: 100 }, 60_000);
        const pods = (await gatewayPods(env)).filter((p) => p.ready);
        const [gateway] = pods;
        // At rest, before any connection: each Envoy, and the whole mesh as `npm run cluster:status` shows it.
        await new Promise((r) => setTimeout(r, 3000));
        report(
            "envoy: memory at rest, each gateway pod's Envoy",
            pods.map((p) => `${rssMB(p.pid).toFixed(0)} MB`).join(", "),
        );
        const status = execFileSync(
            "bash",
            [path.join(PROJECT_ROOT, "scripts/cluster.sh"), "status"],
            { env: { ...process.env, ASM_TCP_SHIFT_CLUSTER: cluster }, encoding: "utf8" },
        );
        const mesh = Number(/^mesh total\s+(\d+)/m.exec(status)?.[1]);
        const kube = Number(/control plane \(etcd, kube-\*, kwok\): (\d+) MB/.exec(status)?.[1]);
        report("envoy: memory at rest, mesh processes (cluster:status)", `${mesh} MB`);
        report("envoy: memory at rest, the cluster's control plane", `${kube} MB`);
        report("envoy: memory at rest, mesh and cluster together", `${mesh + kube} MB`);
        const [envoyHost, envoyPort] = gateway.listeners["31400"].split(":");
        const echo = JSON.parse(
            fs.readFileSync(path.join(env.dir, "state", "echo-pods.json"), "utf8"),
        ).entries.filter((e: any) => e.ready && /tcp-echo-v1/.test(e.pod));
        if (echo.length !== 1)
            throw new Error(`expected one ready v1 echo pod, got ${JSON.stringify(echo)}`);
        const [echoHost, echoPort] = String(echo[0].loopback).split(":");
        const total = quick ? 2000 : 5000;
        const concurrency = 20;
        // Warm-up of both paths (Envoy's upstream connection setup, the echo server's goroutines).
        await connectionRate(envoyHost, Number(envoyPort), 500, concurrency);
        await connectionRate(echoHost, Number(echoPort), 500, concurrency);
        const through: number[] = [];
        const floor: number[] = [];
        let failed = 0;
        for (let i = 0; i < WEIGHT_ROUNDS; i++) {
            const e = await connectionRate(envoyHost, Number(envoyPort), total, concurrency);
            const f = await connectionRate(echoHost, Number(echoPort), total, concurrency);
            through.push(e.perSecond);
            floor.push(f.perSecond);
            failed += e.failed + f.failed;
        }
        const t = median(through);
        const f = median(floor);
        const rate = (x: number) => `${x.toFixed(0)} connections/s`;
        report(
            `envoy: ${total} connections x ${WEIGHT_ROUNDS}, ${concurrency} at a time, through ${gateway.pod}'s Envoy (median)`,
            rate(t),
        );
        report("envoy: floor, the same client straight to the echo pod (median)", rate(f));
        report("envoy: ratio through Envoy / floor", `${(t / f).toFixed(2)}x`);
        report("envoy: connections without a reply (both sides)", String(failed));
        report("envoy: memory of that Envoy after the runs", `${rssMB(gateway.pid).toFixed(0)} MB`);
        await stack.destroy();
    } finally {
        benchCluster("down");
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

async function scale() {
    const { dir, opts } = scratch("asm-bench-scale-");
    fs.rmSync(path.join(dir, "index.ts"));
    fs.symlinkSync(path.join(PROJECT_ROOT, "bench/scale/index.ts"), path.join(dir, "index.ts"));
    const stack = await openStack("bench-scale", opts);
    await stack.setConfig("v2Weight", { value: "20" });
    const times: Record<number, number> = {};
    await stack.setConfig("benchServices", { value: "1" });
    await stack.preview(); // warm-up: the first run in a folder fills compiler and plugin caches
    for (const n of [1, 10, 50]) {
        await stack.setConfig("benchServices", { value: String(n) });
        const runs: number[] = [];
        let resources = 0;
        for (let i = 0; i < ROUNDS; i++) {
            const [t, preview] = await timed(() => stack.preview());
            runs.push(t);
            resources = preview.changeSummary.create ?? 0;
        }
        times[n] = median(runs);
        report(`scale: preview, ${n} routed service(s) (${resources} resources)`, times[n]);
    }
    report("scale: ratio preview 10 / 1 services", `${(times[10] / times[1]).toFixed(1)}x`);
    report("scale: ratio preview 50 / 1 services", `${(times[50] / times[1]).toFixed(1)}x`);
    fs.rmSync(dir, { recursive: true, force: true });
}

async function main() {
    console.log(
        `asm-tcp-shift benchmarks (${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(1)}, node ${process.version})\n`,
    );
    // --cluster: only the local cluster and mesh figures; --only weight|render|cluster|scale|envoy|asm: that part alone.
    const parts: Record<string, () => Promise<void>> = {
        weight: weightChange,
        render: renderTarget,
        cluster: localCluster,
        scale,
        envoy: envoyRate,
        asm: asmTopology,
    };
    const chosen = only
        ? [only]
        : process.argv.includes("--cluster")
          ? ["cluster"]
          : Object.keys(parts);
    for (const part of chosen) {
        if (!parts[part])
            throw new Error(
                `--only takes ${Object.keys(parts).join(", ")}; got ${JSON.stringify(part)}`,
            );
        await parts[part]();
    }
    const out = path.join(PROJECT_ROOT, "bench/results");
    fs.mkdirSync(out, { recursive: true });
    fs.writeFileSync(
        path.join(out, `bench-${new Date().toISOString().replace(/[:.]/g, "-")}.json`),
        JSON.stringify(results, null, 2),
    );
}

main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
});
