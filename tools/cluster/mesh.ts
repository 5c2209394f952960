/**
 * The local mesh around a local cluster (scripts/mesh.sh): where istiod and the gateway runner listen,
 * what each gateway pod's Envoy holds (its own admin /config_dump), and the ingress address as the seed's
 * commands read it from the gateway Service.
 */
import * as fs from "fs";
import * as path from "path";
import { kubectlJson } from "./kubectl";

export interface MeshEnv {
    dir: string;
    xdsAddress: string;
    istiodDebug: string;
    gatewayAdmin: string;
    ingressIP: string;
}

/** The mesh folder that goes with a local cluster's kubeconfig (.local/cluster[-NAME]/kubeconfig -> .local/mesh[-NAME]). */
export function meshDirFor(kubeconfig: string): string {
    const clusterDir = path.basename(path.dirname(path.resolve(kubeconfig)));
    return path.join(
        path.dirname(path.dirname(path.resolve(kubeconfig))),
        clusterDir.replace(/^cluster/, "mesh"),
    );
}

export function meshEnv(kubeconfig: string): MeshEnv {
    const dir = meshDirFor(kubeconfig);
    const file = path.join(dir, "env");
    if (!fs.existsSync(file))
        throw new Error(`the local mesh is not running (no ${file}); run npm run cluster:up`);
    const env = Object.fromEntries(
        fs
            .readFileSync(file, "utf8")
            .split("\n")
            .filter((l) => l.includes("="))
            .map((l) => l.split("=", 2) as [string, string]),
    );
    return {
        dir,
        xdsAddress: `127.0.0.1:${env.XDS_PORT}`,
        istiodDebug: `http://127.0.0.1:${env.ISTIOD_MONITORING_PORT}`,
        gatewayAdmin: `http://127.0.0.1:${env.GATEWAY_ADMIN_PORT}`,
        ingressIP: env.INGRESS_IP,
    };
}

export interface GatewayEndpoint {
    /** The pod address istiod sent (the relay's loopback rewrite read back through the echo-pod table). */
    address: string;
    health: string;
    /** Where Envoy actually connects: the echo pod's loopback stand-in. */
    loopback?: string;
}

/** One gateway pod as the gateway runner lists it (its /pods page). */
export interface GatewayPodInfo {
    pod: string;
    ip: string;
    node: string;
    /** The pod's Envoy admin interface, http://127.0.0.1:PORT. */
    admin: string;
    pid: number;
    ready: boolean;
    restarts: number;
    drainSeconds: number;
    terminationDrainSeconds: number;
    /** Listener port istiod chose -> the pod's loopback listener (what the relay rewrote it to). */
    listeners: Record<string, string>;
    relay: {
        connected: boolean;
        streams: number;
        nacks: string[];
        relayPushes: number;
        leftOut: Record<string, number>;
        lastError?: string;
    };
    args: string[];
    log: string;
}

export interface GatewayPodDump {
    pod: string;
    ip: string;
    node: string;
    admin: string;
    ready: boolean;
    /** Last applied version per type (Listener, Cluster, ClusterLoadAssignment), from Envoy's config dump. */
    versions: Record<string, string>;
    listeners: {
        name: string;
        /** The port istiod chose (the listener name's), not the loopback port Envoy binds. */
        port: number;
        loopback: string;
        tcpProxy: {
            statPrefix: string;
            cluster?: string;
            weightedClusters?: { name: string; weight: number }[];
        } | null;
    }[];
    clusters: { name: string; type: string; endpoints: GatewayEndpoint[] }[];
}

async function getJson(url: string): Promise<any> {
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    return res.json();
}

/** The gateway pods and their Envoys' admin addresses (the gateway runner's index). */
export async function gatewayPods(env: MeshEnv): Promise<GatewayPodInfo[]> {
    return (await getJson(`${env.gatewayAdmin}/pods`)).pods as GatewayPodInfo[];
}

/** loopback -> pod address, from the echo-pod table (to read endpoints in the cluster's terms). */
function echoReverse(env: MeshEnv): Map<string, string> {
    try {
        const entries = JSON.parse(
            fs.readFileSync(path.join(env.dir, "state", "echo-pods.json"), "utf8"),
        ).entries as { address: string; loopback: string }[];
        return new Map(entries.map((e) => [e.loopback, e.address]));
    } catch {
        return new Map();
    }
}

/** A field of Envoy's config dump (snake_case proto names) or istiod's (camelCase). */
const field = (o: any, snake: string): any =>
    o?.[snake] ?? o?.[snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())];

