import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { PROJECT_ROOT, toolchainBinary } from "../../tools/engine/engine";
import { kubectl, kubectlJson } from "../../tools/cluster/kubectl";
import { MeshEnv, meshEnv } from "../../tools/cluster/mesh";

export { until } from "./wait";

/**
 * The mesh tier's own local cluster with its mesh (istiod, IstioGateway controller, echo-pod runner,
 * gateway data plane), apart from the `local` stack's and the integration tier's. `up` is idempotent
 * (fast when running); scripts/test-all.sh takes it down after the tier.
 */
export const MESH_CLUSTER = "asm-tcp-shift-mesh";
export const MESH_KUBECONFIG = path.join(
    PROJECT_ROOT,
    ".local",
    `cluster-${MESH_CLUSTER}`,
    "kubeconfig",
);
// The gateway draws weighted clusters from a low-discrepancy sequence instead of at random: the same
// expected split, without the sampling noise that fails a 95% check one time in twenty.
const clusterEnv = {
    ...process.env,
    ASM_TCP_SHIFT_CLUSTER: MESH_CLUSTER,
    ASM_TCP_SHIFT_GATEWAY_PICK: "sequence",
};

export function meshCluster(action: "up" | "down" | "status"): string {
    return execFileSync("bash", [path.join(PROJECT_ROOT, "scripts/cluster.sh"), action], {
        env: clusterEnv,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "inherit"],
    });
}

/** scripts/mesh.sh on the tier's cluster: restart/stop/start a component. */
export function meshScript(...args: string[]): string {
    return execFileSync("bash", [path.join(PROJECT_ROOT, "scripts/mesh.sh"), ...args], {
        env: clusterEnv,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "inherit"],
    });
}

export const env = (): MeshEnv => meshEnv(MESH_KUBECONFIG);
export const k = (...args: string[]) => kubectl(MESH_KUBECONFIG, args);
export const get = (...args: string[]) => kubectlJson(MESH_KUBECONFIG, args);
export const apply = (yaml: string) => kubectl(MESH_KUBECONFIG, ["apply", "-f", "-"], yaml);

export interface EchoEntry {
    address: string;
    loopback: string;
    pod: string;
    pid?: number;
    ready: boolean;
}

/** The echo-pod runner's table: pod address -> loopback port, pid, readiness. */
export function echoTable(): EchoEntry[] {
    return JSON.parse(fs.readFileSync(path.join(env().dir, "state", "echo-pods.json"), "utf8"))
        .entries;
}

/** Pod IPs (sorted) of the ready pods with these labels. */
export function podIPs(namespace: string, selector: string): string[] {
    return get("-n", namespace, "get", "pods", "-l", selector)
        .items.filter(
            (p: any) =>
                !p.metadata.deletionTimestamp &&
                (p.status.conditions ?? []).some(
                    (c: any) => c.type === "Ready" && c.status === "True",
                ),
        )
        .map((p: any) => p.status.podIP)
        .sort();
}

/** `istioctl proxy-status` over plaintext xDS; `-v 1` shows the sync state per type (CDS, EDS, LDS columns). */
export function proxyStatus(): string {
    return execFileSync(
        toolchainBinary("istioctl"),
        [
            "proxy-status",
            "--xds-address",
            env().xdsAddress,
            "--plaintext",
            "-v",
            "1",
            "--kubeconfig",
            MESH_KUBECONFIG,
        ],
        { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
    );
}
