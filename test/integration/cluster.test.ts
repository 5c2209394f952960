import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { EngineEvent, Stack } from "@pulumi/pulumi/automation";
import { spawnSync } from "child_process";
import { OBJECT_NAMES, deploymentName } from "../../components/model";
import {
    EngineOptions,
    PROJECT_ROOT,
    gatedUp,
    openStack,
    scratchProject,
} from "../../tools/engine/engine";
import { killOrphanedPlugins, recover } from "../../tools/state/recover";
import { kubectl, kubectlJson } from "../../tools/cluster/kubectl";
import { routesOf } from "../../tools/rollout/routes";
import {
    TEST_CLUSTER,
    TEST_KUBECONFIG,
    handEditSubsetVersion,
    handEditWeights,
    testCluster,
} from "../support/cluster";
import { upKilledMidUpdate } from "../support/seed";

const NAMESPACE = "itest";
/** kwokctl's folder of this checkout (scripts/cluster.sh's KWOK_WORKDIR). */
const KWOK_WORKDIR = path.join(PROJECT_ROOT, ".local", "kwok");
/** The stack's own gateway name here: the mesh's conventional `ingressgateway` belongs to someone else. */
const OWN_GATEWAY = "tcp-echo-ingressgateway";
/** A gateway someone else made before the stack existed, as on a real ASM instance (ports 80 and 443). */
const FOREIGN_GATEWAY = `apiVersion: istio.alibabacloud.com/v1beta1
kind: IstioGateway
metadata:
  name: ingressgateway
  namespace: istio-system
  labels: {asm-gateway-type: ingress}
spec:
  gatewayType: ingress
  clusterIds: [local]
  replicaCount: 2
  serviceType: LoadBalancer
  serviceAnnotations:
    service.beta.kubernetes.io/alibaba-cloud-loadbalancer-id: lb-2ze8x7someoneelse1
  ports:
  - {name: http-0, port: 80, targetPort: 80, protocol: TCP}
  - {name: https-1, port: 443, targetPort: 443, protocol: TCP}
`;

