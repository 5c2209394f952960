/**
 * Prints the TCP routes of a stack as the target holds them: the live VirtualService on a cluster,
 * or the rendered manifest on the render target. On the local cluster it also prints, beside each
 * route, the split the ingress gateway actually received from istiod (the gateway's config dump) and
 * the endpoints of each subset, and each gateway pod's open connections per subset (its Envoy's /stats).
 * The command is tools/cli/routes.ts.
 */
import * as fs from "fs";
import * as path from "path";
import { parseAllDocuments } from "yaml";
import { Stack } from "@pulumi/pulumi/automation";
import { OBJECT_NAMES, istioNetworkingApi } from "../../components/model";
import { KubeApi, kubeApiFromKubeconfig } from "../../preflight/kubeApi";
import { EngineOptions, PROJECT_ROOT, openStack } from "../engine/engine";
import { kubectlJson } from "../cluster/kubectl";
import { readStackSettings } from "../engine/stackFiles";
import {
    PodConnections,
    ReceivedRoute,
    gatewayConfigDump,
    gatewayConnections,
    meshEnv,
    receivedRoutes,
} from "../cluster/mesh";

export interface LiveRoute {
    port: number;
    destinations: { subset: string; weight: number }[];
}

/** TCP routes of a VirtualService object (as the API server or a rendered file holds it). */
export function routesOf(virtualService: any): LiveRoute[] {
    return (virtualService?.spec?.tcp ?? []).map((r: any) => ({
        port: r.match?.[0]?.port,
        destinations: (r.route ?? []).map((d: any) => ({
            subset: d.destination?.subset,
            weight: d.weight ?? 0,
        })),
    }));
}

export function renderedVirtualService(
    renderDir: string,
    name: string = OBJECT_NAMES.virtualService,
): any {
    const dir = path.join(renderDir, "1-manifest");
    for (const file of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
        for (const doc of parseAllDocuments(fs.readFileSync(path.join(dir, file), "utf8"))) {
            const obj = doc.toJS();
            if (obj?.kind === "VirtualService" && obj.metadata?.name === name) return obj;
        }
    }
    throw new Error(`no rendered VirtualService ${name} under ${dir}`);
}

export function liveVirtualService(
    kubeconfig: string,
    namespace: string,
    name: string = OBJECT_NAMES.virtualService,
): any {
    if (!fs.existsSync(kubeconfig))
        throw new Error(
            `no kubeconfig at ${kubeconfig}: is the local cluster up? (npm run cluster:up, or npm run local)`,
        );
    try {
        return kubectlJson(kubeconfig, [
            "-n",
            namespace,
            "get",
            "virtualservices.networking.istio.io",
            name,
        ]);
    } catch (err) {
        const said = String((err as { stderr?: string }).stderr ?? (err as Error).message)
            .trim()
            .split("\n")[0];
        throw new Error(
            `cannot read VirtualService ${namespace}/${name} with ${kubeconfig}: ${said}`,
            { cause: err },
        );
    }
}

/**
 * The VirtualService as the stack's target holds it now; undefined when the target holds none (nothing applied yet).
 * On `asm` it is read from the ASM instance with the stack's own control-plane kubeconfig, which the engine decrypts
 * (`opened.stack`: an open stack, else the stack is opened with `opened.engine`); it stays in memory.
 */
export async function currentVirtualService(
    stackName: string,
    workDir = PROJECT_ROOT,
    opened?: { stack?: Stack; engine?: EngineOptions },
): Promise<any> {
    const settings = readStackSettings(stackName, workDir);
    if (settings.target === "render")
        return renderedVirtualService(path.resolve(workDir, settings.renderDir));
    let key: string;
    let api: KubeApi;
    try {
        if (settings.target === "local") {
            key = "localKubeconfig";
            const file = path.resolve(workDir, settings.localKubeconfig);
            if (!fs.existsSync(file))
                throw new Error(
                    `no kubeconfig at ${file}: is the local cluster up? (npm run cluster:up, or npm run local)`,
                );
            api = kubeApiFromKubeconfig(fs.readFileSync(file, "utf8"));
        } else {
            key = "controlPlaneKubeconfig";
            const stack =
                opened?.stack ?? (await openStack(stackName, { ...opened?.engine, workDir }));
            api = kubeApiFromKubeconfig((await stack.getConfig(key)).value);
        }
    } catch (err) {
        // The reason names the kubeconfig's fields, never its text (preflight/kubeApi.ts).
        throw new Error(`${key!}: ${(err as Error).message}`, { cause: err });
    }
    const name = OBJECT_NAMES.virtualService;
    const where = `${istioNetworkingApi(settings.istioApiVersion)}/namespaces/${settings.namespace}/virtualservices/${name}`;
    const { status, body } = await api.get(`/apis/${where}`);
    if (status === 404) return undefined;
    if (status !== 200)
        throw new Error(
            `cannot read VirtualService ${settings.namespace}/${name} on ${api.server} (${key}): HTTP ${status}${body?.message ? ` ${body.message}` : ""}`,
        );
    return body;
}

