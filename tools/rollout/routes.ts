/**
 * Prints the TCP routes of a stack as the target holds them: the live VirtualService on a cluster,
 * or the rendered manifest on the render target. On the local cluster it also prints, beside each
 * route, the split the ingress gateway actually received from istiod (the gateway's config dump) and
 * the endpoints of each subset. The command is tools/cli/routes.ts.
 */
import * as fs from "fs";
import * as path from "path";
import { parseAllDocuments } from "yaml";
import { OBJECT_NAMES } from "../../components/model";
import { PROJECT_ROOT } from "../engine/engine";
import { kubectlJson } from "../cluster/kubectl";
import { readStackSettings } from "../engine/stackFiles";
import { ReceivedRoute, gatewayConfigDump, meshEnv, receivedRoutes } from "../cluster/mesh";

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

/** The VirtualService as the stack's target holds it now. */
export function currentVirtualService(stack: string, workDir = PROJECT_ROOT): any {
    const settings = readStackSettings(stack, workDir);
    if (settings.target === "render")
        return renderedVirtualService(path.resolve(workDir, settings.renderDir));
    if (settings.target === "local")
        return liveVirtualService(
            path.resolve(workDir, settings.localKubeconfig),
            settings.namespace,
        );
    throw new Error(
        `reading live routes of target "${settings.target}" needs the ASM kubeconfig; use kubectl against ASM`,
    );
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
