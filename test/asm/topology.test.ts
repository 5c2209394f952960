import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as fs from "fs";
import * as path from "path";
import { ECHO_PREFIXES } from "../../components/model";
import { ingressOf, waitForReceivedSplit } from "../../tools/cluster/mesh";
import { verify } from "../../tools/rollout/verify";
import {
    CLUSTER_DIR,
    CONTROL_USER,
    DATA_ADMIN,
    DATA_USER,
    applyWith,
    asmCluster,
    asmEnv,
    attempt,
    controlAdmin,
    credentials,
    dataPlaneClusterId,
    env,
    kc,
    kcJson,
    splitMismatch,
    until,
} from "../support/asm";

const NAMESPACE = "asm-topo";
const PORT = 31400;
const forbidden = /forbidden/i;

/**
 * The ASM-shaped topology with raw kubectl, no Pulumi: what each API server serves, what each of ASM's preset roles
 * may do, istiod reading the data plane as a remote cluster, and the whole path (Istio config and the IstioGateway on
 * the control plane through the user's istio-admin kubeconfig, workloads in the data plane through the ACK one)
 * splitting TCP 80/20 through the gateway's Envoy.
 */
describe("the asm topology: a mesh control plane, a data plane, istiod across them", () => {
    let cpAdmin: string;
    let dpId: string;
    const temp: string[] = [];
    const cred = (plane: "control" | "data", role: string, expired = false) => {
        const file = credentials(plane, role, expired);
        temp.push(path.dirname(file));
        return file;
    };

    before(() => {
        asmCluster("up");
        cpAdmin = controlAdmin();
        dpId = dataPlaneClusterId();
    });

    after(() => {
        for (const dir of temp) fs.rmSync(dir, { recursive: true, force: true });
        // Leave both clusters as the tier found them (the topology itself is taken down by scripts/test-all.sh).
        for (const name of ["ingressgateway", "elsewhere"])
            attempt(cpAdmin, [
                "-n",
                "istio-system",
                "delete",
                "istiogateways.istio.alibabacloud.com",
                name,
                "--ignore-not-found",
            ]);
        attempt(cpAdmin, ["delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false"]);
        attempt(DATA_ADMIN, [
            "delete",
            "namespace",
            NAMESPACE,
            "--ignore-not-found",
            "--wait=false",
        ]);
    });

    it("keeps the topology's files: the topology, an ACK-shaped cluster id, owner-only kubeconfigs", () => {
        assert.equal(fs.readFileSync(path.join(CLUSTER_DIR, "topology"), "utf8").trim(), "asm");
        assert.match(dpId, /^c[0-9a-f]{32}$/);
        for (const f of [DATA_ADMIN, CONTROL_USER, DATA_USER, cpAdmin]) {
            assert.equal(fs.statSync(f).mode & 0o777, 0o600, f);
        }
        // The user's kubeconfigs carry their certificate inline (storable as one Pulumi secret).
        for (const f of [CONTROL_USER, DATA_USER]) {
            const text = fs.readFileSync(f, "utf8");
            assert.match(text, /client-certificate-data:/);
            assert.doesNotMatch(text, /client-certificate:|client-key:|certificate-authority:/);
        }
        const e = asmEnv();
        assert.equal(e.TOPOLOGY, "asm");
        assert.equal(e.DATA_PLANE_CLUSTER_ID, dpId);
    });

    it("the control plane serves Istio's kinds and IstioGateway and holds no nodes; the data plane serves no Istio kinds", () => {
        const resources = kc(cpAdmin, "api-resources", "-o", "name");
        for (const r of [
            "gateways.networking.istio.io",
            "virtualservices.networking.istio.io",
            "destinationrules.networking.istio.io",
            "istiogateways.istio.alibabacloud.com",
        ])
            assert.ok(resources.split("\n").includes(r), `control plane lacks ${r}`);
        assert.deepEqual(kcJson(cpAdmin, "get", "nodes").items, []);
        const components = asmCluster("status");
        assert.match(components, /mesh control plane .*kube-apiserver \d+ MB/);
        assert.match(components, /data plane .*kube-apiserver \d+ MB/);
        // Two kubeconfigs swapped look like this: no Istio API where the ASM one should point.
        const dataResources = kc(DATA_USER, "api-resources", "-o", "name");
        assert.ok(!dataResources.includes("networking.istio.io"));
        assert.equal(kcJson(DATA_USER, "get", "nodes").items.length, 1);
    });

    it("istio-admin may write namespaces, Istio config and IstioGateways, and gets 403 for Services and Deployments", () => {
        const who = kcJson(CONTROL_USER, "auth", "whoami");
        assert.deepEqual(who.status.userInfo.groups.sort(), [
            "asm-tcp-shift:istio-admin",
            "system:authenticated",
        ]);
        applyWith(
            CONTROL_USER,
            `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${NAMESPACE}}\n`,
        );
        const service = attempt(
            CONTROL_USER,
            ["create", "-f", "-"],
            `apiVersion: v1\nkind: Service\nmetadata: {name: tcp-echo, namespace: ${NAMESPACE}}\nspec: {ports: [{name: tcp, port: 9000}]}\n`,
        );
        assert.ok(!service.ok && forbidden.test(service.out), service.out);
        const deployment = attempt(CONTROL_USER, [
            "create",
            "deployment",
            "tcp-echo-v1",
            "-n",
            NAMESPACE,
            "--image=docker.io/istio/tcp-echo-server:1.2",
        ]);
        assert.ok(!deployment.ok && forbidden.test(deployment.out), deployment.out);
        // The Gateway, DestinationRule, VirtualService and IstioGateway are written by this user in the traffic test.
    });

    it("istio-ops is refused IstioGateway writes but may write VirtualServices; istio-readonly may only read", () => {
        const ops = cred("control", "istio-ops");
        const ig = `apiVersion: istio.alibabacloud.com/v1beta1\nkind: IstioGateway\nmetadata: {name: by-ops, namespace: istio-system}\nspec: {gatewayType: ingress, clusterIds: [${dpId}], replicaCount: 1, ports: [{name: tcp, port: 31401, targetPort: 31401, protocol: TCP}]}\n`;
        const refused = attempt(ops, ["create", "-f", "-"], ig);
        assert.ok(!refused.ok && forbidden.test(refused.out), refused.out);
        assert.match(refused.out, /istiogateways/);
        assert.ok(
            attempt(ops, ["-n", "istio-system", "get", "istiogateways.istio.alibabacloud.com"]).ok,
        );
        const vs = `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: by-ops, namespace: istio-system}\nspec: {hosts: [by-ops.example.com], tcp: [{route: [{destination: {host: by-ops.example.com}}]}]}\n`;
        applyWith(ops, vs);
        kc(ops, "-n", "istio-system", "delete", "virtualservice", "by-ops");

        const readonly = cred("control", "istio-readonly");
        const write = attempt(readonly, ["create", "-f", "-"], vs);
        assert.ok(!write.ok && forbidden.test(write.out), write.out);
        assert.ok(attempt(readonly, ["-n", "istio-system", "get", "virtualservices"]).ok);
    });

    it("an expired client certificate is refused by either API server (401)", () => {
        for (const [plane, role] of [
            ["control", "istio-admin"],
            ["data", "cluster-admin"],
        ] as const) {
            const expired = cred(plane, role, true);
            const r = attempt(expired, ["get", "namespaces"]);
            assert.ok(!r.ok, `${plane}: an expired certificate was accepted`);
            assert.match(r.out, /Unauthorized|must be logged in/, r.out);
        }
    });

    it("istiod registers the data plane as a remote cluster by its id (debug/clusterz)", async () => {
        const e = asmEnv();
        const clusters = await until("istiod lists the data plane as synced", async () => {
            const res = await fetch(`http://127.0.0.1:${e.ISTIOD_MONITORING_PORT}/debug/clusterz`);
            const list = (await res.json()) as { id: string; syncStatus: string }[];
            return list.some((c) => c.id === dpId && c.syncStatus === "synced") && list;
        });
        const ids = clusters.map((c) => c.id).sort();
        assert.deepEqual(ids, [e.CONTROL_PLANE_CLUSTER_ID, dpId].sort());
        assert.notEqual(e.CONTROL_PLANE_CLUSTER_ID, dpId);
    });

    it("config on the control plane, workloads in the data plane: the gateway's Envoy splits 80/20", async () => {
        // ACK side, with the user's ACK kubeconfig: the namespace, tcp-echo v1/v2 and their Service.
        const deployment = (v: "v1" | "v2") =>
            `apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: tcp-echo-${v}, namespace: ${NAMESPACE}}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: tcp-echo, version: ${v}}}\n  template:\n    metadata: {labels: {app: tcp-echo, version: ${v}}}\n    spec: {containers: [{name: tcp-echo, image: docker.io/istio/tcp-echo-server:1.2, args: ["9000", "${ECHO_PREFIXES[v]}"], ports: [{containerPort: 9000}]}]}\n`;
        applyWith(
            DATA_USER,
            [
                `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${NAMESPACE}}\n`,
                `apiVersion: v1\nkind: Service\nmetadata: {name: tcp-echo, namespace: ${NAMESPACE}, labels: {app: tcp-echo}}\nspec: {selector: {app: tcp-echo}, ports: [{name: tcp, port: 9000}]}\n`,
                deployment("v1"),
                deployment("v2"),
            ].join("---\n"),
        );
        // ASM side, with the user's istio-admin kubeconfig: the IstioGateway and the Istio config.
        applyWith(
            CONTROL_USER,
            [
                `apiVersion: istio.alibabacloud.com/v1beta1\nkind: IstioGateway\nmetadata: {name: ingressgateway, namespace: istio-system}\nspec: {gatewayType: ingress, clusterIds: [${dpId}], replicaCount: 1, serviceType: LoadBalancer, ports: [{name: tcp, port: ${PORT}, targetPort: ${PORT}, protocol: TCP}]}\n`,
                `apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: tcp-echo-gateway, namespace: ${NAMESPACE}}\nspec: {selector: {istio: ingressgateway}, servers: [{port: {number: ${PORT}, name: tcp, protocol: TCP}, hosts: ["*"]}]}\n`,
                `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: tcp-echo-destination, namespace: ${NAMESPACE}}\nspec: {host: tcp-echo, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}\n`,
                `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: tcp-echo, namespace: ${NAMESPACE}}\nspec: {hosts: ["*"], gateways: [tcp-echo-gateway], tcp: [{match: [{port: ${PORT}}], route: [{destination: {host: tcp-echo, port: {number: 9000}, subset: v1}, weight: 80}, {destination: {host: tcp-echo, port: {number: 9000}, subset: v2}, weight: 20}]}]}\n`,
            ].join("---\n"),
        );

        // The IstioGateway's status is written on the control plane, naming the data plane's cluster.
        const status = await until(
            "the IstioGateway RUNNING on the control plane",
            () => {
                const s = kcJson(
                    CONTROL_USER,
                    "-n",
                    "istio-system",
                    "get",
                    "istiogateways.istio.alibabacloud.com",
                    "ingressgateway",
                ).status;
                return s?.Status === "RUNNING" && s;
            },
            60_000,
        );
        const ingress = env().ingressIP;
        assert.deepEqual(status.GatewayAddress, [ingress]);
        assert.deepEqual(status.ClusterIdGatewayAddressMap, [
            { ipAddress: ingress, clusterId: dpId },
        ]);
        // istio-ingressgateway exists only in the data plane (the seed's kubectl runs with the ACK kubeconfig).
        assert.deepEqual(ingressOf(DATA_USER), { host: ingress, port: PORT });
        for (const kind of ["deployment", "service"]) {
            assert.ok(
                kc(
                    DATA_USER,
                    "-n",
                    "istio-system",
                    "get",
                    kind,
                    "istio-ingressgateway",
                    "-o",
                    "name",
                ),
            );
            const there = attempt(cpAdmin, [
                "-n",
                "istio-system",
                "get",
                kind,
                "istio-ingressgateway",
            ]);
            assert.ok(
                !there.ok && /NotFound/.test(there.out),
                `${kind} on the control plane: ${there.out}`,
            );
        }
        // Nothing of the workloads on the control plane either.
        assert.deepEqual(kcJson(cpAdmin, "get", "pods", "-A").items, []);

        // The gateway pod's Envoy holds the split istiod built from the control plane's config and the data plane's
        // endpoints, and real connections through the CLB stand-in follow it.
        await waitForReceivedSplit(env(), PORT, { v1: 80, v2: 20 }, 90_000, "istio-ingressgateway");
        const { host, port } = ingressOf(DATA_USER);
        const report = await verify({
            host,
            port,
            connections: 400,
            concurrency: 20,
            timeoutMs: 3000,
            expectedWeight: 20,
            prefixes: ECHO_PREFIXES,
            maxErrorRate: 0.01,
        });
        const mismatch = splitMismatch(
            { v1: report.counts.v1, v2: report.counts.v2 },
            report.connections,
            20,
        );
        assert.equal(mismatch, undefined, JSON.stringify(report.counts));
    });

    it("an IstioGateway whose clusterIds do not name the data plane makes no gateway there, and says so", async () => {
        applyWith(
            CONTROL_USER,
            `apiVersion: istio.alibabacloud.com/v1beta1\nkind: IstioGateway\nmetadata: {name: elsewhere, namespace: istio-system}\nspec: {gatewayType: ingress, clusterIds: [c00000000000000000000000000000000], replicaCount: 1, ports: [{name: tcp, port: 31402, targetPort: 31402, protocol: TCP}]}\n`,
        );
        const status = await until("the IstioGateway FAILED", () => {
            const s = kcJson(
                CONTROL_USER,
                "-n",
                "istio-system",
                "get",
                "istiogateways.istio.alibabacloud.com",
                "elsewhere",
            ).status;
            return s?.Status === "FAILED" && s;
        });
        assert.match(
            status.ErrorMessage,
            new RegExp(`names no cluster of this mesh \\(its data plane: ${dpId}\\)`),
        );
        const there = attempt(DATA_ADMIN, [
            "-n",
            "istio-system",
            "get",
            "deployment",
            "istio-elsewhere",
        ]);
        assert.ok(!there.ok && /NotFound/.test(there.out));
    });

    it("deleting the IstioGateway on the control plane removes its gateway from the data plane", async () => {
        kc(
            CONTROL_USER,
            "-n",
            "istio-system",
            "delete",
            "istiogateways.istio.alibabacloud.com",
            "ingressgateway",
        );
        await until(
            "istio-ingressgateway gone from the data plane",
            () =>
                !attempt(DATA_ADMIN, [
                    "-n",
                    "istio-system",
                    "get",
                    "deployment",
                    "istio-ingressgateway",
                ]).ok &&
                !attempt(DATA_ADMIN, [
                    "-n",
                    "istio-system",
                    "get",
                    "service",
                    "istio-ingressgateway",
                ]).ok,
        );
    });
});
