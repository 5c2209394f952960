import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as k8s from "@pulumi/kubernetes";
import { AsmIngressGateway, EchoDeployment, EchoService, TcpTrafficRouting, TYPE_TOKENS, SLB_ANNOTATIONS } from "../../components";
import { one, recordResources, settle, unwrap } from "../support/mocks";

describe("EchoDeployment", () => {
    it("names, labels and parameterises one version", async () => {
        const resources = await recordResources();
        const d = new EchoDeployment("echo-canary", { track: "canary", namespace: "shop", image: "istio/tcp-echo-server:1.2", port: 9100, replicas: 3 });
        assert.equal(await unwrap(d.deploymentName), "tcp-echo-v2");
        await settle();
        const dep = one(resources, TYPE_TOKENS.deployment);
        assert.equal(dep.name, "echo-canary-deployment", "children are named <component>-<part>");
        assert.equal(dep.inputs.metadata.namespace, "shop");
        assert.equal(dep.inputs.spec.replicas, 3);
        assert.deepEqual(d.labels, { app: "tcp-echo", version: "v2" });
        const c = dep.inputs.spec.template.spec.containers[0];
        assert.deepEqual(c.args, ["9100", "two"]);
        assert.equal(c.ports[0].containerPort, 9100);
    });
});

describe("EchoService", () => {
    it("exposes the chosen port under the name tcp", async () => {
        const resources = await recordResources();
        new EchoService("svc", { namespace: "shop", port: 9100 });
        await settle();
        const svc = one(resources, TYPE_TOKENS.service);
        assert.deepEqual(svc.inputs.spec.ports, [{ name: "tcp", port: 9100, targetPort: "tcp", protocol: "TCP" }]);
        assert.equal(svc.inputs.metadata.name, "tcp-echo");
    });
});

describe("TcpTrafficRouting", () => {
    it("refuses weights that do not sum to 100", async () => {
        await recordResources();
        assert.throws(
            () => new TcpTrafficRouting("r", { namespace: "default", serviceHost: "tcp-echo", servicePort: 9000, gatewayPort: 31400, hosts: ["*"], weights: { stable: 50, canary: 60 } }),
            /weights must sum to 100; got 50 \+ 60/,
        );
    });

    it("makes the VirtualService depend on the DestinationRule and the Gateway", async () => {
        const resources = await recordResources();
        const r = new TcpTrafficRouting("r", { namespace: "default", serviceHost: "tcp-echo", servicePort: 9000, gatewayPort: 31400, hosts: ["echo.example.com"], weights: { stable: 100, canary: 0 } });
        await settle();
        const vs = one(resources, TYPE_TOKENS.virtualService);
        assert.deepEqual(vs.inputs.spec.hosts, ["echo.example.com"]);
        assert.deepEqual(one(resources, TYPE_TOKENS.gateway).inputs.spec.servers[0].hosts, ["echo.example.com"]);
        assert.deepEqual(vs.inputs.spec.tcp[0].route.map((d: any) => d.weight), [100, 0]);
        assert.deepEqual(r.weights, { stable: 100, canary: 0 });
    });
});

describe("AsmIngressGateway", () => {
    it("refuses a reused CLB without acknowledgment", async () => {
        await recordResources();
        assert.throws(
            () => new AsmIngressGateway("ig", { clusterIds: ["c1"], port: 31400, replicas: 2, slb: { mode: "reuse", id: "lb-x", acknowledgeListenerOverride: false, otherListenerPorts: [] } }),
            /reusing CLB lb-x overrides its listeners on port 31400; acknowledgeListenerOverride must be true/,
        );
    });

    it("refuses one CLB across clusters", async () => {
        await recordResources();
        assert.throws(
            () => new AsmIngressGateway("ig", { clusterIds: ["c1", "c2"], port: 31400, replicas: 2, slb: { mode: "reuse", id: "lb-x", acknowledgeListenerOverride: true, otherListenerPorts: [] } }),
            /cannot be shared across clusters/,
        );
    });

    it("lets the cluster make the CLB in managed mode, for several clusters", async () => {
        const resources = await recordResources();
        const provider = new k8s.Provider("asm", { kubeconfig: "{}" });
        const ig = new AsmIngressGateway("ig", { clusterIds: ["c1", "c2"], port: 31400, replicas: 3, slb: { mode: "managed", spec: "slb.s2.small", addressType: "intranet" } }, { provider });
        assert.equal(await unwrap(ig.loadBalancerId), undefined);
        await settle();
        const cr = one(resources, TYPE_TOKENS.istioGateway);
        assert.deepEqual(cr.inputs.spec.clusterIds, ["c1", "c2"]);
        assert.equal(cr.inputs.spec.replicaCount, 3);
        assert.deepEqual(cr.inputs.spec.serviceAnnotations, { [SLB_ANNOTATIONS.addressType]: "intranet", [SLB_ANNOTATIONS.spec]: "slb.s2.small" });
        assert.match(cr.provider ?? "", /pulumi:providers:kubernetes::asm/);
    });
});
