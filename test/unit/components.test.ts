import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as alicloud from "@pulumi/alicloud";
import * as k8s from "@pulumi/kubernetes";
import {
    AsmIngressGateway,
    AsmIngressGatewayArgs,
    CLB_CHARGE_TYPE,
    CLB_TAGS,
    EchoDeployment,
    EchoService,
    GATEWAY_POD_LABEL,
    OWNER_ANNOTATION,
    PATCH_FORCE_ANNOTATION,
    SLB_ANNOTATIONS,
    TYPE_TOKENS,
    TcpTrafficRouting,
    TcpTrafficRoutingArgs,
    statusAddress,
} from "../../components";
import { one, recordResources, settle, unwrap } from "../support/mocks";

const OWNER = "organization/asm-tcp-shift/unit";
const OWNED = { [OWNER_ANNOTATION]: OWNER, [PATCH_FORCE_ANNOTATION]: "true" };

const routingArgs = (overrides: Partial<TcpTrafficRoutingArgs> = {}): TcpTrafficRoutingArgs => ({
    namespace: "default",
    serviceHost: "tcp-echo",
    servicePort: 9000,
    gatewayPort: 31400,
    hosts: ["*"],
    weights: { stable: 80, canary: 20 },
    gatewaySelector: { [GATEWAY_POD_LABEL]: "ingressgateway" },
    istioApiVersion: "v1",
    owner: OWNER,
    ...overrides,
});

const gatewayArgs = (overrides: Partial<AsmIngressGatewayArgs> = {}): AsmIngressGatewayArgs => ({
    name: "ingressgateway",
    clusterIds: ["c1"],
    port: 31400,
    replicas: 2,
    slb: { mode: "managed", addressType: "internet" },
    owner: OWNER,
    ...overrides,
});

describe("EchoDeployment", () => {
    it("names, labels and parameterises one version, stamped as this stack's", async () => {
        const resources = await recordResources();
        const d = new EchoDeployment("echo-canary", {
            track: "canary",
            namespace: "shop",
            image: "istio/tcp-echo-server:1.2",
            port: 9100,
            replicas: 3,
            owner: OWNER,
        });
        assert.equal(await unwrap(d.deploymentName), "tcp-echo-v2");
        await settle();
        const dep = one(resources, TYPE_TOKENS.deployment);
        assert.equal(dep.name, "echo-canary-deployment", "children are named <component>-<part>");
        assert.equal(dep.inputs.metadata.namespace, "shop");
        assert.deepEqual(dep.inputs.metadata.annotations, OWNED);
        assert.equal(
            dep.inputs.spec.template.metadata.annotations,
            undefined,
            "the stamp never restarts pods",
        );
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
        new EchoService("svc", { namespace: "shop", port: 9100, owner: OWNER });
        await settle();
        const svc = one(resources, TYPE_TOKENS.service);
        assert.deepEqual(svc.inputs.spec.ports, [
            { name: "tcp", port: 9100, targetPort: "tcp", protocol: "TCP" },
        ]);
        assert.equal(svc.inputs.metadata.name, "tcp-echo");
        assert.deepEqual(svc.inputs.metadata.annotations, OWNED);
    });
});

describe("TcpTrafficRouting", () => {
    it("refuses weights that do not sum to 100", async () => {
        await recordResources();
        assert.throws(
            () => new TcpTrafficRouting("r", routingArgs({ weights: { stable: 50, canary: 60 } })),
            /weights must sum to 100; got 50 \+ 60/,
        );
    });

    it("refuses an empty gateway selector, which would bind every gateway pod of the mesh", async () => {
        await recordResources();
        assert.throws(
            () => new TcpTrafficRouting("r", routingArgs({ gatewaySelector: {} })),
            /non-empty gateway pod selector/,
        );
    });

    it("makes the VirtualService depend on the DestinationRule and the Gateway", async () => {
        const resources = await recordResources();
        const r = new TcpTrafficRouting(
            "r",
            routingArgs({ hosts: ["echo.example.com"], weights: { stable: 100, canary: 0 } }),
        );
        await settle();
        const vs = one(resources, TYPE_TOKENS.virtualService);
        assert.deepEqual(vs.inputs.spec.hosts, ["echo.example.com"]);
        assert.deepEqual(one(resources, TYPE_TOKENS.gateway).inputs.spec.servers[0].hosts, [
            "echo.example.com",
        ]);
        assert.deepEqual(
            vs.inputs.spec.tcp[0].route.map((d: any) => d.weight),
            [100, 0],
        );
        assert.deepEqual(r.weights, { stable: 100, canary: 0 });
    });

    it("binds the Gateway to exactly the given gateway pods and force-owns every object", async () => {
        const resources = await recordResources();
        new TcpTrafficRouting(
            "r",
            routingArgs({ gatewaySelector: { [GATEWAY_POD_LABEL]: "tcp-echo-gw" } }),
        );
        await settle();
        assert.deepEqual(one(resources, TYPE_TOKENS.gateway).inputs.spec.selector, {
            [GATEWAY_POD_LABEL]: "tcp-echo-gw",
        });
        for (const token of [
            TYPE_TOKENS.gateway,
            TYPE_TOKENS.destinationRule,
            TYPE_TOKENS.virtualService,
        ]) {
            assert.deepEqual(one(resources, token).inputs.metadata.annotations, OWNED, token);
        }
    });

    it("writes the networking.istio.io version the mesh serves", async () => {
        const resources = await recordResources();
        new TcpTrafficRouting("r", routingArgs({ istioApiVersion: "v1beta1" }));
        await settle();
        for (const kind of ["Gateway", "DestinationRule", "VirtualService"]) {
            const r = one(resources, `kubernetes:networking.istio.io/v1beta1:${kind}`);
            assert.equal(r.inputs.apiVersion, "networking.istio.io/v1beta1");
        }
    });
});

