import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PROGRAM_ANNOTATIONS, SLB_ANNOTATIONS, TYPE_TOKENS } from "../../components/model";
import * as policies from "../../policy/policies";
import { StackResource, clone, find, happyStack, servedState, violations } from "./harness";

describe("policy pack on the happy-path stack", () => {
    it("finds no violation of any policy", async () => {
        const stack = await happyStack("prod", { replicas: 2 });
        // The stack serves what it declares: no weight moves.
        servedState("prod", stack);
        for (const policy of policies.allPolicies) {
            assert.deepEqual(await violations(policy as any, stack), [], policy.name);
        }
    });

    it("declares the documented enforcement levels", () => {
        const levels = Object.fromEntries(
            policies.allPolicies.map((p) => [p.name, p.enforcementLevel]),
        );
        for (const name of [
            "tcp-route-weights",
            "virtualservice-subsets-defined",
            "virtualservice-port-exposed",
            "images-pinned",
            "slb-reuse-acknowledged",
            "slb-frontend-ports-unique",
            "slb-single-cluster",
            "slb-not-cluster-created",
            "gateway-selects-own-gateway",
            "gateway-hosts-intersect",
            "subset-labels-select-pods",
            "clb-pay-by-clcu",
            "clb-intranet-vswitch",
        ]) {
            assert.equal(levels[name], "mandatory", name);
        }
        for (const name of [
            "istio-port-names",
            "destination-port-set",
            "resources-set",
            "production-replicas",
            "max-weight-step",
        ]) {
            assert.equal(levels[name], "advisory", name);
        }
    });
});

/** Copies the happy stack and changes one thing. */
async function mutated(
    token: keyof typeof TYPE_TOKENS,
    change: (r: StackResource) => void,
    stackName = "dev",
): Promise<StackResource[]> {
    const stack = clone(await happyStack(stackName));
    change(find(stack, token));
    return stack;
}

describe("tcp-route-weights", () => {
    it("rejects weights that do not sum to 100", async () => {
        const stack = await mutated(
            "virtualService",
            (vs) => (vs.props.spec.tcp[0].route[1].weight = 30),
        );
        assert.deepEqual(await violations(policies.tcpRouteWeights, stack), [
            "VirtualService tcp-echo: tcp[0] weights sum to 110, not 100 ([80,30]).",
        ]);
    });
    it("rejects a fractional or negative weight", async () => {
        const stack = await mutated("virtualService", (vs) => {
            vs.props.spec.tcp[0].route[0].weight = 87.5;
            vs.props.spec.tcp[0].route[1].weight = 12.5;
        });
        assert.match(
            (await violations(policies.tcpRouteWeights, stack))[0],
            /integers from 0 to 100; got \[87.5,12.5\]/,
        );
    });
    it("rejects a route with no destinations", async () => {
        const stack = await mutated("virtualService", (vs) => (vs.props.spec.tcp[0].route = []));
        assert.match(
            (await violations(policies.tcpRouteWeights, stack))[0],
            /has no route destinations/,
        );
    });
});

describe("virtualservice-subsets-defined", () => {
    it("rejects a route to a subset no DestinationRule defines", async () => {
        const stack = await mutated(
            "virtualService",
            (vs) => (vs.props.spec.tcp[0].route[1].destination.subset = "v3"),
        );
        assert.match(
            (await violations(policies.virtualServiceSubsetsDefined, stack))[0],
            /routes to subset "v3" of tcp-echo, but no DestinationRule for that host defines it \(defined: \["v1","v2"\]\)/,
        );
    });
    it("rejects subsets defined for another host", async () => {
        const stack = await mutated("destinationRule", (dr) => (dr.props.spec.host = "other-echo"));
        assert.equal((await violations(policies.virtualServiceSubsetsDefined, stack)).length, 2);
    });
});

