/**
 * Prints the TCP routes of a stack as the target holds them: the live VirtualService on a cluster,
 * or the rendered manifest on the render target.
 *   tsx tools/routes.ts [--stack local] [--json]
 */
import * as fs from "fs";
import * as path from "path";
import { parseAllDocuments } from "yaml";
import { PROJECT_ROOT } from "./engine";
import { kubectlJson } from "./kubectl";
import { parseArgs } from "util";
import { readStackSettings } from "./stackFiles";

export interface LiveRoute {
    port: number;
    destinations: { subset: string; weight: number }[];
}

/** TCP routes of a VirtualService object (as the API server or a rendered file holds it). */
export function routesOf(virtualService: any): LiveRoute[] {
    return (virtualService?.spec?.tcp ?? []).map((r: any) => ({
        port: r.match?.[0]?.port,
        destinations: (r.route ?? []).map((d: any) => ({ subset: d.destination?.subset, weight: d.weight ?? 0 })),
    }));
}

export function renderedVirtualService(renderDir: string, name = "tcp-echo"): any {
    const dir = path.join(renderDir, "1-manifest");
    for (const file of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
        for (const doc of parseAllDocuments(fs.readFileSync(path.join(dir, file), "utf8"))) {
            const obj = doc.toJS();
            if (obj?.kind === "VirtualService" && obj.metadata?.name === name) return obj;
        }
    }
    throw new Error(`no rendered VirtualService ${name} under ${dir}`);
}

export function liveVirtualService(kubeconfig: string, namespace: string, name = "tcp-echo"): any {
    return kubectlJson(kubeconfig, ["-n", namespace, "get", "virtualservices.networking.istio.io", name]);
}

/** The VirtualService as the stack's target holds it now. */
export function currentVirtualService(stack: string, workDir = PROJECT_ROOT): any {
    const settings = readStackSettings(stack, workDir);
    if (settings.target === "render") return renderedVirtualService(path.resolve(workDir, settings.renderDir));
    if (settings.target === "local") return liveVirtualService(path.resolve(workDir, settings.localKubeconfig), settings.namespace);
    throw new Error(`reading live routes of target "${settings.target}" needs the ASM kubeconfig; use kubectl against ASM`);
}

function main() {
    const { values } = parseArgs({ options: { stack: { type: "string", default: "local" }, json: { type: "boolean", default: false } } });
    const routes = routesOf(currentVirtualService(values.stack!));
    if (values.json) {
        console.log(JSON.stringify(routes));
        return;
    }
    for (const r of routes) {
        console.log(`port ${r.port}: ${r.destinations.map((d) => `${d.subset} ${d.weight}%`).join(", ")}`);
    }
}

if (require.main === module) main();
