import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { parse, stringify } from "yaml";
import { ECHO_PREFIXES, OBJECT_NAMES, deploymentName } from "../../components/model";
import {
    EngineOptions,
    PROJECT_ROOT,
    gatedUp,
    openStack,
    scratchProject,
    setSecretConfig,
} from "../../tools/engine/engine";
import { currentVirtualService, routesOf } from "../../tools/rollout/routes";
import { shift } from "../../tools/rollout/shift";
import { promote } from "../../tools/rollout/promote";
import { runPreview, toMarkdown } from "../../tools/rollout/preview";
import { verify } from "../../tools/rollout/verify";
import { killOrphanedPlugins, recover } from "../../tools/state/recover";
import { handEditSubsetVersion, handEditWeights } from "../support/cluster";
import { seedReplies, upKilledMidUpdate } from "../support/seed";
import { silentServer } from "../support/silentServer";
import {
    CONTROL_USER,
    DATA_ADMIN,
    DATA_USER,
    applyWith,
    asmCluster,
    controlAdmin,
    credentials,
    dataPlaneClusterId,
    env,
    kc,
    kcJson,
    until,
} from "../support/asm";
import { waitForReceivedSplit } from "../../tools/cluster/mesh";
import { splitBySubset } from "../../components/weights";

/** kubectl as each plane's administrator: to plant foreign objects, make hand edits and look at what is there. */
const plane = (kubeconfig: () => string) => ({
    k: (...args: string[]) => kc(kubeconfig(), ...args),
    get: (...args: string[]) => kcJson(kubeconfig(), ...args),
    apply: (yaml: string) => applyWith(kubeconfig(), yaml),
});
const controlPlane = plane(controlAdmin);
const dataPlane = plane(() => DATA_ADMIN);