describe("virtualservice-port-exposed", () => {
    it("rejects a match port the Gateway does not serve", async () => {
        const stack = await mutated(
            "gateway",
            (gw) => (gw.props.spec.servers[0].port.number = 31401),
        );
        assert.deepEqual(await violations(policies.virtualServicePortExposed, stack), [
            "VirtualService tcp-echo matches port 31400, but Gateway tcp-echo-gateway serves only [31401].",
        ]);
    });
    it("rejects a match port the ASM ingress gateway does not expose", async () => {
        const stack = await mutated("istioGateway", (ig) => (ig.props.spec.ports[0].port = 31500));
        assert.deepEqual(await violations(policies.virtualServicePortExposed, stack), [
            "VirtualService tcp-echo matches port 31400, but no IstioGateway exposes it (exposed: [31500]).",
        ]);
    });
    it("rejects a Gateway the stack does not declare", async () => {
        const stack = await mutated(
            "virtualService",
            (vs) => (vs.props.spec.gateways = ["istio-system/other-gateway"]),
        );
        assert.match(
            (await violations(policies.virtualServicePortExposed, stack))[0],
            /binds to Gateway "istio-system\/other-gateway", which this stack does not declare/,
        );
    });
});

describe("images-pinned", () => {
    it("rejects latest", async () => {
        const stack = clone(await happyStack());
        stack.find(
            (r) => r.props.metadata?.name === "tcp-echo-v2",
        )!.props.spec.template.spec.containers[0].image = "istio/tcp-echo-server:latest";
        assert.deepEqual(await violations(policies.imagesPinned, stack), [
            'Deployment tcp-echo-v2, container tcp-echo: image "istio/tcp-echo-server:latest" uses the moving tag "latest"; pin a version tag or a sha256 digest.',
        ]);
    });
    it("rejects an untagged image", async () => {
        const stack = clone(await happyStack());
        stack.find(
            (r) => r.props.metadata?.name === "tcp-echo-v1",
        )!.props.spec.template.spec.containers[0].image = "istio/tcp-echo-server";
        assert.match(
            (await violations(policies.imagesPinned, stack))[0],
            /tcp-echo-v1.*no tag or digest/,
        );
    });
});

describe("slb-reuse-acknowledged", () => {
    it("rejects a reused CLB without the acknowledgment", async () => {
        const stack = await mutated(
            "istioGateway",
            (ig) =>
                delete ig.props.metadata.annotations[
                    PROGRAM_ANNOTATIONS.listenerOverrideAcknowledged
                ],
        );
        assert.deepEqual(await violations(policies.slbReuseAcknowledged, stack), [
            "IstioGateway ingressgateway reuses CLB lb-2ze8x7example1234 without acknowledging that its listeners on ports [31400] are overridden; set slb.acknowledgeListenerOverride: true.",
        ]);
    });
    it("treats a hand-written id annotation as reuse", async () => {
        const stack = clone(await happyStack("dev", { slb: { mode: "managed" } }));
        const svc = find(stack, "service");
        svc.props.spec.type = "LoadBalancer";
        svc.props.metadata.annotations = { [SLB_ANNOTATIONS.id]: "lb-handwritten0001" };
        assert.match(
            (await violations(policies.slbReuseAcknowledged, stack))[0],
            /Service tcp-echo reuses CLB lb-handwritten0001/,
        );
    });
});

describe("slb-frontend-ports-unique", () => {
    it("rejects two LoadBalancers on one CLB port", async () => {
        const stack = clone(await happyStack());
        const svc = find(stack, "service");
        svc.props.spec.type = "LoadBalancer";
        svc.props.spec.ports[0].port = 31400;
        svc.props.metadata.annotations = { [SLB_ANNOTATIONS.id]: "lb-2ze8x7example1234" };
        assert.deepEqual(await violations(policies.slbFrontendPortsUnique, stack), [
            "IstioGateway ingressgateway and Service tcp-echo both listen on port 31400 of CLB lb-2ze8x7example1234.",
        ]);
    });
    it("rejects a port another Service already uses on the reused CLB", async () => {
        const stack = await mutated(
            "istioGateway",
            (ig) =>
                (ig.props.metadata.annotations[PROGRAM_ANNOTATIONS.otherListenerPorts] =
                    "80,31400"),
        );
        assert.deepEqual(await violations(policies.slbFrontendPortsUnique, stack), [
            "IstioGateway ingressgateway listens on 31400 of CLB lb-2ze8x7example1234, which another Service already uses.",
        ]);
    });
});

describe("slb-single-cluster", () => {
    it("rejects one CLB across two clusters", async () => {
        const stack = await mutated("istioGateway", (ig) =>
            ig.props.spec.clusterIds.push("cfedcba9876543210"),
        );
        assert.match(
            (await violations(policies.slbSingleCluster, stack))[0],
            /binds CLB lb-2ze8x7example1234 in 2 clusters.*cannot be shared across clusters/,
        );
    });
});

