/**
 * The local mesh around a local cluster (scripts/mesh.sh): where istiod and the gateway's data plane
 * listen, what the gateway received from istiod (its config dump), and the ingress address as the
 * seed's commands read it from the gateway Service.
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
    address: string;
    health: string;
    loopback?: string;
}

export interface GatewayPodDump {
    pod: string;
    ip: string;
    node: string;
    connected: boolean;
    connects: number;
    lastError?: string;
    versions: Record<string, string>;
    updated: string;
    listeners: {
        name: string;
        port: number;
        loopback: string;
        tcpProxy: {
            statPrefix: string;
            cluster?: string;
            weightedClusters?: { name: string; weight: number }[];
        } | null;
    }[];
    clusters: { name: string; type: string; endpoints: GatewayEndpoint[] }[];
    connections: Record<string, number>;
}

/** What every gateway pod holds from istiod (the stand-in's Envoy-like config dump). */
export async function gatewayConfigDump(env: MeshEnv, all = false): Promise<GatewayPodDump[]> {
    const res = await fetch(`${env.gatewayAdmin}/config_dump${all ? "?all=1" : ""}`, {
        signal: AbortSignal.timeout(5000),
    });
    if (!res.ok) throw new Error(`gateway config dump: HTTP ${res.status}`);
    return ((await res.json()) as { pods: GatewayPodDump[] }).pods;
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
 * Waits until every gateway pod serves `split` on `port` (istiod debounces, translates and pushes a
 * changed route; the gateway swaps it in). Returns the time it took.
 */
export async function waitForReceivedSplit(
    env: MeshEnv,
    port: number,
    split: Record<string, number>,
    timeoutMs = 30_000,
): Promise<number> {
    const started = Date.now();
    let last: string | undefined;
    for (;;) {
        try {
            const routes = receivedRoutes(await gatewayConfigDump(env), port);
            last = JSON.stringify(routes.map((r) => ({ pod: r.pod, split: r.split })));
            if (routes.length > 0 && routes.every((r) => sameSplit(r.split, split)))
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