describe("AsmIngressGateway", () => {
    it("refuses a reused CLB without acknowledgment", async () => {
        await recordResources();
        assert.throws(
            () =>
                new AsmIngressGateway(
                    "ig",
                    gatewayArgs({
                        slb: {
                            mode: "reuse",
                            id: "lb-x",
                            acknowledgeListenerOverride: false,
                            otherListenerPorts: [],
                        },
                    }),
                ),
            /reusing CLB lb-x overrides its listeners on port 31400; acknowledgeListenerOverride must be true/,
        );
    });

    it("refuses one CLB across clusters", async () => {
        await recordResources();
        assert.throws(
            () =>
                new AsmIngressGateway(
                    "ig",
                    gatewayArgs({
                        clusterIds: ["c1", "c2"],
                        slb: {
                            mode: "reuse",
                            id: "lb-x",
                            acknowledgeListenerOverride: true,
                            otherListenerPorts: [],
                        },
                    }),
                ),
            /cannot be shared across clusters/,
        );
    });

    it("lets the cluster make a pay-by-CLCU CLB in managed mode, for several clusters, with no spec", async () => {
        const resources = await recordResources();
        const provider = new k8s.Provider("asm", { kubeconfig: "{}" });
        const ig = new AsmIngressGateway(
            "ig",
            gatewayArgs({
                clusterIds: ["c1", "c2"],
                replicas: 3,
                slb: {
                    mode: "managed",
                    addressType: "intranet",
                    vswitchId: "vsw-bp1example12345678",
                },
            }),
            { provider },
        );
        assert.equal(await unwrap(ig.loadBalancerId), undefined);
        await settle();
        const cr = one(resources, TYPE_TOKENS.istioGateway);
        assert.deepEqual(cr.inputs.spec.clusterIds, ["c1", "c2"]);
        assert.deepEqual(cr.inputs.spec.serviceAnnotations, {
            [SLB_ANNOTATIONS.addressType]: "intranet",
            [SLB_ANNOTATIONS.chargeType]: CLB_CHARGE_TYPE,
            [SLB_ANNOTATIONS.vswitchId]: "vsw-bp1example12345678",
        });
        assert.equal(cr.inputs.spec.serviceAnnotations[SLB_ANNOTATIONS.spec], undefined);
        assert.match(cr.provider ?? "", /pulumi:providers:kubernetes::asm/);
    });

    it("fixes the replica count as ASM's example does: replicaCount = minReplicas = maxReplicas", async () => {
        const resources = await recordResources();
        new AsmIngressGateway("ig", gatewayArgs({ replicas: 3 }));
        await settle();
        const { spec } = one(resources, TYPE_TOKENS.istioGateway).inputs;
        assert.deepEqual([spec.replicaCount, spec.minReplicas, spec.maxReplicas], [3, 3, 3]);
    });

    it("labels its pods with a label unique to this gateway and selects on it, under any name", async () => {
        const resources = await recordResources();
        const ig = new AsmIngressGateway("ig", gatewayArgs({ name: "tcp-echo-ingressgateway" }));
        await settle();
        const cr = one(resources, TYPE_TOKENS.istioGateway);
        assert.equal(cr.inputs.metadata.name, "tcp-echo-ingressgateway");
        assert.deepEqual(cr.inputs.spec.podLabels, {
            [GATEWAY_POD_LABEL]: "tcp-echo-ingressgateway",
        });
        assert.deepEqual(ig.podSelector, cr.inputs.spec.podLabels);
        assert.deepEqual(
            { ...cr.inputs.metadata.annotations, [OWNER_ANNOTATION]: OWNER },
            { ...cr.inputs.metadata.annotations },
        );
        assert.equal(cr.inputs.metadata.annotations[PATCH_FORCE_ANNOTATION], "true");
    });

    it("creates a pay-by-CLCU CLB that carries the tag the cloud controller writes, so refresh shows no drift", async () => {
        const resources = await recordResources();
        const provider = new alicloud.Provider("alicloud", {});
        new AsmIngressGateway(
            "ig",
            gatewayArgs({
                slb: {
                    mode: "create",
                    addressType: "intranet",
                    vswitchId: "vsw-bp1example12345678",
                    provider,
                },
            }),
        );
        await settle();
        const clb = one(resources, TYPE_TOKENS.slb);
        assert.equal(clb.inputs.instanceChargeType, "PayByCLCU");
        assert.equal(clb.inputs.loadBalancerSpec, undefined);
        assert.equal(clb.inputs.vswitchId, "vsw-bp1example12345678");
        assert.equal(clb.inputs.tags[CLB_TAGS.reusedByUser], "true");
    });

    it("refuses an intranet CLB without a vSwitch", async () => {
        await recordResources();
        const provider = new alicloud.Provider("alicloud", {});
        assert.throws(
            () =>
                new AsmIngressGateway(
                    "ig",
                    gatewayArgs({ slb: { mode: "create", addressType: "intranet", provider } }),
                ),
            /vSwitch/,
        );
    });

    it("reads the gateway address from the CR status ASM writes", () => {
        assert.equal(statusAddress(undefined), undefined);
        assert.equal(statusAddress({ Status: "Running" }), undefined);
        assert.equal(statusAddress({ GatewayAddress: ["47.0.0.10"] }), "47.0.0.10");
        assert.equal(
            statusAddress({
                ClusterIdGatewayAddressMap: [{ clusterId: "c1", ipAddress: "10.1.2.3" }],
            }),
            "10.1.2.3",
        );
    });
});