describe("slb-not-cluster-created", () => {
    it("rejects a CLB the program found to be cluster-created", async () => {
        const stack = await mutated(
            "istioGateway",
            (ig) =>
                (ig.props.metadata.annotations[PROGRAM_ANNOTATIONS.slbCreatedBy] = "kubernetes"),
        );
        assert.match(
            (await violations(policies.slbNotClusterCreated, stack))[0],
            /reuses CLB lb-2ze8x7example1234, which a cluster created/,
        );
    });
    it("rejects a CLB listed as cluster-created in the policy config", async () => {
        const stack = await happyStack();
        assert.equal(
            (
                await violations(policies.slbNotClusterCreated, stack, {
                    clusterCreatedLoadBalancerIds: ["lb-2ze8x7example1234"],
                })
            ).length,
            1,
        );
    });
});

const CREATED_CLB = {
    slb: { mode: "create", addressType: "intranet", vswitchId: "vsw-bp1example12345678" },
};

describe("clb-pay-by-clcu", () => {
    it("passes the CLB the program creates", async () => {
        const stack = await happyStack("dev", CREATED_CLB);
        assert.deepEqual(await violations(policies.clbPayByClcu, stack), []);
    });
    it("rejects a created CLB billed by specification", async () => {
        const stack = clone(await happyStack("dev", CREATED_CLB));
        const clb = find(stack, "slb");
        clb.props.instanceChargeType = "PayBySpec";
        clb.props.loadBalancerSpec = "slb.s1.small";
        assert.deepEqual(await violations(policies.clbPayByClcu, stack), [
            'CLB tcp-echo-ingressgateway: instanceChargeType is "PayBySpec"; pay-by-specification CLBs are no longer sold, set "PayByCLCU".',
            'CLB tcp-echo-ingressgateway: loadBalancerSpec "slb.s1.small" is ignored for pay-by-CLCU CLBs; remove it.',
        ]);
    });
    it("rejects a gateway that asks the cloud controller for a spec", async () => {
        const stack = await mutated(
            "istioGateway",
            (ig) => (ig.props.spec.serviceAnnotations[SLB_ANNOTATIONS.spec] = "slb.s1.small"),
        );
        assert.match(
            (await violations(policies.clbPayByClcu, stack))[0],
            /IstioGateway ingressgateway: annotation .*-spec=slb\.s1\.small asks for a pay-by-specification CLB/,
        );
    });
});

describe("clb-intranet-vswitch", () => {
    it("rejects an intranet CLB without a vSwitch", async () => {
        const stack = clone(await happyStack("dev", CREATED_CLB));
        assert.deepEqual(await violations(policies.clbIntranetVswitch, stack), []);
        delete find(stack, "slb").props.vswitchId;
        assert.deepEqual(await violations(policies.clbIntranetVswitch, stack), [
            "CLB tcp-echo-ingressgateway: an intranet CLB needs vswitchId, a vSwitch in the cluster's VPC (slb.vswitchId).",
        ]);
    });
});

describe("gateway-selects-own-gateway", () => {
    it("rejects a Gateway selector that matches no declared gateway's pods", async () => {
        const stack = await mutated(
            "gateway",
            (gw) => (gw.props.spec.selector = { "asm-tcp-shift.io/gateway": "other" }),
        );
        assert.match(
            (await violations(policies.gatewaySelectsOwnGateway, stack))[0],
            /Gateway tcp-echo-gateway: spec.selector \{"asm-tcp-shift.io\/gateway":"other"\} matches the pods of no IstioGateway/,
        );
    });
    it("rejects the shared label istio: ingressgateway, which other teams' gateways carry too", async () => {
        const stack = await mutated(
            "gateway",
            (gw) => (gw.props.spec.selector = { istio: "ingressgateway" }),
        );
        assert.match(
            (await violations(policies.gatewaySelectsOwnGateway, stack))[0],
            /is not the gateway's own label asm-tcp-shift.io\/gateway/,
        );
    });
    it("rejects an empty selector", async () => {
        const stack = await mutated("gateway", (gw) => (gw.props.spec.selector = {}));
        assert.match(
            (await violations(policies.gatewaySelectsOwnGateway, stack))[0],
            /spec.selector is empty/,
        );
    });
});