/** The text of a fresh kubeconfig for a new user holding `role` on a plane (its file is removed). */
function credentialsText(which: "control" | "data", role: string, expired = false): string {
    const file = credentials(which, role, expired);
    try {
        return fs.readFileSync(file, "utf8");
    } finally {
        fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
}

const NAMESPACE = "tcp-echo";
const STAGING_NAMESPACE = "tcp-echo-staging";
const STAGING_GATEWAY = "staging-ingressgateway";
const STAGING_PORT = 31401;

/** Objects someone else made on each plane before the stacks existed; the stacks must leave them byte for byte. */
const FOREIGN_ON_CONTROL_PLANE = (clusterId: string) => `apiVersion: istio.alibabacloud.com/v1beta1
kind: IstioGateway
metadata: {name: someone-elses-gateway, namespace: istio-system}
spec:
  gatewayType: ingress
  clusterIds: [${clusterId}]
  replicaCount: 1
  serviceType: LoadBalancer
  ports:
  - {name: http-0, port: 18080, targetPort: 18080, protocol: TCP}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: someone-elses-routes, namespace: ${NAMESPACE}}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
`;
const FOREIGN_ON_DATA_PLANE = `apiVersion: v1
kind: ConfigMap
metadata: {name: someone-elses-config, namespace: ${NAMESPACE}}
data: {owner: another-team}
`;

/** The kubeconfig with its server replaced (nothing else changes). */
function withServer(kubeconfig: string, server: string): string {
    const doc = parse(kubeconfig);
    doc.clusters[0].cluster.server = server;
    return stringify(doc);
}

/**
 * The `dev` stack (and `staging` beside it) as real `asm` stacks on the ASM-shaped topology: the Istio resources and
 * the IstioGateway on the mesh control plane through the ASM kubeconfig, the workloads on the data plane through the
 * ACK kubeconfig, both stored as secrets. Everything through the real engine, its two Kubernetes providers and the
 * policy pack.
 */
describe("the dev stack as a real asm stack on the two-cluster topology", () => {
    let dir: string;
    let engine: EngineOptions;
    let dev: Stack;
    let staging: Stack;
    let clusterId: string;
    let asmKubeconfig: string;
    let ackKubeconfig: string;
    let foreignControl: string[];
    let foreignData: string;

    const vsWeights = (namespace = NAMESPACE) =>
        routesOf(
            controlPlane.get(
                "-n",
                namespace,
                "get",
                "virtualservices.networking.istio.io",
                OBJECT_NAMES.virtualService,
            ),
        )[0].destinations.map((d) => `${d.subset}=${d.weight}`);
    /** The foreign objects on the control plane exactly as the API server stores them (resourceVersion included). */
    const foreignOnControlPlane = () => [
        controlPlane.k(
            "get",
            "-o",
            "json",
            "-n",
            "istio-system",
            "istiogateways.istio.alibabacloud.com/someone-elses-gateway",
        ),
        controlPlane.k(
            "get",
            "-o",
            "json",
            "-n",
            NAMESPACE,
            "virtualservices.networking.istio.io/someone-elses-routes",
        ),
    ];
    const foreignOnDataPlane = () =>
        dataPlane.k("get", "-o", "json", "-n", NAMESPACE, "configmap/someone-elses-config");
    /** The names of the stack's kinds in a namespace of each plane. */
    const ours = (namespace: string) => ({
        data: dataPlane
            .get("-n", namespace, "get", "deployments,services")
            .items.map((i: any) => `${i.kind}/${i.metadata.name}`),
        control: controlPlane
            .get(
                "-n",
                namespace,
                "get",
                "gateways.networking.istio.io,destinationrules.networking.istio.io,virtualservices.networking.istio.io",
            )
            .items.filter((i: any) => i.metadata.name !== "someone-elses-routes")
            .map((i: any) => `${i.kind}/${i.metadata.name}`),
    });
    const recorded = async (stack: Stack) =>
        ((await stack.exportStack()).deployment.resources ?? []).map((r: any) => r.type);

    async function upAt(stack: Stack, weight: number) {
        await stack.setConfig("v2Weight", { value: String(weight) });
        return gatedUp(stack);
    }

    /** A stack file from the repository's own, with what differs here: the data plane's id, and for staging its place. */
    function stackFileFrom(name: string, changes: Record<string, unknown>): void {
        const doc = parse(fs.readFileSync(path.join(PROJECT_ROOT, `Pulumi.${name}.yaml`), "utf8"));
        Object.assign(doc.config, changes);
        fs.writeFileSync(path.join(dir, `Pulumi.${name}.yaml`), stringify(doc));
    }

    async function setKubeconfigs(stack: Stack, asm: string, ack: string) {
        await setSecretConfig(stack, "controlPlaneKubeconfig", asm);
        await setSecretConfig(stack, "dataPlaneKubeconfig", ack);
    }

    before(async () => {
        asmCluster("up");
        clusterId = dataPlaneClusterId();
        asmKubeconfig = fs.readFileSync(CONTROL_USER, "utf8");
        ackKubeconfig = fs.readFileSync(DATA_USER, "utf8");
        // The namespaces exist on both sides before the stacks, as ASM's global namespaces and the ACK cluster's do.
        for (const ns of [NAMESPACE, STAGING_NAMESPACE]) {
            const yaml = `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${ns}}\n`;
            controlPlane.apply(yaml);
            dataPlane.apply(yaml);
        }
        controlPlane.apply(FOREIGN_ON_CONTROL_PLANE(clusterId));
        dataPlane.apply(FOREIGN_ON_DATA_PLANE);
        // ASM (the controller stand-in) writes the foreign gateway's status: that write is not the stacks'.
        foreignControl = await until(
            "the foreign gateway's status settled",
            async () => {
                const first = foreignOnControlPlane();
                if (!JSON.parse(first[0]).status?.Status) return undefined;
                await new Promise((r) => setTimeout(r, 1000));
                const again = foreignOnControlPlane();
                return first.every((o, i) => o === again[i]) && again;
            },
            60_000,
        );
        foreignData = foreignOnDataPlane();

        dir = scratchProject(fs.mkdtempSync(path.join(os.tmpdir(), "asm-tcp-shift-asm-")));
        engine = {
            backendUrl: `file://${path.join(dir, ".state")}`,
            env: {
                PULUMI_CONFIG_PASSPHRASE_DEV: "asm-dev-test",
                PULUMI_CONFIG_PASSPHRASE_STAGING: "asm-staging-test",
            },
        };
        stackFileFrom("dev", {
            "asm-tcp-shift:asm": { clusterIds: [clusterId], gatewayReplicas: 2 },
        });
        stackFileFrom("staging", {
            "asm-tcp-shift:namespace": STAGING_NAMESPACE,
            "asm-tcp-shift:gatewayPort": STAGING_PORT,
            "asm-tcp-shift:asm": {
                clusterIds: [clusterId],
                gatewayReplicas: 1,
                gatewayName: STAGING_GATEWAY,
            },
        });
        dev = await openStack("dev", { ...engine, workDir: dir });
        staging = await openStack("staging", { ...engine, workDir: dir });
    });

    after(async () => {
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
        // The topology as the tier's other files find it: what this file planted goes (the topology itself is taken
        // down by scripts/test-all.sh after the tier, as the mesh tier's cluster is).
        const remove = (p: typeof controlPlane, ...args: string[]) =>
            p.k("delete", "--ignore-not-found", "--wait=false", ...args);
        remove(
            controlPlane,
            "-n",
            "istio-system",
            "istiogateways.istio.alibabacloud.com",
            "someone-elses-gateway",
        );
        for (const ns of [NAMESPACE, STAGING_NAMESPACE])
            for (const p of [controlPlane, dataPlane]) remove(p, "namespace", ns);
    });

    it("refuses what real ASM and ACK credentials refuse, naming the key, before anything is written", async () => {
        const silent = await silentServer();
        const cases: { what: string; asm: string; ack: string; refusal: RegExp }[] = [
            {
                what: "an ASM client certificate that has expired",
                asm: credentialsText("control", "istio-admin", true),
                ack: ackKubeconfig,
                refusal:
                    /asm-tcp-shift:controlPlaneKubeconfig: the client certificate in the kubeconfig's users\[0\]\.user\.client-certificate-data expired at/,
            },
            {
                what: "an identity bound only to ASM's istio-ops role",
                asm: credentialsText("control", "istio-ops"),
                ack: ackKubeconfig,
                refusal:
                    /asm-tcp-shift:controlPlaneKubeconfig: the identity of controlPlaneKubeconfig may not create, patch, delete istiogateways\.istio\.alibabacloud\.com in namespace istio-system .*istio-admin/,
            },
            {
                what: "a control-plane endpoint that does not answer",
                asm: withServer(asmKubeconfig, silent.url),
                ack: ackKubeconfig,
                refusal:
                    /asm-tcp-shift:controlPlaneKubeconfig: cannot reach the API server https:\/\/127\.0\.0\.1:\d+: no answer within 5 s/,
            },
            {
                what: "the two kubeconfigs swapped",
                asm: ackKubeconfig,
                ack: asmKubeconfig,
                refusal:
                    /asm-tcp-shift:controlPlaneKubeconfig: .* not an ASM instance's API server.* look swapped/,
            },
        ];
        try {
            for (const c of cases) {
                await setKubeconfigs(dev, c.asm, c.ack);
                const started = Date.now();
                await assert.rejects(upAt(dev, 0), (err: Error) => {
                    assert.match(err.message, c.refusal, c.what);
                    assert.match(err.message, /nothing was changed/, c.what);
                    // No kubeconfig text in the refusal: not the key, not the certificate.
                    for (const secret of [c.asm, c.ack])
                        assert.ok(
                            !err.message.includes(parse(secret).users[0].user["client-key-data"]),
                            c.what,
                        );
                    return true;
                });
                console.log(
                    `# refused ${c.what} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
                );
            }
        } finally {
            silent.close();
        }
        assert.deepEqual(await recorded(dev), [], "nothing in the state, not even the stack");
        assert.deepEqual(ours(NAMESPACE), { data: [], control: [] });
        assert.deepEqual(
            controlPlane
                .get("-n", "istio-system", "get", "istiogateways.istio.alibabacloud.com")
                .items.map((i: any) => i.metadata.name),
            ["someone-elses-gateway"],
        );
        assert.deepEqual(foreignOnControlPlane(), foreignControl);
        assert.equal(foreignOnDataPlane(), foreignData);
    });

    it("up at 0 puts each object on its plane: workloads on ACK, the mesh's resources and the IstioGateway on ASM", async () => {
        await setKubeconfigs(dev, asmKubeconfig, ackKubeconfig);
        const { result } = await upAt(dev, 0);
        assert.ok((result.summary.resourceChanges?.create ?? 0) > 0);
        assert.deepEqual(ours(NAMESPACE), {
            data: ["Deployment/tcp-echo-v1", "Deployment/tcp-echo-v2", "Service/tcp-echo"],
            control: [
                `Gateway/${OBJECT_NAMES.gateway}`,
                `DestinationRule/${OBJECT_NAMES.destinationRule}`,
                `VirtualService/${OBJECT_NAMES.virtualService}`,
            ],
        });
        assert.deepEqual(vsWeights(), ["v1=100", "v2=0"]);
        // ASM's controller (the stand-in) made the gateway in the ACK cluster, and only there.
        await until("istio-ingressgateway in the data plane", () =>
            dataPlane
                .get("-n", "istio-system", "get", "services")
                .items.some((s: any) => s.metadata.name === "istio-ingressgateway"),
        );
        assert.equal(
            controlPlane
                .get("-n", "istio-system", "get", "services")
                .items.filter((s: any) => s.metadata.name === "istio-ingressgateway").length,
            0,
        );
        // The kubeconfigs are in the checkpoint only as ciphertext (read as the backend stores it: the Automation API's
        // export shows secrets decrypted).
        const checkpoint = fs.readFileSync(
            path.join(dir, ".state", ".pulumi", "stacks", "asm-tcp-shift", "dev.json"),
            "utf8",
        );
        const providers = JSON.parse(checkpoint).checkpoint.latest.resources.filter(
            (r: any) => r.type === "pulumi:providers:kubernetes",
        );
        assert.deepEqual(
            providers
                .map((r: any) => [r.urn.split("::").pop(), "ciphertext" in r.inputs.kubeconfig])
                .sort(),
            [
                ["ack", true],
                ["asm", true],
            ],
        );
        for (const kubeconfig of [asmKubeconfig, ackKubeconfig]) {
            const user = parse(kubeconfig).users[0].user;
            for (const field of ["client-key-data", "client-certificate-data"])
                assert.ok(!checkpoint.includes(user[field]), field);
        }
    });

    /** The seed's commands, verbatim, with the ACK kubeconfig: where the gateway's Service lives. */
    function seedRepliesWithAck(): string[] {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "asm-tcp-shift-ack-"));
        const kubeconfig = path.join(dir, "kubeconfig");
        fs.writeFileSync(kubeconfig, ackKubeconfig, { mode: 0o600 });
        try {
            return seedReplies(kubeconfig);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    }

    it("exports the address ASM reports once refreshed, and the seed's commands reach v1 only at 0", async () => {
        const { outputs } = await dev.up({ refresh: true });
        assert.match(outputs.ingressAddress?.value ?? "", /^127\./);
        const replies = await until(
            "the gateway serves port 31400",
            () => {
                try {
                    const lines = seedRepliesWithAck();
                    return lines.length === 10 && lines;
                } catch {
                    return undefined;
                }
            },
            120_000,
        );
        for (const l of replies) assert.match(l, /^one /, replies.join("\n"));
    });

    it("up at 20 changes only the VirtualService; verify measures 80/20 through the gateway", async () => {
        const { result } = await upAt(dev, 20);
        assert.equal(result.summary.resourceChanges?.update, 1);
        assert.deepEqual(vsWeights(), ["v1=80", "v2=20"]);
        const { outputs } = await dev.up({ refresh: true });
        const host = outputs.ingressAddress.value as string;
        // Once every gateway pod received the split from istiod, one measurement decides.
        await waitForReceivedSplit(env(), 31400, splitBySubset(20), 30_000, "istio-ingressgateway");
        const report = await verify({
            host,
            port: 31400,
            connections: 1000,
            concurrency: 20,
            timeoutMs: 3000,
            expectedWeight: 20,
            prefixes: ECHO_PREFIXES,
            maxErrorRate: 0.01,
        });
        assert.equal(report.verdict, "consistent", JSON.stringify(report.counts));
        assert.equal(report.counts.v1 + report.counts.v2, 1000);
    });

    it("shift's drift guard reads the ASM instance: a hand edit there refuses the shift; routes reads it too", async () => {
        controlPlane.k(...handEditWeights(NAMESPACE, 50, 50));
        const live = routesOf(await currentVirtualService("dev", dir, { stack: dev }));
        assert.deepEqual(
            live[0].destinations.map((d) => d.weight),
            [50, 50],
        );
        const shiftTo40 = () =>
            shift({
                stack: "dev",
                steps: [40],
                gate: { kind: "none" },
                pause: false,
                force: false,
                settleSeconds: 0,
                engine,
                workDir: dir,
            });
        const refused = await shiftTo40();
        assert.equal(refused.outcome, "refused");
        assert.deepEqual(vsWeights(), ["v1=50", "v2=50"], "the refused shift changed nothing");
        await dev.up({ refresh: true });
        assert.deepEqual(vsWeights(), ["v1=80", "v2=20"]);
        const done = await shiftTo40();
        assert.equal(done.outcome, "completed", JSON.stringify(done));
        assert.deepEqual(vsWeights(), ["v1=60", "v2=40"]);
    });

    it("refresh finds drift on each plane, and up --refresh restores it", async () => {
        const edits = [
            {
                plane: dataPlane,
                edit: [
                    "-n",
                    NAMESPACE,
                    "scale",
                    "deployment",
                    deploymentName("stable"),
                    "--replicas=2",
                ],
                read: () =>
                    dataPlane.get("-n", NAMESPACE, "get", "deployment", deploymentName("stable"))
                        .spec.replicas,
                expected: 1,
            },
            {
                plane: controlPlane,
                edit: handEditSubsetVersion(NAMESPACE),
                read: () =>
                    controlPlane.get(
                        "-n",
                        NAMESPACE,
                        "get",
                        "destinationrules.networking.istio.io",
                        OBJECT_NAMES.destinationRule,
                    ).spec.subsets[1].labels,
                expected: { version: "v2" },
            },
        ];
        for (const e of edits) {
            e.plane.k(...e.edit);
            assert.notDeepEqual(e.read(), e.expected);
            const preview = await dev.preview({ refresh: true, diff: true });
            assert.equal(preview.changeSummary.update, 1, preview.stdout);
            await dev.up({ refresh: true });
            assert.deepEqual(e.read(), e.expected);
        }
    });

    it("an up killed with SIGKILL mid-update converges after `npm run recover`", async () => {
        await dev.setConfig("replicas", { value: "2" });
        await upKilledMidUpdate("dev", engine, dir);
        await assert.rejects(dev.up(), /locked|failed to load checkpoint|pending/);
        const steps = await recover("dev", { ...engine, workDir: dir, force: true });
        assert.ok(steps.includes("refreshed the state from the target"), steps.join("; "));
        assert.deepEqual(killOrphanedPlugins("dev", dir), []);
        await dev.up({ refresh: true });
        assert.deepEqual(
            dataPlane
                .get("-n", NAMESPACE, "get", "deployments")
                .items.map((d: any) => d.status.availableReplicas),
            [2, 2],
        );
        assert.deepEqual(Object.keys((await dev.preview()).changeSummary), ["same"]);
    });

    it("promote dev -> staging goes through the same path; the PR preview of an asm stack says what changes", async () => {
        await setKubeconfigs(staging, asmKubeconfig, ackKubeconfig);
        await upAt(staging, 0);
        assert.deepEqual(vsWeights(STAGING_NAMESPACE), ["v1=100", "v2=0"]);
        const result = await promote({
            from: "dev",
            to: "staging",
            yes: true,
            engine: { ...engine, workDir: dir },
        });
        assert.equal(result.outcome, "applied", result.error);
        assert.deepEqual(vsWeights(STAGING_NAMESPACE), ["v1=60", "v2=40"]);
        assert.deepEqual(vsWeights(), ["v1=60", "v2=40"], "dev is as it was");

        await dev.setConfig("v2Weight", { value: "50" });
        const summary = await runPreview("dev", { ...engine, workDir: dir });
        assert.equal(summary.ok, true, summary.output);
        assert.equal(summary.changes.update, 1, JSON.stringify(summary.changes));
        const comment = toMarkdown(summary);
        assert.match(comment, /VirtualService/);
        for (const kubeconfig of [asmKubeconfig, ackKubeconfig])
            assert.ok(!comment.includes(parse(kubeconfig).users[0].user["client-key-data"]));
        await dev.setConfig("v2Weight", { value: "40" });
    });

    it("destroy leaves both clusters as they were: the stacks' objects gone, the foreign ones byte for byte", async () => {
        await staging.destroy();
        await dev.destroy();
        for (const ns of [NAMESPACE, STAGING_NAMESPACE])
            assert.deepEqual(ours(ns), { data: [], control: [] }, ns);
        assert.deepEqual(
            controlPlane
                .get("-n", "istio-system", "get", "istiogateways.istio.alibabacloud.com")
                .items.map((i: any) => i.metadata.name),
            ["someone-elses-gateway"],
        );
        // ASM's controller removes the gateways it made for the deleted IstioGateways.
        await until("the stacks' gateways gone from the data plane", () =>
            dataPlane
                .get("-n", "istio-system", "get", "services")
                .items.every(
                    (s: any) =>
                        !["istio-ingressgateway", `istio-${STAGING_GATEWAY}`].includes(
                            s.metadata.name,
                        ),
                ),
        );
        assert.deepEqual(foreignOnControlPlane(), foreignControl);
        assert.equal(foreignOnDataPlane(), foreignData);
        assert.deepEqual(await recorded(dev), []);
        assert.deepEqual(await recorded(staging), []);
    });
});
