import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
    GatewayPodDump,
    meshDirFor,
    nonZero,
    readConnectionStats,
    readEnvoyDump,
    receivedRoutes,
    subsetOf,
} from "../../tools/cluster/mesh";
import { splitBySubset } from "../../components/weights";
import { connectionsOnPort, formatConnections, openConnections } from "../../tools/rollout/routes";

const pod = (
    name: string,
    tcpProxy: GatewayPodDump["listeners"][0]["tcpProxy"],
): GatewayPodDump => ({
    pod: `istio-system/${name}`,
    ip: "10.0.0.1",
    node: "router~10.0.0.1~x",
    admin: "http://127.0.0.1:40001",
    ready: true,
    versions: {},
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
});

// The shape of Envoy 1.40's admin /config_dump?include_eds (snake_case proto field names), trimmed.
const V1 = "outbound|9000|v1|tcp-echo.default.svc.cluster.local";
const V2 = "outbound|9000|v2|tcp-echo.default.svc.cluster.local";
const envoyDump = {
    configs: [
        { "@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump", bootstrap: {} },
        {
            "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
            version_info: "2026-12-03T20:00:00Z/7",
            static_clusters: [{ cluster: { name: "xds-grpc" } }],
            dynamic_active_clusters: [V2, V1, "BlackHoleCluster"].map((name) => ({
                version_info: "2026-12-03T20:00:00Z/7",
                cluster: {
                    "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                    name,
                    type: name === "BlackHoleCluster" ? "STATIC" : "EDS",
                    ...(name === "BlackHoleCluster"
                        ? {}
                        : { eds_cluster_config: { ads: {}, service_name: name } }),
                },
            })),
        },
        {
            "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
            version_info: "2026-12-03T20:00:00Z/7",
            dynamic_listeners: [
                {
                    name: "0.0.0.0_31400",
                    active_state: {
                        version_info: "2026-12-03T20:00:00Z/7",
                        listener: {
                            "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
                            name: "0.0.0.0_31400",
                            address: {
                                socket_address: { address: "127.0.0.1", port_value: 41400 },
                            },
                            filter_chains: [
                                {
                                    filters: [
                                        {
                                            name: "envoy.filters.network.tcp_proxy",
                                            typed_config: {
                                                "@type":
                                                    "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                                                stat_prefix: "tcp-echo.default",
                                                weighted_clusters: {
                                                    clusters: [
                                                        { name: V1, weight: 80 },
                                                        { name: V2, weight: 20 },
                                                    ],
                                                },
                                            },
                                        },
                                    ],
                                },
                            ],
                        },
                    },
                },
            ],
        },
        {
            "@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
            dynamic_endpoint_configs: [
                {
                    version_info: "2026-12-03T20:00:00Z/7",
                    endpoint_config: {
                        cluster_name: V1,
                        endpoints: [
                            {
                                lb_endpoints: [
                                    {
                                        endpoint: {
                                            address: {
                                                socket_address: {
                                                    address: "127.0.0.1",
                                                    port_value: 40005,
                                                },
                                            },
                                        },
                                        health_status: "HEALTHY",
                                    },
                                ],
                            },
                        ],
                    },
                },
                { endpoint_config: { cluster_name: V2 } },
            ],
        },
    ],
};

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
    it("reads an Envoy config dump: the listener by istiod's port, its tcp_proxy, and endpoints read back to pod addresses", () => {
        const dump = readEnvoyDump(
            { pod: "istio-system/gw", ip: "10.0.0.1", node: "n", admin: "a", ready: true },
            envoyDump,
            new Map([["127.0.0.1:40005", "10.0.0.5:9000"]]),
        );
        assert.deepEqual(
            dump.listeners.map((l) => [l.name, l.port, l.loopback]),
            [["0.0.0.0_31400", 31400, "127.0.0.1:41400"]],
        );
        assert.equal(dump.versions.Listener, "2026-12-03T20:00:00Z/7");
        assert.deepEqual(
            dump.clusters.map((c) => c.name),
            ["BlackHoleCluster", V1, V2],
        );
        const routes = receivedRoutes([dump], 31400);
        assert.deepEqual(routes[0].split, { v1: 80, v2: 20 });
        assert.deepEqual(routes[0].endpoints, { v1: ["10.0.0.5:9000"], v2: [] });
        assert.equal(
            dump.clusters.find((c) => c.name === V1)!.endpoints[0].loopback,
            "127.0.0.1:40005",
        );
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

// Captured from a gateway pod's Envoy 1.40 on the local mesh (/stats?format=json&filter=CONNECTION_STATS_FILTER),
// idle: Istio's stat names end the cluster name with ";".
const captured = {
    stats: [
        {
            name: "cluster.outbound|31400||istio-ingressgateway.istio-system.svc.cluster.local;.upstream_cx_active",
            value: 0,
        },
        {
            name: "cluster.outbound|31400||istio-ingressgateway.istio-system.svc.cluster.local;.upstream_cx_total",
            value: 0,
        },
        {
            name: "cluster.outbound|443||kubernetes.default.svc.cluster.local;.upstream_cx_active",
            value: 0,
        },
        {
            name: "cluster.outbound|443||kubernetes.default.svc.cluster.local;.upstream_cx_total",
            value: 0,
        },
        {
            name: "cluster.outbound|9000|v1|tcp-echo.default.svc.cluster.local;.upstream_cx_active",
            value: 0,
        },
        {
            name: "cluster.outbound|9000|v1|tcp-echo.default.svc.cluster.local;.upstream_cx_total",
            value: 0,
        },
        {
            name: "cluster.outbound|9000|v2|tcp-echo.default.svc.cluster.local;.upstream_cx_active",
            value: 0,
        },
        {
            name: "cluster.outbound|9000|v2|tcp-echo.default.svc.cluster.local;.upstream_cx_total",
            value: 0,
        },
        {
            name: "cluster.outbound|9000||tcp-echo.default.svc.cluster.local;.upstream_cx_active",
            value: 0,
        },
        {
            name: "cluster.outbound|9000||tcp-echo.default.svc.cluster.local;.upstream_cx_total",
            value: 0,
        },
        {
            name: "listener_manager.total_filter_chains_draining",
            value: 0,
        },
    ],
};

const stat = (cluster: string, name: string) => `cluster.${cluster};.${name}`;
// The same with connections: two open to v1, and a chain draining after a weight change.
const edited: Record<string, number> = {
    [stat(V1, "upstream_cx_active")]: 2,
    [stat(V1, "upstream_cx_total")]: 7,
    [stat(V2, "upstream_cx_total")]: 3,
    "listener_manager.total_filter_chains_draining": 1,
};
const statsSample = {
    stats: captured.stats.map((s) => (s.name in edited ? { ...s, value: edited[s.name] } : s)),
};

describe("an Envoy's /stats read as connections per subset", () => {
    const info = { pod: "istio-system/gw-0", admin: "http://127.0.0.1:40001" };

    it("reads upstream_cx_active and upstream_cx_total per outbound cluster, and the drain gauge", () => {
        const c = readConnectionStats(info, statsSample);
        assert.equal(c.reachable, true);
        assert.equal(c.filterChainsDraining, 1);
        assert.deepEqual(
            c.clusters.map((x) => [x.subset, x.port, x.host, x.active, x.total]),
            [
                ["", 31400, "istio-ingressgateway.istio-system.svc.cluster.local", 0, 0],
                ["", 443, "kubernetes.default.svc.cluster.local", 0, 0],
                ["", 9000, "tcp-echo.default.svc.cluster.local", 0, 0],
                ["v1", 9000, "tcp-echo.default.svc.cluster.local", 2, 7],
                ["v2", 9000, "tcp-echo.default.svc.cluster.local", 0, 3],
            ],
        );
        assert.equal(c.clusters[3].cluster, V1);
        assert.equal(readConnectionStats(info, captured).filterChainsDraining, 0);
    });

    it("an empty or odd body is no connections, not an error", () => {
        assert.deepEqual(readConnectionStats(info, {}).clusters, []);
        assert.equal(readConnectionStats(info, { stats: [{ name: "x" }] }).filterChainsDraining, 0);
    });

    it("routes counts a port's connections per subset, including a subset the route no longer sends to", () => {
        const received = receivedRoutes([pod("gw-0", { statPrefix: V1, cluster: V1 })]);
        const conns = connectionsOnPort([readConnectionStats(info, statsSample)], received, 31400);
        assert.deepEqual(conns[0].subsets, {
            "": { active: 0, total: 0 },
            v1: { active: 2, total: 7 },
            v2: { active: 0, total: 3 },
        });
        assert.equal(openConnections(conns), 2);
        assert.deepEqual(formatConnections(conns), [
            "  gateway istio-system/gw-0 connections: (no subset) 0 open (0 since start), v1 2 open (7 since start), v2 0 open (3 since start); filter chains draining: 1",
        ]);
        assert.deepEqual(
            connectionsOnPort([readConnectionStats(info, statsSample)], received, 1)[0].subsets,
            {},
        );
    });
});