describe("gateway-hosts-intersect", () => {
    it("rejects VirtualService hosts that meet none of the Gateway's", async () => {
        const stack = clone(await happyStack());
        find(stack, "gateway").props.spec.servers[0].hosts = ["a.example.com"];
        find(stack, "virtualService").props.spec.hosts = ["b.example.com"];
        assert.match(
            (await violations(policies.gatewayHostsIntersect, stack))[0],
            /VirtualService tcp-echo: spec.hosts \["b.example.com"\] meet none of the hosts of Gateway tcp-echo-gateway \(\["a.example.com"\]\)/,
        );
    });
    it("matches as Istio does: *, wildcards, and the Gateway's namespace/ prefix", () => {
        assert.ok(policies.hostsIntersect("*", "a.example.com"));
        assert.ok(policies.hostsIntersect("*.example.com", "a.example.com"));
        assert.ok(policies.hostsIntersect("*.example.com", "*.a.example.com"));
        assert.ok(!policies.hostsIntersect("*.example.com", "example.org"));
        assert.ok(!policies.hostsIntersect("a.example.com", "b.example.com"));
    });
    it("accepts a Gateway host written as namespace/host", async () => {
        const stack = clone(await happyStack());
        find(stack, "gateway").props.spec.servers[0].hosts = ["./echo.example.com"];
        find(stack, "virtualService").props.spec.hosts = ["echo.example.com"];
        assert.deepEqual(await violations(policies.gatewayHostsIntersect, stack), []);
    });
});

describe("subset-labels-select-pods", () => {
    it("rejects a subset whose labels no Deployment's pods carry", async () => {
        const stack = await mutated(
            "destinationRule",
            (dr) => (dr.props.spec.subsets[1].labels = { version: "v3" }),
        );
        assert.match(
            (await violations(policies.subsetLabelsSelectPods, stack))[0],
            /DestinationRule tcp-echo-destination: subset "v2" selects labels \{"version":"v3"\}, which no pod of a Deployment behind tcp-echo carries/,
        );
    });
    it("rejects a subset whose pods the Service does not select", async () => {
        const stack = await mutated(
            "service",
            (svc) => (svc.props.spec.selector = { app: "other" }),
        );
        assert.equal((await violations(policies.subsetLabelsSelectPods, stack)).length, 2);
    });
});

describe("Istio kinds at every served version", () => {
    it("judges a VirtualService written as networking.istio.io/v1beta1 like a v1 one", async () => {
        const stack = clone(await happyStack("dev", { istioApiVersion: "v1beta1" }));
        const vs = stack.find(
            (r) => r.type === "kubernetes:networking.istio.io/v1beta1:VirtualService",
        )!;
        assert.ok(vs, "the program wrote v1beta1");
        vs.props.spec.tcp[0].route[1].weight = 30;
        assert.equal((await violations(policies.tcpRouteWeights, stack)).length, 1);
        for (const policy of [
            policies.virtualServiceSubsetsDefined,
            policies.virtualServicePortExposed,
            policies.gatewaySelectsOwnGateway,
        ]) {
            assert.deepEqual(
                await violations(
                    policy as any,
                    await happyStack("dev", { istioApiVersion: "v1beta1" }),
                ),
                [],
                policy.name,
            );
        }
    });
});

describe("advisory policies", () => {
    it("istio-port-names flags an unprefixed port name", async () => {
        const stack = await mutated("service", (svc) => (svc.props.spec.ports[0].name = "echo"));
        assert.deepEqual(await violations(policies.istioPortNames, stack), [
            'Service tcp-echo: port 9000 is named "echo"; name it "tcp" or "tcp-<suffix>".',
        ]);
    });
    it("destination-port-set flags a destination without port when the Service has two", async () => {
        const stack = clone(await happyStack());
        find(stack, "service").props.spec.ports.push({
            name: "tcp-other",
            port: 9001,
            targetPort: 9001,
            protocol: "TCP",
        });
        find(stack, "virtualService").props.spec.tcp[0].route[0].destination.port = undefined;
        assert.deepEqual(await violations(policies.destinationPortSet, stack), [
            "VirtualService tcp-echo: destination tcp-echo has 2 ports; set destination.port.number.",
        ]);
    });
    it("resources-set flags a container without limits", async () => {
        const stack = clone(await happyStack());
        delete stack.find((r) => r.props.metadata?.name === "tcp-echo-v1")!.props.spec.template.spec
            .containers[0].resources.limits;
        assert.deepEqual(await violations(policies.resourcesSet, stack), [
            "Deployment tcp-echo-v1, container tcp-echo: no limits.cpu, limits.memory.",
        ]);
    });
    it("production-replicas flags one replica in prod, not in dev", async () => {
        assert.equal(
            (await violations(policies.productionReplicas, await happyStack("prod"))).length,
            2,
        );
        assert.equal(
            (await violations(policies.productionReplicas, await happyStack("dev"))).length,
            0,
        );
        assert.match(
            (await violations(policies.productionReplicas, await happyStack("prod")))[0],
            /runs 1 replica\(s\) in production stack prod; at least 2/,
        );
    });
});