/** The real engine applying to the embedded local control plane (its own cluster, not the `local` stack's). */
describe("real engine on the local cluster", () => {
    let dir: string;
    let stack: Stack;
    let engine: EngineOptions;
    const k = (...args: string[]) => kubectl(TEST_KUBECONFIG, args);
    const get = (...args: string[]) => kubectlJson(TEST_KUBECONFIG, args);
    const liveWeights = () =>
        routesOf(
            get(
                "-n",
                NAMESPACE,
                "get",
                "virtualservices.networking.istio.io",
                OBJECT_NAMES.virtualService,
            ),
        )[0].destinations.map((d) => `${d.subset}=${d.weight}`);
    const deployments = () =>
        get("-n", NAMESPACE, "get", "deployments").items.map((d: any) => ({
            name: d.metadata.name,
            generation: d.metadata.generation,
            available: d.status.availableReplicas,
        }));
    const podUids = () =>
        get("-n", NAMESPACE, "get", "pods")
            .items.map((p: any) => p.metadata.uid)
            .sort();
    /** The foreign gateway exactly as the API server stores it, resourceVersion and managed fields included. */
    const foreignGateway = () =>
        k(
            "-n",
            "istio-system",
            "get",
            "istiogateways.istio.alibabacloud.com",
            "ingressgateway",
            "-o",
            "json",
        );
    let foreignBytes: string;
    /**
     * The foreign gateway once the local mesh's controller (ASM's stand-in) has written its status, as ASM would on
     * the cloud: that write is ASM's, not the stack's, so the bytes are compared from then on.
     */
    async function settledForeignGateway(): Promise<string> {
        const deadline = Date.now() + 60_000;
        let last = "";
        while (Date.now() < deadline) {
            const now = foreignGateway();
            if (JSON.parse(now).status?.Status === "RUNNING" && now === last) return now;
            last = now;
            await new Promise((r) => setTimeout(r, 1000));
        }
        throw new Error(`the foreign gateway's status did not settle: ${last}`);
    }

    async function upWithWeight(weight: number) {
        await stack.setConfig("v2Weight", { value: String(weight) });
        const events: EngineEvent[] = [];
        const { result } = await gatedUp(stack, { onEvent: (e) => events.push(e) });
        const updated = events
            .filter((e) => e.resOutputsEvent?.metadata.op === "update")
            .map((e) => e.resOutputsEvent!.metadata.urn.split("::").pop());
        return { result, updated };
    }

    before(async () => {
        testCluster("up");
        k("create", "namespace", NAMESPACE, "--dry-run=client", "-o", "yaml");
        kubectl(
            TEST_KUBECONFIG,
            ["apply", "-f", "-"],
            `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${NAMESPACE}\n`,
        );
        dir = scratchProject(fs.mkdtempSync(path.join(os.tmpdir(), "asm-tcp-shift-cluster-")));
        engine = {
            backendUrl: `file://${path.join(dir, ".state")}`,
            env: { PULUMI_CONFIG_PASSPHRASE: "integration-test" },
        };
        stack = await openStack("itest-cluster", { ...engine, workDir: dir });
        await stack.setAllConfig({
            target: { value: "local" },
            namespace: { value: NAMESPACE },
            localKubeconfig: { value: TEST_KUBECONFIG },
        });
        kubectl(TEST_KUBECONFIG, ["apply", "-f", "-"], FOREIGN_GATEWAY);
        foreignBytes = await settledForeignGateway();
    });

    after(async () => {
        fs.rmSync(dir, { recursive: true, force: true });
        testCluster("down");
    });

    // This checkout's cluster only: other checkouts on the machine may run a test cluster of the same name.
    const clusterProcesses = () =>
        spawnSync(
            "pgrep",
            ["-f", path.join(PROJECT_ROOT, ".local", "kwok", "clusters", TEST_CLUSTER) + "/"],
            { encoding: "utf8" },
        ).stdout.trim();

    it("cluster:up is idempotent: a second start reuses the running cluster", () => {
        const server = () =>
            kubectlJson(TEST_KUBECONFIG, ["config", "view", "--minify"]).clusters[0].cluster.server;
        const before = server();
        testCluster("up");
        assert.equal(server(), before);
        assert.equal(get("get", "nodes").items.length, 1);
    });

    it("refuses to take over an IstioGateway it did not create, before anything changes", async () => {
        await assert.rejects(upWithWeight(0), (err: Error) => {
            assert.match(
                err.message,
                /asm-tcp-shift:asm\.gatewayName: IstioGateway istio-system\/ingressgateway already exists on .* and this stack did not create it/,
            );
            assert.match(err.message, /nothing was changed/);
            return true;
        });
        // One gated engine run (no separate preview): a first update records only Pulumi's own stack and provider.
        const recorded = ((await stack.exportStack()).deployment.resources ?? []).map(
            (r: any) => r.type,
        );
        assert.deepEqual(
            recorded.filter((t: string) => !t.startsWith("pulumi:")),
            [],
            "no resource was registered",
        );
        assert.deepEqual(get("-n", NAMESPACE, "get", "deployments,services").items, []);
        assert.equal(
            foreignGateway(),
            foreignBytes,
            "the foreign gateway is byte for byte as it was",
        );
        await stack.setConfig("asm", { value: JSON.stringify({ gatewayName: OWN_GATEWAY }) });
    });

    it("applies every object at v2Weight 0: Deployments Available, routes 100/0, CRs accepted", async () => {
        const { result } = await upWithWeight(0);
        // All 15 records: the refused run above stopped in its preview and wrote nothing, not even Pulumi's stack.
        assert.equal(
            result.summary.resourceChanges?.create,
            15,
            JSON.stringify(result.summary.resourceChanges),
        );
        assert.deepEqual(deployments(), [
            { name: "tcp-echo-v1", generation: 1, available: 1 },
            { name: "tcp-echo-v2", generation: 1, available: 1 },
        ]);
        assert.deepEqual(liveWeights(), ["v1=100", "v2=0"]);
        assert.equal(
            get("-n", NAMESPACE, "get", "gateways.networking.istio.io", OBJECT_NAMES.gateway).spec
                .servers[0].port.number,
            31400,
        );
        assert.equal(
            get(
                "-n",
                NAMESPACE,
                "get",
                "destinationrules.networking.istio.io",
                OBJECT_NAMES.destinationRule,
            ).spec.subsets.length,
            2,
        );
        const ig = get(
            "-n",
            "istio-system",
            "get",
            "istiogateways.istio.alibabacloud.com",
            OWN_GATEWAY,
        );
        assert.deepEqual(ig.spec.ports, [
            { name: "tcp", port: 31400, targetPort: 31400, protocol: "TCP" },
        ]);
        assert.deepEqual(ig.spec.podLabels, { "asm-tcp-shift.io/gateway": OWN_GATEWAY });
        assert.deepEqual(
            [ig.spec.replicaCount, ig.spec.minReplicas, ig.spec.maxReplicas],
            [2, 2, 2],
        );
        const gw = get(
            "-n",
            NAMESPACE,
            "get",
            "gateways.networking.istio.io",
            OBJECT_NAMES.gateway,
        );
        assert.deepEqual(gw.spec.selector, { "asm-tcp-shift.io/gateway": OWN_GATEWAY });
        assert.equal(
            foreignGateway(),
            foreignBytes,
            "the foreign gateway is byte for byte as it was",
        );
    });

    it("the API server rejects what the CRD schema forbids (the control-plane role validates for real)", () => {
        const bad = `apiVersion: istio.alibabacloud.com/v1beta1\nkind: IstioGateway\nmetadata: {name: bad, namespace: istio-system}\nspec: {gatewayType: sideways, clusterIds: []}\n`;
        assert.throws(
            () => kubectl(TEST_KUBECONFIG, ["apply", "-f", "-"], bad),
            /gatewayType|clusterIds/,
        );
    });

    it("the IstioGateway schema is ASM's field list: a misspelt field is refused, by kubectl and by server-side apply", () => {
        const typo = (field: string) =>
            `apiVersion: istio.alibabacloud.com/v1beta1\nkind: IstioGateway\nmetadata: {name: typo, namespace: istio-system}\nspec: {gatewayType: ingress, clusterIds: [local], ${field}}\n`;
        for (const field of ["rollingUpdate: {maxSurge: 1}", "overrideHpa: true"]) {
            assert.throws(
                () => kubectl(TEST_KUBECONFIG, ["apply", "-f", "-"], typo(field)),
                /unknown field|field not declared in schema/,
                field,
            );
            assert.throws(
                () => kubectl(TEST_KUBECONFIG, ["apply", "--server-side", "-f", "-"], typo(field)),
                /unknown field|field not declared in schema/,
                field,
            );
        }
        // The real fields of the same names are accepted (dry run: nothing is created).
        kubectl(
            TEST_KUBECONFIG,
            ["apply", "--dry-run=server", "-f", "-"],
            typo(
                'rollingMaxSurge: "25%", rollingMaxUnavailable: "0", autoscaleEnabled: false, podLabels: {a: b}',
            ),
        );
    });

    it("exports the gateway address ASM reports in the CR status", async () => {
        // The local mesh's IstioGateway controller writes the status as ASM does (its loopback CLB stand-in address).
        const status = () =>
            get("-n", "istio-system", "get", "istiogateways.istio.alibabacloud.com", OWN_GATEWAY)
                .status ?? {};
        const deadline = Date.now() + 30_000;
        while (!status().GatewayAddress?.[0] && Date.now() < deadline)
            await new Promise((r) => setTimeout(r, 250));
        const reported: string = status().GatewayAddress?.[0];
        assert.match(reported ?? "", /^127\./, "the controller reported a loopback address");
        const { outputs } = await stack.up({ refresh: true });
        assert.equal(outputs.ingressAddress?.value, reported);
        assert.equal(outputs.ingressAddressHint, undefined);
        // The schema knows ASM's capitalised status keys only: anything else is pruned on write.
        k(
            "-n",
            "istio-system",
            "patch",
            "istiogateways.istio.alibabacloud.com",
            OWN_GATEWAY,
            "--subresource=status",
            "--type=merge",
            "-p",
            '{"status":{"gatewayAddress":["x"]}}',
        );
        assert.equal(status().gatewayAddress, undefined);
        assert.deepEqual(status().GatewayAddress, [reported]);
    });

    it("0 -> 20 updates only the VirtualService; Deployments and pods stay as they were", async () => {
        const deploymentsBefore = deployments();
        const podsBefore = podUids();
        const { result, updated } = await upWithWeight(20);
        assert.equal(result.summary.resourceChanges?.update, 1, "the VirtualService alone");
        assert.deepEqual(updated, ["tcp-echo-routing-virtualservice"]);
        assert.deepEqual(liveWeights(), ["v1=80", "v2=20"]);
        assert.deepEqual(deployments(), deploymentsBefore);
        assert.deepEqual(podUids(), podsBefore);
    });

    it("a weight edited by hand shows in preview --refresh and the next up --refresh restores it", async () => {
        k(...handEditWeights(NAMESPACE, 50, 50));
        assert.deepEqual(liveWeights(), ["v1=50", "v2=50"]);
        const preview = await stack.preview({ refresh: true, diff: true });
        assert.equal(preview.changeSummary.update, 1, JSON.stringify(preview.changeSummary));
        assert.match(preview.stdout, /weight\s*:\s*50\s*=>\s*80|50 => 80/);
        const up = await stack.up({ refresh: true });
        assert.equal(up.summary.resourceChanges?.update, 1);
        assert.deepEqual(liveWeights(), ["v1=80", "v2=20"]);
    });

    /** One hand edit per kind the stack owns, as kubectl or the ASM console makes it, and what the stack restores. */
    const HAND_EDITS: {
        kind: string;
        resource: string;
        edit: string[];
        read: () => unknown;
        expected: unknown;
    }[] = [
        {
            kind: "Gateway",
            resource: "tcp-echo-routing-gateway",
            edit: [
                "-n",
                NAMESPACE,
                "patch",
                "gateways.networking.istio.io",
                OBJECT_NAMES.gateway,
                "--type=merge",
                "-p",
                '{"spec":{"selector":{"asm-tcp-shift.io/gateway":"someone-elses"}}}',
            ],
            read: () =>
                get("-n", NAMESPACE, "get", "gateways.networking.istio.io", OBJECT_NAMES.gateway)
                    .spec.selector,
            expected: { "asm-tcp-shift.io/gateway": OWN_GATEWAY },
        },
        {
            kind: "DestinationRule",
            resource: "tcp-echo-routing-destinationrule",
            edit: handEditSubsetVersion(NAMESPACE),
            read: () =>
                get(
                    "-n",
                    NAMESPACE,
                    "get",
                    "destinationrules.networking.istio.io",
                    OBJECT_NAMES.destinationRule,
                ).spec.subsets[1].labels,
            expected: { version: "v2" },
        },
        {
            kind: "IstioGateway",
            resource: "tcp-echo-ingress-istiogateway",
            edit: [
                "-n",
                "istio-system",
                "patch",
                "istiogateways.istio.alibabacloud.com",
                OWN_GATEWAY,
                "--type=json",
                "-p",
                '[{"op":"replace","path":"/spec/ports/0/port","value":31401}]',
            ],
            read: () =>
                get(
                    "-n",
                    "istio-system",
                    "get",
                    "istiogateways.istio.alibabacloud.com",
                    OWN_GATEWAY,
                ).spec.ports[0].port,
            expected: 31400,
        },
        {
            kind: "Deployment",
            resource: "tcp-echo-stable-deployment",
            edit: [
                "-n",
                NAMESPACE,
                "scale",
                "deployment",
                deploymentName("stable"),
                "--replicas=2",
            ],
            read: () =>
                get("-n", NAMESPACE, "get", "deployment", deploymentName("stable")).spec.replicas,
            expected: 1,
        },
        {
            // Not the port number: that is a list-map key under server-side apply, so an edit adds a port the stack
            // does not own, and the next apply fails on a duplicate port name (README, "Every object is force-owned").
            kind: "Service",
            resource: "tcp-echo-svc-service",
            edit: [
                "-n",
                NAMESPACE,
                "patch",
                "service",
                OBJECT_NAMES.service,
                "--type=merge",
                "-p",
                '{"spec":{"selector":{"app":"someone-elses"}}}',
            ],
            read: () => get("-n", NAMESPACE, "get", "service", OBJECT_NAMES.service).spec.selector,
            expected: { app: "tcp-echo" },
        },
    ];
    for (const edit of HAND_EDITS) {
        it(`a hand edit of the ${edit.kind} is drift: preview --refresh shows it, up --refresh restores it`, async () => {
            k(...edit.edit);
            assert.notDeepEqual(edit.read(), edit.expected, "the edit took");
            const preview = await stack.preview({ refresh: true, diff: true });
            assert.equal(
                preview.changeSummary.update,
                1,
                `${JSON.stringify(preview.changeSummary)}\n${preview.stdout}`,
            );
            assert.match(
                preview.stdout,
                new RegExp(`~.*${edit.kind}.*${edit.resource}|${edit.resource}`),
            );
            const up = await stack.up({ refresh: true });
            assert.equal(
                up.summary.resourceChanges?.update,
                1,
                JSON.stringify(up.summary.resourceChanges),
            );
            assert.deepEqual(edit.read(), edit.expected);
        });
    }

    it("an up killed with SIGKILL mid-update converges on the next run after `npm run recover`", async () => {
        await stack.setConfig("replicas", { value: "3" });
        await upKilledMidUpdate("itest-cluster", engine, dir);
        // Depending on the instant of the kill the update leaves its lock, a pending operation, or a
        // checkpoint cut short mid-write; plain `up` refuses to run in each case.
        await assert.rejects(stack.up(), /locked|failed to load checkpoint|pending/);
        // The CLI's own update lock records no boot id or pid namespace, so its holder is not provably gone: recover
        // refuses until told, then clears it.
        await assert.rejects(recover("itest-cluster", { ...engine, workDir: dir }), /--force/);
        const steps = await recover("itest-cluster", { ...engine, workDir: dir, force: true });
        assert.ok(steps.includes("refreshed the state from the target"), steps.join("; "));
        assert.deepEqual(
            killOrphanedPlugins("itest-cluster", dir),
            [],
            "recover left no orphaned plugin of the stack behind",
        );
        await stack.up({ refresh: true });
        assert.deepEqual(
            deployments().map((d: any) => d.available),
            [3, 3],
        );
        const again = await stack.preview();
        assert.deepEqual(Object.keys(again.changeSummary), ["same"]);
    });

    it("destroy removes every object it made from the cluster, leaves the foreign gateway as it was, and an empty stack", async () => {
        await stack.destroy();
        assert.deepEqual(
            get(
                "-n",
                NAMESPACE,
                "get",
                "deployments,services,virtualservices.networking.istio.io,destinationrules.networking.istio.io,gateways.networking.istio.io",
            ).items.map((i: any) => i.metadata.name),
            [],
        );
        assert.deepEqual(
            get("-n", "istio-system", "get", "istiogateways.istio.alibabacloud.com").items.map(
                (i: any) => i.metadata.name,
            ),
            ["ingressgateway"],
        );
        assert.equal(
            foreignGateway(),
            foreignBytes,
            "the foreign gateway is byte for byte as it was",
        );
        assert.deepEqual((await stack.exportStack()).deployment.resources ?? [], []);
    });

    it("routes through an existing gateway only once it exposes the port, and never changes or deletes it", async () => {
        await stack.setConfig("asm", { value: JSON.stringify({ useExistingGateway: true }) });
        await assert.rejects(
            upWithWeight(20),
            /asm-tcp-shift:gatewayPort: the existing IstioGateway istio-system\/ingressgateway exposes ports \[80,443\], not 31400/,
        );
        assert.equal(foreignGateway(), foreignBytes);
        // Its owner adds the port (the stack never does).
        k(
            "-n",
            "istio-system",
            "patch",
            "istiogateways.istio.alibabacloud.com",
            "ingressgateway",
            "--type=json",
            "-p",
            '[{"op":"add","path":"/spec/ports/-","value":{"name":"tcp","port":31400,"targetPort":31400,"protocol":"TCP"}}]',
        );
        foreignBytes = await settledForeignGateway();
        const { result } = await upWithWeight(20);
        // All 13 records: the refused run above stopped in its preview and wrote nothing, not even Pulumi's stack.
        assert.equal(
            result.summary.resourceChanges?.create,
            13,
            JSON.stringify(result.summary.resourceChanges),
        );
        assert.deepEqual(
            get("-n", NAMESPACE, "get", "gateways.networking.istio.io", OBJECT_NAMES.gateway).spec
                .selector,
            { istio: "ingressgateway" },
        );
        assert.equal(
            foreignGateway(),
            foreignBytes,
            "up left the existing gateway byte for byte as it was",
        );
        await stack.destroy();
        assert.equal(
            foreignGateway(),
            foreignBytes,
            "destroy left the existing gateway byte for byte as it was",
        );
    });

    it("the cluster's admin credentials: one kubeconfig (mode 600), kwokctl's keys in a folder only its owner enters, no merged kubeconfig", () => {
        const mode = (p: string) => fs.statSync(p).mode & 0o777;
        assert.equal(mode(TEST_KUBECONFIG), 0o600);
        assert.equal(mode(KWOK_WORKDIR), 0o700, KWOK_WORKDIR);
        assert.equal(fs.existsSync(path.join(KWOK_WORKDIR, "merged-kubeconfig")), false);
    });

    it("cluster:down stops every process of the cluster, and leaves no kubeconfig of it, nor edits the user's", () => {
        assert.notEqual(clusterProcesses(), "", "the cluster runs before down");
        // The user's own kubeconfig ($KUBECONFIG, kwokctl's default), holding a context of the name kwokctl gives
        // this cluster's: kwokctl's delete would take it out of there.
        const home = fs.mkdtempSync(path.join(os.tmpdir(), "asm-tcp-shift-home-"));
        const own = path.join(home, "config");
        const name = `kwok-${TEST_CLUSTER}`;
        const text = [
            "apiVersion: v1",
            "kind: Config",
            `clusters: [{name: ${name}, cluster: {server: "https://127.0.0.1:1"}}]`,
            `users: [{name: ${name}, user: {token: not-a-secret}}]`,
            `contexts: [{name: ${name}, context: {cluster: ${name}, user: ${name}}}]`,
            `current-context: ${name}`,
            "",
        ].join("\n");
        fs.writeFileSync(own, text, { mode: 0o600 });
        try {
            testCluster("down", { KUBECONFIG: own });
            assert.equal(fs.readFileSync(own, "utf8"), text, "down edited the user's kubeconfig");
        } finally {
            fs.rmSync(home, { recursive: true, force: true });
        }
        assert.equal(clusterProcesses(), "");
        assert.equal(fs.existsSync(TEST_KUBECONFIG), false);
        assert.equal(fs.existsSync(path.join(KWOK_WORKDIR, "clusters", TEST_CLUSTER)), false);
        assert.equal(fs.existsSync(path.join(KWOK_WORKDIR, "merged-kubeconfig")), false);
    });
});
