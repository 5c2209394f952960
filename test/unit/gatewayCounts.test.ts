import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PodConnections, readConnectionStats } from "../../tools/cluster/mesh";
import {
    CounterReading,
    counterDelta,
    formatGatewaySide,
    readingOf,
} from "../../tools/rollout/gatewayCounts";

const HOST = "tcp-echo.shop.svc.cluster.local";
const SERVICE = { host: HOST, port: 9000 };

/** One Envoy's /stats body as Istio names the stats (alt_stat_name: the cluster name and a ";"). */
function pod(name: string, admin: string, totals: Record<string, number>): PodConnections {
    return readConnectionStats(
        { pod: `istio-system/${name}`, admin },
        {
            stats: [
                ...Object.entries(totals).map(([cluster, value]) => ({
                    name: `cluster.${cluster};.upstream_cx_total`,
                    value,
                })),
                { name: "listener_manager.total_filter_chains_draining", value: 0 },
            ],
        },
    );
}

const at = (v1a: number, v2a: number, v1b: number, v2b: number, other = 0) => [
    pod("gw-a", "http://127.0.0.1:1001", {
        [`outbound|9000|v1|${HOST}`]: v1a,
        [`outbound|9000|v2|${HOST}`]: v2a,
        // Another service, and the same service's port without a subset: not this route's subsets.
        [`outbound|9000|v2|other.shop.svc.cluster.local`]: other,
        [`outbound|9000||${HOST}`]: other,
    }),
    pod("gw-b", "http://127.0.0.1:1002", {
        [`outbound|9000|v1|${HOST}`]: v1b,
        [`outbound|9000|v2|${HOST}`]: v2b,
    }),
];

describe("the gateway's own count of a verify run (upstream_cx_total deltas)", () => {
    it("reads each pod's subset totals of the service and nothing else", () => {
        const r = readingOf(at(10, 2, 7, 1, 99), SERVICE);
        assert.deepEqual(r, {
            pods: {
                "istio-system/gw-a http://127.0.0.1:1001": { v1: 10, v2: 2 },
                "istio-system/gw-b http://127.0.0.1:1002": { v1: 7, v2: 1 },
            },
            silent: [],
        });
    });

    it("sums the deltas over the pods, whatever other services' counters did", () => {
        const before = readingOf(at(10, 2, 7, 1, 0), SERVICE);
        const after = readingOf(at(410, 102, 407, 101, 5000), SERVICE);
        assert.deepEqual(counterDelta(before, after), { v1: 800, v2: 200 });
    });

    it("counts a subset that appears only after the run (its first connection) from zero", () => {
        const before: CounterReading = { pods: { "p a": { v1: 5 } }, silent: [] };
        const after: CounterReading = { pods: { "p a": { v1: 9, v2: 3 } }, silent: [] };
        assert.deepEqual(counterDelta(before, after), { v1: 4, v2: 3 });
    });

    it("gives no split, with the reason, when the readings cannot be compared", () => {
        const before = readingOf(at(10, 2, 7, 1), SERVICE);
        // A pod's Envoy restarted in place: its counters start again from 0.
        assert.match(
            String(counterDelta(before, readingOf(at(3, 1, 9, 2), SERVICE))),
            /gw-a's upstream_cx_total of v1 went down \(its Envoy restarted during the run\)/,
        );
        // A pod replaced (another admin address), or one more pod.
        const moved = readingOf(at(20, 4, 9, 2), SERVICE);
        moved.pods["istio-system/gw-a http://127.0.0.1:1003"] =
            moved.pods["istio-system/gw-a http://127.0.0.1:1001"];
        delete moved.pods["istio-system/gw-a http://127.0.0.1:1001"];
        assert.match(
            String(counterDelta(before, moved)),
            /the gateway pods changed during the run/,
        );
        // A pod whose Envoy did not answer.
        const silent: PodConnections[] = [
            at(20, 4, 9, 2)[0],
            {
                pod: "istio-system/gw-b",
                admin: "http://127.0.0.1:1002",
                reachable: false,
                error: "ECONNREFUSED",
                clusters: [],
                filterChainsDraining: 0,
            },
        ];
        assert.equal(
            counterDelta(before, readingOf(silent, SERVICE)),
            "the Envoy of istio-system/gw-b did not answer",
        );
        assert.equal(
            counterDelta({ pods: {}, silent: [] }, { pods: {}, silent: [] }),
            "no gateway pod to read",
        );
    });

    it("prints why the gateway's split is missing in the report's style", () => {
        assert.equal(
            formatGatewaySide({ unreadable: "target asm: not reachable" }),
            "gateway counts  not read: target asm: not reachable",
        );
    });
});