/**
 * The step is judged against the weight the stack's own last checkpoint says it serves, found where the engine's
 * environment names the backend: no tool passes a previous weight, so a plain `pulumi up --policy-pack policy`
 * (or the deploy workflow's) is judged like a shift step.
 */
describe("max-weight-step", () => {
    const jump = () => happyStack("dev", { v2Weight: 80 });

    it("flags a jump from the weight the stack serves, with no previous weight configured", async () => {
        servedState("dev", await happyStack("dev", { v2Weight: 20 }));
        assert.deepEqual(
            await violations(policies.maxWeightStep, await jump(), { maxWeightStep: 25 }),
            [
                "VirtualService tcp-echo: v2 weight moves 20 -> 80 (60 points); the largest allowed step is 25. Move in steps, e.g. `npm run shift -- --stack dev --steps 45,70,80`.",
            ],
        );
        assert.deepEqual(
            await violations(policies.maxWeightStep, await jump(), { maxWeightStep: 60 }),
            [],
        );
    });

    it("judges by the state, not by a previous weight a caller passes", async () => {
        servedState("dev", await happyStack("dev", { v2Weight: 0 }));
        assert.match(
            (
                await violations(policies.maxWeightStep, await jump(), {
                    maxWeightStep: 25,
                    previousV2Weight: 80,
                })
            ).join("\n"),
            /weight moves 0 -> 80 \(80 points\)/,
        );
    });

    it("flags a rollback as large as a jump: the way back is shift's, which lifts the limit for it", async () => {
        servedState("dev", await happyStack("dev", { v2Weight: 100 }));
        assert.match(
            (
                await violations(policies.maxWeightStep, await happyStack("dev"), {
                    maxWeightStep: 50,
                })
            )[0],
            /moves 100 -> 20 \(80 points\).*--steps 50,20`/,
        );
    });

    it("counts a first deploy from 0: a stack that serves nothing sends nothing to v2", async () => {
        servedState("dev", []);
        assert.match(
            (await violations(policies.maxWeightStep, await jump()))[0],
            /moves 0 -> 80 \(80 points\); the largest allowed step is 50/,
        );
        assert.deepEqual(await violations(policies.maxWeightStep, await happyStack("dev")), []);
    });

    it("finds the served route at another Istio API version (the URN changes with it)", async () => {
        servedState("dev", await happyStack("dev", { v2Weight: 100, istioApiVersion: "v1beta1" }));
        assert.match(
            (
                await violations(policies.maxWeightStep, await happyStack("dev"), {
                    maxWeightStep: 50,
                })
            )[0],
            /moves 100 -> 20/,
        );
    });

    it("ignores a VirtualService the last update marked for deletion", async () => {
        const old = find(await happyStack("dev", { v2Weight: 80 }), "virtualService");
        servedState("dev", [{ ...old, delete: true }]);
        assert.match((await violations(policies.maxWeightStep, await jump()))[0], /moves 0 -> 80/);
    });

    it("fails closed when the served weight cannot be read: where the limit is mandatory, the update stops", async () => {
        servedState("dev", undefined);
        assert.match(
            (await violations(policies.maxWeightStep, await jump()))[0],
            /VirtualService tcp-echo: the v2 weight the stack serves now is unknown, so the step to 80 cannot be judged: stack dev has no checkpoint at .*dev\.json; is this the backend the update runs against\?/,
        );
    });
});