const socketOf = (address: any): string | undefined => {
    const sa = field(address, "socket_address");
    return sa ? `${sa.address}:${field(sa, "port_value") ?? 0}` : undefined;
};

/** The tcp_proxy of a listener's first filter chain without match conditions. */
export function tcpProxyOf(listener: any): GatewayPodDump["listeners"][0]["tcpProxy"] {
    const chains: any[] = field(listener, "filter_chains") ?? [];
    const chain =
        chains.find((c) => !field(c, "filter_chain_match")) ??
        chains[0] ??
        field(listener, "default_filter_chain");
    const tp = (chain?.filters ?? []).find(
        (f: any) => f.name === "envoy.filters.network.tcp_proxy",
    );
    const cfg = tp ? field(tp, "typed_config") : undefined;
    if (!cfg) return null;
    const weighted = field(cfg, "weighted_clusters")?.clusters as any[] | undefined;
    return {
        statPrefix: field(cfg, "stat_prefix") ?? "",
        ...(cfg.cluster ? { cluster: cfg.cluster as string } : {}),
        ...(weighted
            ? {
                  weightedClusters: weighted.map((w) => ({
                      name: w.name as string,
                      weight: Number(w.weight ?? 0),
                  })),
              }
            : {}),
    };
}

/** One Envoy's /config_dump (with EDS) read as a GatewayPodDump; `reverse` maps loopback endpoints back to pod addresses. */
export function readEnvoyDump(
    info: Pick<GatewayPodInfo, "pod" | "ip" | "node" | "admin" | "ready">,
    dump: any,
    reverse: Map<string, string> = new Map(),
): GatewayPodDump {
    const of = (type: string) =>
        (dump.configs ?? []).find((c: any) => String(c["@type"]).endsWith(type)) ?? {};
    const ld = of("ListenersConfigDump");
    const cd = of("ClustersConfigDump");
    const ed = of("EndpointsConfigDump");
    const listeners = (field(ld, "dynamic_listeners") ?? [])
        .map((l: any) => field(l, "active_state")?.listener)
        .filter(Boolean)
        .map((l: any) => ({
            name: l.name as string,
            port: Number(String(l.name).split("_").pop()),
            loopback: socketOf(l.address) ?? "",
            tcpProxy: tcpProxyOf(l),
        }))
        .sort((a: any, b: any) => a.name.localeCompare(b.name));
    const endpointsByName = new Map<string, GatewayEndpoint[]>();
    const edsVersions: string[] = [];
    for (const e of field(ed, "dynamic_endpoint_configs") ?? []) {
        const cfg = field(e, "endpoint_config");
        if (field(e, "version_info")) edsVersions.push(field(e, "version_info"));
        endpointsByName.set(
            field(cfg, "cluster_name"),
            (cfg.endpoints ?? [])
                .flatMap((loc: any) => field(loc, "lb_endpoints") ?? [])
                .map((lb: any) => {
                    const loopback = socketOf(lb.endpoint?.address) ?? "";
                    return {
                        address: reverse.get(loopback) ?? loopback,
                        health: field(lb, "health_status") ?? "UNKNOWN",
                        loopback,
                    };
                }),
        );
    }
    const clusters = (field(cd, "dynamic_active_clusters") ?? [])
        .map((c: any) => c.cluster)
        .filter(Boolean)
        .map((c: any) => ({
            name: c.name as string,
            type: (c.type as string) ?? "EDS",
            endpoints:
                endpointsByName.get(
                    field(field(c, "eds_cluster_config"), "service_name") ?? c.name,
                ) ??
                endpointsByName.get(c.name) ??
                [],
        }))
        .sort((a: any, b: any) => a.name.localeCompare(b.name));
    return {
        pod: info.pod,
        ip: info.ip,
        node: info.node,
        admin: info.admin,
        ready: info.ready,
        versions: {
            Listener: field(ld, "version_info") ?? "",
            Cluster: field(cd, "version_info") ?? "",
            ClusterLoadAssignment: [...new Set(edsVersions)].sort().join(","),
        },
        listeners,
        clusters,
    };
}

/**
 * What every gateway pod's Envoy holds (its own admin /config_dump?include_eds). A pod whose Envoy does not
 * answer (starting, restarting after an exit) holds nothing yet: an empty dump, not ready.
 */
