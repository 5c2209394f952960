import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
    GatewayPodDump,
    meshDirFor,
    nonZero,
    receivedRoutes,
    subsetOf,
} from "../../tools/cluster/mesh";
import { splitBySubset } from "../../components/weights";

const pod = (
    name: string,
    tcpProxy: GatewayPodDump["listeners"][0]["tcpProxy"],
): GatewayPodDump => ({
    pod: `istio-system/${name}`,
    ip: "10.0.0.1",
    node: "router~10.0.0.1~x",
    connected: true,
    connects: 1,
    versions: {},
    updated: "",
    listeners: [{ name: "0.0.0.0_31400", port: 31400, loopback: "127.0.0.1:40000", tcpProxy }],
    clusters: [
        {
            name: "outbound|9000|v1|tcp-echo.default.svc.cluster.local",
            type: "EDS",
            endpoints: [
                { address: "10.0.0.5:9000", health: "HEALTHY" },
                { address: "10.0.0.6:9000", health: "UNHEALTHY" },
            ],
        },
        { name: "outbound|9000|v2|tcp-echo.default.svc.cluster.local", type: "EDS", endpoints: [] },
    ],
    connections: {},
});

describe("reading the gateway's config dump", () => {
    it("names a subset by Istio's cluster name", () => {
        assert.equal(subsetOf("outbound|9000|v2|tcp-echo.default.svc.cluster.local"), "v2");
        assert.equal(subsetOf("BlackHoleCluster"), "BlackHoleCluster");
    });
    it("reads weighted clusters, a single cluster, and the healthy endpoints of each subset", () => {
        const weighted = receivedRoutes([
            pod("a", {
                statPrefix: "tcp-echo.default",
                weightedClusters: [
                    { name: "outbound|9000|v1|tcp-echo.default.svc.cluster.local", weight: 80 },
                    { name: "outbound|9000|v2|tcp-echo.default.svc.cluster.local", weight: 20 },
                ],
            }),
        ]);
        assert.deepEqual(weighted[0].split, { v1: 80, v2: 20 });
        assert.deepEqual(weighted[0].endpoints, { v1: ["10.0.0.5:9000"], v2: [] });
        const single = receivedRoutes(
            [
                pod("b", {
                    statPrefix: "x",
                    cluster: "outbound|9000|v1|tcp-echo.default.svc.cluster.local",
                }),
            ],
            31400,
        );
        assert.deepEqual(single[0].split, { v1: 100 });
        assert.deepEqual(receivedRoutes([pod("c", null)], 31401), []);
    });
    it("compares splits without their zero weights, as istiod drops them", () => {
        assert.deepEqual(nonZero(splitBySubset(0)), { v1: 100 });
        assert.deepEqual(nonZero(splitBySubset(20)), { v1: 80, v2: 20 });
    });
    it("finds the mesh folder of a cluster's kubeconfig", () => {
        assert.equal(meshDirFor("/p/.local/cluster/kubeconfig"), "/p/.local/mesh");
        assert.equal(
            meshDirFor("/p/.local/cluster-asm-tcp-shift-mesh/kubeconfig"),
            "/p/.local/mesh-asm-tcp-shift-mesh",
        );
    });
});