/** What the local cluster's gateway pods received from istiod, or why that is unknown. */
export async function receivedByGateway(
    stack: string,
    workDir = PROJECT_ROOT,
): Promise<ReceivedRoute[] | string> {
    const settings = readStackSettings(stack, workDir);
    if (settings.target !== "local") return `target ${settings.target} has no local gateway`;
    try {
        return receivedRoutes(
            await gatewayConfigDump(meshEnv(path.resolve(workDir, settings.localKubeconfig))),
        );
    } catch (err) {
        return (err as Error).message;
    }
}

export function formatReceived(received: ReceivedRoute[] | string, port: number): string[] {
    if (typeof received === "string") return [`  gateway: ${received}`];
    const mine = received.filter((r) => r.port === port);
    if (mine.length === 0)
        return [`  gateway: no gateway pod serves port ${port} (istiod sent no listener for it)`];
    return mine.map((r) => {
        const split = Object.entries(r.split)
            .map(([subset, w]) => `${subset} ${w}`)
            .join(", ");
        const eps = Object.entries(r.endpoints)
            .map(([subset, e]) => `${subset} ${e.length ? e.join(" ") : "none"}`)
            .join("; ");
        return `  gateway ${r.pod} received from istiod: listener ${r.listener} -> ${split}  (endpoints: ${eps})`;
    });
}

/** The local cluster's gateway pods' connections per outbound cluster, or why they are unknown. */
export async function connectionsByGateway(
    stack: string,
    workDir = PROJECT_ROOT,
): Promise<PodConnections[] | string> {
    const settings = readStackSettings(stack, workDir);
    if (settings.target !== "local")
        return `target ${settings.target}: the gateways' Envoy stats cannot be read from here`;
    try {
        return await gatewayConnections(meshEnv(path.resolve(workDir, settings.localKubeconfig)));
    } catch (err) {
        return (err as Error).message;
    }
}

/** One gateway pod's connections behind one gateway port, per subset. */
export interface RouteConnections {
    pod: string;
    reachable: boolean;
    error?: string;
    /** Subset -> open now (upstream_cx_active) and since the Envoy started (upstream_cx_total). */
    subsets: Record<string, { active: number; total: number }>;
    filterChainsDraining: number;
}

/**
 * The connections behind gateway port `port`: the outbound clusters of the services its route sends to.
 * The services come from every pod's received route, so that a subset left out of the route (weight 0, whose
 * connections may still be open while its old filter chain drains) is still counted.
 */
export function connectionsOnPort(
    connections: PodConnections[],
    received: ReceivedRoute[] | string,
    port: number,
): RouteConnections[] {
    const services = new Set<string>();
    if (typeof received !== "string")
        for (const r of received.filter((x) => x.port === port))
            for (const name of Object.keys(r.clusters)) {
                const [, svcPort, , host] = name.split("|");
                services.add(`${svcPort}|${host}`);
            }
    return connections.map((c) => {
        const subsets: RouteConnections["subsets"] = {};
        for (const x of c.clusters) {
            if (!services.has(`${x.port}|${x.host}`)) continue;
            const s = (subsets[x.subset] ??= { active: 0, total: 0 });
            s.active += x.active;
            s.total += x.total;
        }
        return {
            pod: c.pod,
            reachable: c.reachable,
            ...(c.error ? { error: c.error } : {}),
            subsets: Object.fromEntries(
                Object.entries(subsets).sort(([a], [b]) => a.localeCompare(b)),
            ),
            filterChainsDraining: c.filterChainsDraining,
        };
    });
}

/** Connections open now behind a port, summed over the gateway pods that answered. */
export function openConnections(connections: RouteConnections[]): number {
    return connections
        .flatMap((c) => Object.values(c.subsets))
        .reduce((sum, s) => sum + s.active, 0);
}

export function formatConnections(connections: RouteConnections[] | string): string[] {
    if (typeof connections === "string") return [`  connections: ${connections}`];
    return connections.map((c) => {
        if (!c.reachable)
            return `  gateway ${c.pod} connections: unknown, its Envoy did not answer (${c.error})`;
        const subsets = Object.entries(c.subsets)
            .map(
                ([subset, s]) =>
                    `${subset || "(no subset)"} ${s.active} open (${s.total} since start)`,
            )
            .join(", ");
        return `  gateway ${c.pod} connections: ${subsets || "none"}; filter chains draining: ${c.filterChainsDraining}`;
    });
}