export async function gatewayConfigDump(env: MeshEnv): Promise<GatewayPodDump[]> {
    const pods = await gatewayPods(env);
    const reverse = echoReverse(env);
    return Promise.all(
        pods.map(async (p) => {
            try {
                return readEnvoyDump(
                    p,
                    await getJson(`${p.admin}/config_dump?include_eds`),
                    reverse,
                );
            } catch {
                return readEnvoyDump({ ...p, ready: false }, { configs: [] });
            }
        }),
    );
}

/** Envoy's own counters and gauges matching a regular expression (admin /stats?format=json&filter=). */
export async function envoyStats(admin: string, filter: string): Promise<Record<string, number>> {
    const body = await getJson(`${admin}/stats?format=json&filter=${encodeURIComponent(filter)}`);
    return Object.fromEntries(
        (body.stats ?? [])
            .filter((s: any) => typeof s.value === "number")
            .map((s: any) => [s.name, s.value]),
    );
}

/** Connections of one Istio outbound cluster (`outbound|PORT|SUBSET|HOST`) as one Envoy counts them. */
export interface ClusterConnections {
    cluster: string;
    /** The service port (the cluster name's), not the gateway's. */
    port: number;
    subset: string;
    host: string;
    /** upstream_cx_active: connections open now. */
    active: number;
    /** upstream_cx_total: connections opened since this Envoy started. */
    total: number;
}

/** One gateway pod's open connections, from its Envoy's /stats. */
export interface PodConnections {
    pod: string;
    admin: string;
    /** False when the pod's Envoy did not answer (starting, restarting): nothing below is known. */
    reachable: boolean;
    error?: string;
    clusters: ClusterConnections[];
    /**
     * listener_manager.total_filter_chains_draining. Envoy keeps this gauge per Envoy, not per listener; a
     * gateway serving one TCP port drains only that port's chains, so on it this is the port's.
     */
    filterChainsDraining: number;
}

/** The stats `/stats?format=json&filter=` is asked for: per-cluster connections and the drain gauge. */
export const CONNECTION_STATS_FILTER =
    "^(cluster\\.outbound\\|.*\\.upstream_cx_(active|total)|listener_manager\\.total_filter_chains_draining)$";

// Istio names a cluster's stats by its alt_stat_name, the cluster name and a ";" (the end of the name for its
// tag extraction); the host holds dots, so the stat's own name is what follows the last one.
const CLUSTER_STAT =
    /^cluster\.(outbound\|(\d+)\|([^|]*)\|([^;]+?));?\.(upstream_cx_active|upstream_cx_total)$/;

/** One Envoy's `/stats?format=json` body read as a PodConnections (histograms and non-numbers ignored). */
export function readConnectionStats(
    info: Pick<GatewayPodInfo, "pod" | "admin">,
    body: any,
): PodConnections {
    const byCluster = new Map<string, ClusterConnections>();
    let draining = 0;
    for (const s of body?.stats ?? []) {
        if (typeof s?.name !== "string" || typeof s.value !== "number") continue;
        if (s.name === "listener_manager.total_filter_chains_draining") {
            draining = s.value;
            continue;
        }
        const m = CLUSTER_STAT.exec(s.name);
        if (!m) continue;
        const [, cluster, port, subset, host, stat] = m;
        const c = byCluster.get(cluster) ?? {
            cluster,
            port: Number(port),
            subset,
            host,
            active: 0,
            total: 0,
        };
        if (stat === "upstream_cx_active") c.active = s.value;
        else c.total = s.value;
        byCluster.set(cluster, c);
    }
    return {
        pod: info.pod,
        admin: info.admin,
        reachable: true,
        clusters: [...byCluster.values()].sort((a, b) => a.cluster.localeCompare(b.cluster)),
        filterChainsDraining: draining,
    };
}

/** Every gateway pod's open connections per outbound cluster, read from its Envoy's admin /stats. */
export async function gatewayConnections(env: MeshEnv): Promise<PodConnections[]> {
    const pods = await gatewayPods(env);
    return Promise.all(
        pods.map(async (p) => {
            try {
                return readConnectionStats(
                    p,
                    await getJson(
                        `${p.admin}/stats?format=json&filter=${encodeURIComponent(CONNECTION_STATS_FILTER)}`,
                    ),
                );
            } catch (err) {
                return {
                    pod: p.pod,
                    admin: p.admin,
                    reachable: false,
                    error: (err as Error).message,
                    clusters: [],
                    filterChainsDraining: 0,
                };
            }
        }),
    );
}

/** `outbound|9000|v1|tcp-echo.default.svc.cluster.local` -> v1 (Istio's subset cluster name). */
export function subsetOf(cluster: string): string {
    return cluster.split("|")[2] || cluster;
}

