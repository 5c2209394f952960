/**
 * What a shift step does to the connections open through the gateway. Every weight change of a TCP route
 * changes the tcp_proxy filter of the port's listener, so Envoy replaces the port's filter chain: the old
 * chain drains, its connections stay on the subset they were sent to, and Envoy closes them when the drain
 * time (Istio's drainDuration) ends. tcp_proxy has no graceful close, so they end all at once (docs/envoy.md).
 */
import * as path from "path";
import { gatewayConnections, gatewayPods, meshEnv } from "../cluster/mesh";
import { readStackSettings } from "../engine/stackFiles";
import { PROJECT_ROOT } from "../engine/engine";
import { connectionsOnPort, openConnections, receivedByGateway } from "./routes";

/** Istio's ProxyConfig drainDuration when neither the mesh config nor the pod's annotation sets one. */
export const ISTIO_DEFAULT_DRAIN_SECONDS = 45;

export interface DrainInfo {
    /** The longest drain time of the gateway pods. */
    drainSeconds: number;
    /** Where the drain time comes from, for the operator. */
    drainSource: string;
    /** Connections open behind the gateway port now, summed over the gateway pods; undefined when unreadable. */
    open?: number;
    /** Why `open` is unknown. */
    unreadable?: string;
}

/** How a shift watches the gateways' connections on its target. */
export interface ConnectionWatch {
    /** The drain time and the connections open now. */
    probe(): Promise<DrainInfo>;
    /** Resolves once no gateway has a filter chain draining (local target only); returns the time it took. */
    waitDrained?(timeoutMs: number): Promise<number>;
}

/** The message a step logs before its update: what it does to the connections open now. */
export function connectionNotice(from: number, to: number, port: number, info: DrainInfo): string {
    if (from === to)
        return `v2 weight stays ${to}: port ${port}'s filter chain is unchanged and its open connections stay`;
    const open =
        info.open === undefined
            ? `the connections open on it cannot be read from here (${info.unreadable})`
            : `${info.open} connection${info.open === 1 ? " is" : "s are"} open on it now${info.unreadable ? ` (${info.unreadable})` : ""}`;
    return (
        `v2 weight ${from} -> ${to} replaces port ${port}'s filter chain on every gateway (every weight change of a TCP route does); ` +
        `${open}. They keep their subset until the drain time ends, ${info.drainSeconds} s after the gateway has the change (${info.drainSource}), ` +
        `then Envoy closes them all at once; clients reconnect under the new split`
    );
}

/**
 * Why a settle time shorter than the drain time is refused (undefined when it is not): the next step would
 * change the route while the previous step's connections are still on their old subset, so a gate would
 * measure new connections only. `--drain wait` waits for the drain itself; `--force` accepts the overlap.
 */
export function settleRefusal(opts: {
    settleSeconds?: number;
    drainSeconds: number;
    drainWait: boolean;
    force: boolean;
}): string | undefined {
    if (opts.settleSeconds === undefined || opts.drainWait || opts.force) return undefined;
    if (opts.settleSeconds >= opts.drainSeconds) return undefined;
    return `--settle-seconds ${opts.settleSeconds} is shorter than the gateway's drain time (${opts.drainSeconds} s): the next step would start while the previous step's connections still drain. Give --settle-seconds ${opts.drainSeconds} or more, --drain wait, or --force.`;
}

/** The connection watch of a stack's target: the gateways' own stats on the local cluster, Istio's default elsewhere. */
export function connectionWatchFor(stack: string, workDir = PROJECT_ROOT): ConnectionWatch {
    const settings = readStackSettings(stack, workDir);
    if (settings.target !== "local")
        return {
            probe: async () => ({
                drainSeconds: ISTIO_DEFAULT_DRAIN_SECONDS,
                drainSource:
                    "Istio's default drainDuration, unless the gateway's ProxyConfig sets another",
                unreadable: `target ${settings.target}: the gateways' Envoy stats are not reachable from here`,
            }),
        };
    const env = meshEnv(path.resolve(workDir, settings.localKubeconfig));
    const draining = async () =>
        (await gatewayConnections(env)).map((c) =>
            c.reachable ? c.filterChainsDraining : Number.NaN,
        );
    return {
        async probe() {
            // The gateway runner reads each pod's drainDuration as istio-agent does: the mesh config, then the
            // pod's proxy.istio.io/config annotation. A runner that does not answer leaves Istio's default
            // rather than failing the shift.
            const pods = await gatewayPods(env).catch(() => []);
            const drainSeconds = Math.max(
                0,
                ...pods.map((p) => p.drainSeconds).filter((s) => Number.isFinite(s)),
            );
            const info: DrainInfo = {
                drainSeconds: pods.length ? drainSeconds : ISTIO_DEFAULT_DRAIN_SECONDS,
                drainSource: pods.length
                    ? "drainDuration of the gateway pods, from the mesh config and their proxy.istio.io/config"
                    : "Istio's default drainDuration: no gateway pod answered",
            };
            try {
                const received = await receivedByGateway(stack, workDir);
                const conns = connectionsOnPort(
                    await gatewayConnections(env),
                    received,
                    settings.gatewayPort,
                );
                const silent = conns.filter((c) => !c.reachable).map((c) => c.pod);
                info.open = openConnections(conns);
                if (silent.length)
                    info.unreadable = `not counted: ${silent.join(", ")} did not answer`;
            } catch (err) {
                info.unreadable = (err as Error).message;
            }
            return info;
        },
        async waitDrained(timeoutMs) {
            const started = Date.now();
            let last: number[] = [];
            for (;;) {
                try {
                    last = await draining();
                    if (last.length > 0 && last.every((d) => d === 0)) return Date.now() - started;
                } catch {
                    // The gateway runner restarting: not drained yet as far as we know.
                }
                if (Date.now() - started > timeoutMs)
                    throw new Error(
                        `the gateways still drain filter chains after ${timeoutMs} ms (total_filter_chains_draining per pod: ${last.join(", ")})`,
                    );
                await new Promise((r) => setTimeout(r, 200));
            }
        },
    };
}
