/**
 * The gateway's own count of a verify run: each gateway pod's Envoy counts the connections it opens to each
 * subset cluster (`cluster.outbound|PORT|SUBSET|HOST.upstream_cx_total`), so the difference of two readings,
 * one before the run and one after, summed over the pods, is the split the gateway made. verify reports it
 * beside the split its own replies show (`compareWithGatewayCounters`, docs/verify.md); it does not change the
 * verdict, which stays the client's.
 */
import * as path from "path";
import { APP_NAME, VERSIONS } from "../../components/model";
import { PodConnections, gatewayConnections, meshEnv } from "../cluster/mesh";
import { PROJECT_ROOT } from "../engine/engine";
import { readStackSettings } from "../engine/stackFiles";
import {
    GatewayComparison,
    GatewayCounters,
    VerifyOptions,
    VerifyReport,
    compareWithGatewayCounters,
    formatGatewayComparison,
    verify,
} from "./verify";

/** One reading: per gateway pod (by pod and its Envoy's admin address), upstream_cx_total per subset. */
export interface CounterReading {
    pods: Record<string, Record<string, number>>;
    /** Pods whose Envoy did not answer. */
    silent: string[];
}

/** Where a run's gateway counters come from. */
export interface GatewayCounterSource {
    /** What the reading covers, for the report. */
    describe: string;
    read(): Promise<CounterReading>;
}

/** The subset clusters of one service (`outbound|<port>|<subset>|<host>`) in each pod's stats. */
export function readingOf(
    connections: PodConnections[],
    service: { host: string; port: number },
): CounterReading {
    const pods: CounterReading["pods"] = {};
    const silent: string[] = [];
    for (const c of connections) {
        if (!c.reachable) {
            silent.push(c.pod);
            continue;
        }
        const totals: Record<string, number> = {};
        for (const x of c.clusters)
            if (x.host === service.host && x.port === service.port && x.subset !== "")
                totals[x.subset] = (totals[x.subset] ?? 0) + x.total;
        // Envoy restarted in place keeps the pod name but not its counters; the admin address tells them apart
        // only across restarts that moved it, so a counter going down is checked as well (counterDelta).
        pods[`${c.pod} ${c.admin}`] = totals;
    }
    return { pods, silent };
}

/**
 * Connections the gateway opened to v1 and v2 between two readings, summed over the pods; or why the two
 * readings do not give that (a pod silent, gone or new, a counter that went down: its Envoy restarted).
 */
export function counterDelta(
    before: CounterReading,
    after: CounterReading,
): GatewayCounters | string {
    const silent = [...new Set([...before.silent, ...after.silent])];
    if (silent.length) return `the Envoy of ${silent.join(", ")} did not answer`;
    const a = Object.keys(before.pods).sort();
    const b = Object.keys(after.pods).sort();
    if (a.length === 0) return "no gateway pod to read";
    if (JSON.stringify(a) !== JSON.stringify(b))
        return `the gateway pods changed during the run (before: ${a.join(", ")}; after: ${b.join(", ")})`;
    const out: GatewayCounters = { v1: 0, v2: 0 };
    for (const pod of a)
        for (const [key, subset] of [
            ["v1", VERSIONS.stable.subset],
            ["v2", VERSIONS.canary.subset],
        ] as const) {
            const d = (after.pods[pod][subset] ?? 0) - (before.pods[pod][subset] ?? 0);
            if (d < 0)
                return `${pod.split(" ")[0]}'s upstream_cx_total of ${subset} went down (its Envoy restarted during the run)`;
            out[key] += d;
        }
    return out;
}

/**
 * The counter source of a stack: its local gateway pods' Envoy admin, or why there is none (on ASM the
 * gateways' admin ports are inside the pods, out of reach of the tools).
 */
export function gatewayCounterSourceFor(
    stack: string,
    workDir = PROJECT_ROOT,
): GatewayCounterSource | string {
    const settings = readStackSettings(stack, workDir);
    if (settings.target !== "local")
        return `target ${settings.target}: the gateways' Envoy stats are not reachable from here`;
    const host = `${APP_NAME}.${settings.namespace}.svc.cluster.local`;
    return {
        describe: `upstream_cx_total of outbound|${settings.servicePort}|v1,v2|${host} on every gateway pod`,
        read: async () =>
            readingOf(
                await gatewayConnections(meshEnv(path.resolve(workDir, settings.localKubeconfig))),
                { host, port: settings.servicePort },
            ),
    };
}

/** verify's report with the gateway's own split beside it, or why the gateway's split is unknown. */
export interface VerifyWithGateway {
    report: VerifyReport;
    gateway: GatewayComparison | { unreadable: string };
}

/** Runs verify between two readings of the gateway's counters, where a source is given. */
export async function verifyWithGateway(
    opts: VerifyOptions,
    source: GatewayCounterSource | string,
): Promise<VerifyWithGateway> {
    if (typeof source === "string")
        return { report: await verify(opts), gateway: { unreadable: source } };
    const before = await source.read().catch((err: Error) => err.message);
    const report = await verify(opts);
    if (typeof before === "string") return { report, gateway: { unreadable: before } };
    const after = await source.read().catch((err: Error) => err.message);
    if (typeof after === "string") return { report, gateway: { unreadable: after } };
    const delta = counterDelta(before, after);
    return {
        report,
        gateway:
            typeof delta === "string"
                ? { unreadable: delta }
                : compareWithGatewayCounters(report, delta, {
                      minDetectable: opts.minDetectable,
                  }),
    };
}

export function formatGatewaySide(gateway: VerifyWithGateway["gateway"]): string {
    return "unreadable" in gateway
        ? `gateway counts  not read: ${gateway.unreadable}`
        : formatGatewayComparison(gateway);
}