export interface ReceivedRoute {
    pod: string;
    listener: string;
    port: number;
    /** Cluster -> weight, as the tcp_proxy filter holds it (a single cluster counts as 100). */
    clusters: Record<string, number>;
    /** Subset -> weight. */
    split: Record<string, number>;
    /** Subset -> healthy endpoint addresses (EDS). */
    endpoints: Record<string, string[]>;
}

export function receivedRoutes(dump: GatewayPodDump[], port?: number): ReceivedRoute[] {
    const out: ReceivedRoute[] = [];
    for (const pod of dump) {
        for (const l of pod.listeners) {
            if (port !== undefined && l.port !== port) continue;
            const tp = l.tcpProxy;
            const clusters: Record<string, number> = tp?.cluster
                ? { [tp.cluster]: 100 }
                : Object.fromEntries((tp?.weightedClusters ?? []).map((w) => [w.name, w.weight]));
            const split: Record<string, number> = {};
            const endpoints: Record<string, string[]> = {};
            for (const [name, weight] of Object.entries(clusters)) {
                split[subsetOf(name)] = weight;
                const c = pod.clusters.find((x) => x.name === name);
                endpoints[subsetOf(name)] = (c?.endpoints ?? [])
                    .filter((e) => e.health === "HEALTHY" || e.health === "UNKNOWN")
                    .map((e) => e.address)
                    .sort();
            }
            out.push({ pod: pod.pod, listener: l.name, port: l.port, clusters, split, endpoints });
        }
    }
    return out;
}

/** A split with zero weights left out: istiod drops weight-0 destinations, so {v1: 100, v2: 0} arrives as {v1: 100}. */
export function nonZero(split: Record<string, number>): Record<string, number> {
    return Object.fromEntries(
        Object.entries(split)
            .filter(([, w]) => w > 0)
            .sort(([a], [b]) => a.localeCompare(b)),
    );
}

const sameSplit = (a: Record<string, number>, b: Record<string, number>) =>
    JSON.stringify(nonZero(a)) === JSON.stringify(nonZero(b));

/**
 * Waits until every gateway pod's Envoy is ready and serves `split` on `port` (istiod debounces, translates
 * and pushes a changed route; Envoy applies it). Returns the time it took. `gateway` (the gateway's Service name,
 * `istio-<name>`) limits it to that gateway's pods, where other gateways share the cluster.
 */
export async function waitForReceivedSplit(
    env: MeshEnv,
    port: number,
    split: Record<string, number>,
    timeoutMs = 30_000,
    gateway?: string,
): Promise<number> {
    const started = Date.now();
    let last: string | undefined;
    // Deployment pods are named <deployment>-<template hash>-<suffix>.
    const ofGateway = (pod: string) =>
        gateway === undefined ||
        new RegExp(`^istio-system/${gateway}-[a-z0-9]+-[a-z0-9]+$`).test(pod);
    for (;;) {
        try {
            const dump = (await gatewayConfigDump(env)).filter((p) => ofGateway(p.pod));
            const routes = receivedRoutes(dump, port);
            last = JSON.stringify(routes.map((r) => ({ pod: r.pod, split: r.split })));
            // Every gateway pod's Envoy up and serving the port with the split.
            if (
                routes.length > 0 &&
                routes.every((r) => sameSplit(r.split, split)) &&
                dump.every((p) => p.ready && routes.some((r) => r.pod === p.pod))
            )
                return Date.now() - started;
        } catch (err) {
            last = (err as Error).message;
        }
        if (Date.now() - started > timeoutMs)
            throw new Error(
                `the gateway did not receive ${JSON.stringify(split)} on port ${port} within ${timeoutMs} ms; it holds ${last}`,
            );
        await new Promise((r) => setTimeout(r, 25));
    }
}

/** The seed's way: the gateway Service's LoadBalancer address and its port named `tcp`. */
export function ingressOf(
    kubeconfig: string,
    service = "istio-ingressgateway",
    portName = "tcp",
): { host: string; port: number } {
    const svc = kubectlJson(kubeconfig, ["-n", "istio-system", "get", "service", service]);
    const host = svc.status?.loadBalancer?.ingress?.[0]?.ip;
    const port = svc.spec?.ports?.find((p: any) => p.name === portName)?.port;
    if (!host || !port)
        throw new Error(
            `Service istio-system/${service} has no LoadBalancer address or no port named ${portName} yet`,
        );
    return { host, port };
}
