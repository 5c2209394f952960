import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { EngineEvent, Stack } from "@pulumi/pulumi/automation";
import { spawn, spawnSync } from "child_process";
import { EngineOptions, engineEnv, gatedUp, openStack, scratchProject, toolchainBinary } from "../../tools/engine";
import { killOrphanedPlugins, recover } from "../../tools/recover";
import { kubectl, kubectlJson } from "../../tools/kubectl";
import { routesOf } from "../../tools/routes";
import { TEST_CLUSTER, TEST_KUBECONFIG, testCluster } from "../support/cluster";

const NAMESPACE = "itest";

/** The real engine applying to the embedded local control plane (its own cluster, not the `local` stack's). */
describe("real engine on the local cluster", () => {
    let dir: string;
    let stack: Stack;
    let engine: EngineOptions;
    const k = (...args: string[]) => kubectl(TEST_KUBECONFIG, args);
    const get = (...args: string[]) => kubectlJson(TEST_KUBECONFIG, args);
    const liveWeights = () => routesOf(get("-n", NAMESPACE, "get", "virtualservices.networking.istio.io", "tcp-echo"))[0].destinations.map((d) => `${d.subset}=${d.weight}`);
    const deployments = () =>
        get("-n", NAMESPACE, "get", "deployments").items.map((d: any) => ({ name: d.metadata.name, generation: d.metadata.generation, available: d.status.availableReplicas }));
    const podUids = () => get("-n", NAMESPACE, "get", "pods").items.map((p: any) => p.metadata.uid).sort();

    async function upWithWeight(weight: number) {
        await stack.setConfig("v2Weight", { value: String(weight) });
        const events: EngineEvent[] = [];
        const { result } = await gatedUp(stack, { onEvent: (e) => events.push(e) });
        const updated = events.filter((e) => e.resOutputsEvent?.metadata.op === "update").map((e) => e.resOutputsEvent!.metadata.urn.split("::").pop());
        return { result, updated };
    }

    before(async () => {
        testCluster("up");
        k("create", "namespace", NAMESPACE, "--dry-run=client", "-o", "yaml");
        kubectl(TEST_KUBECONFIG, ["apply", "-f", "-"], `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${NAMESPACE}\n`);
        dir = scratchProject(fs.mkdtempSync(path.join(os.tmpdir(), "asm-tcp-shift-cluster-")));
        engine = { backendUrl: `file://${path.join(dir, ".state")}`, env: { PULUMI_CONFIG_PASSPHRASE: "integration-test" } };
        stack = await openStack("itest-cluster", { ...engine, workDir: dir });
        await stack.setAllConfig({ target: { value: "local" }, namespace: { value: NAMESPACE }, localKubeconfig: { value: TEST_KUBECONFIG } });
    });

    after(async () => {
        fs.rmSync(dir, { recursive: true, force: true });
        testCluster("down");
    });

    const clusterProcesses = () => spawnSync("pgrep", ["-f", path.join(".local", "kwok", "clusters", TEST_CLUSTER) + "/"], { encoding: "utf8" }).stdout.trim();

    it("cluster:up is idempotent: a second start reuses the running cluster", () => {
        const server = () => kubectlJson(TEST_KUBECONFIG, ["config", "view", "--minify"]).clusters[0].cluster.server;
        const before = server();
        testCluster("up");
        assert.equal(server(), before);
        assert.equal(get("get", "nodes").items.length, 1);
    });

    it("applies every object at v2Weight 0: Deployments Available, routes 100/0, CRs accepted", async () => {
        const { result } = await upWithWeight(0);
        assert.equal(result.summary.resourceChanges?.create, 15);
        assert.deepEqual(deployments(), [
            { name: "tcp-echo-v1", generation: 1, available: 1 },
            { name: "tcp-echo-v2", generation: 1, available: 1 },
        ]);
        assert.deepEqual(liveWeights(), ["v1=100", "v2=0"]);
        assert.equal(get("-n", NAMESPACE, "get", "gateways.networking.istio.io", "tcp-echo-gateway").spec.servers[0].port.number, 31400);
        assert.equal(get("-n", NAMESPACE, "get", "destinationrules.networking.istio.io", "tcp-echo-destination").spec.subsets.length, 2);
        const ig = get("-n", "istio-system", "get", "istiogateways.istio.alibabacloud.com", "ingressgateway");
        assert.deepEqual(ig.spec.ports, [{ name: "tcp", port: 31400, targetPort: 31400, protocol: "TCP" }]);
    });

    it("the API server rejects what the CRD schema forbids (the control-plane role validates for real)", () => {
        const bad = `apiVersion: istio.alibabacloud.com/v1beta1\nkind: IstioGateway\nmetadata: {name: bad, namespace: istio-system}\nspec: {gatewayType: sideways, clusterIds: []}\n`;
        assert.throws(() => kubectl(TEST_KUBECONFIG, ["apply", "-f", "-"], bad), /gatewayType|clusterIds/);
    });

    it("0 -> 20 updates only the VirtualService; Deployments and pods stay as they were", async () => {
        const deploymentsBefore = deployments();
        const podsBefore = podUids();
        const { result, updated } = await upWithWeight(20);
        assert.equal(result.summary.resourceChanges?.update, 1);
        assert.deepEqual(updated, ["tcp-echo-routing-virtualservice"]);
        assert.deepEqual(liveWeights(), ["v1=80", "v2=20"]);
        assert.deepEqual(deployments(), deploymentsBefore);
        assert.deepEqual(podUids(), podsBefore);
    });

    it("a weight edited by hand shows in preview --refresh and the next up --refresh restores it", async () => {
        k("-n", NAMESPACE, "patch", "virtualservices.networking.istio.io", "tcp-echo", "--type=json", "-p", '[{"op":"replace","path":"/spec/tcp/0/route/0/weight","value":50},{"op":"replace","path":"/spec/tcp/0/route/1/weight","value":50}]');
        assert.deepEqual(liveWeights(), ["v1=50", "v2=50"]);
        const preview = await stack.preview({ refresh: true, diff: true });
        assert.equal(preview.changeSummary.update, 1, JSON.stringify(preview.changeSummary));
        assert.match(preview.stdout, /weight\s*:\s*50\s*=>\s*80|50 => 80/);
        const up = await stack.up({ refresh: true });
        assert.equal(up.summary.resourceChanges?.update, 1);
        assert.deepEqual(liveWeights(), ["v1=80", "v2=20"]);
    });

    it("an up killed with SIGKILL mid-update converges on the next run after `npm run recover`", async () => {
        await stack.setConfig("replicas", { value: "3" });
        const env = { ...process.env, ...engineEnv("itest-cluster", engine) };
        const pulumi = toolchainBinary("pulumi");
        // Its own process group, so SIGKILL takes the language host and provider plugins down with it.
        const child = spawn(pulumi, ["up", "--yes", "--skip-preview", "--stack", "itest-cluster"], { cwd: dir, env, detached: true });
        let output = "";
        await new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`no Deployment update seen:\n${output}`)), 120_000);
            const watch = (chunk: Buffer) => {
                output += chunk.toString();
                if (/Deployment tcp-echo-\w+-deployment updating/.test(output)) {
                    clearTimeout(timer);
                    process.kill(-child.pid!, "SIGKILL");
                    resolve();
                }
            };
            child.stdout.on("data", watch);
            child.stderr.on("data", watch);
        });
        await new Promise((r) => child.once("exit", r));
        // Depending on the instant of the kill the update leaves its lock, a pending operation, or a
        // checkpoint cut short mid-write; plain `up` refuses to run in each case.
        await assert.rejects(stack.up(), /locked|failed to load checkpoint|pending/);
        const steps = await recover("itest-cluster", { ...engine, workDir: dir });
        assert.ok(steps.includes("refreshed the state from the target"), steps.join("; "));
        assert.deepEqual(killOrphanedPlugins(), [], "recover left no orphaned plugin behind");
        await stack.up({ refresh: true });
        assert.deepEqual(deployments().map((d: any) => d.available), [3, 3]);
        const again = await stack.preview();
        assert.deepEqual(Object.keys(again.changeSummary), ["same"]);
    });

    it("destroy removes every object from the cluster and leaves an empty stack", async () => {
        await stack.destroy();
        assert.deepEqual(get("-n", NAMESPACE, "get", "deployments,services,virtualservices.networking.istio.io,destinationrules.networking.istio.io,gateways.networking.istio.io").items.map((i: any) => i.metadata.name), []);
        assert.deepEqual(get("-n", "istio-system", "get", "istiogateways.istio.alibabacloud.com").items, []);
        assert.deepEqual((await stack.exportStack()).deployment.resources ?? [], []);
    });

    it("cluster:down stops every process of the cluster", () => {
        assert.notEqual(clusterProcesses(), "", "the cluster runs before down");
        testCluster("down");
        assert.equal(clusterProcesses(), "");
    });
});
