import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { PROJECT_ROOT, toolchainBinary } from "../../tools/engine/engine";
import { kubectl, kubectlJson } from "../../tools/cluster/kubectl";
import { MeshEnv, meshEnv } from "../../tools/cluster/mesh";

export { until } from "./wait";

/**
 * The mesh tier's own local cluster with its mesh (istiod, IstioGateway controller, echo-pod runner,
 * gateway pods' Envoys), apart from the `local` stack's and the integration tier's. `up` is idempotent
 * (fast when running); scripts/test-all.sh takes it down after the tier. ASM_TCP_SHIFT_MESH_CLUSTER names
 * another one (its own ports and loopback address: scripts/mesh.sh), e.g. to run the tier beside a running one.
 */
export const MESH_CLUSTER = process.env.ASM_TCP_SHIFT_MESH_CLUSTER || "asm-tcp-shift-mesh";
export const MESH_KUBECONFIG = path.join(
    PROJECT_ROOT,
    ".local",
    `cluster-${MESH_CLUSTER}`,
    "kubeconfig",
);
const clusterEnv = { ...process.env, ASM_TCP_SHIFT_CLUSTER: MESH_CLUSTER };

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

/**
 * Two-sided z for a false-failure rate of 1e-4: Envoy picks a weighted cluster at random per connection, so a
 * measured share is binomial; a check with this z fails a correct split once in 10,000 runs.
 */
export const Z_1E4 = 3.890591886;

/** Wilson score interval of successes/trials at z. */
export function wilson(
    successes: number,
    trials: number,
    z = Z_1E4,
): { low: number; high: number } {
    const p = successes / trials;
    const z2 = z * z;
    const d = 1 + z2 / trials;
    const centre = (p + z2 / (2 * trials)) / d;
    const half = (z * Math.sqrt((p * (1 - p)) / trials + z2 / (4 * trials * trials))) / d;
    return {
        low: successes === 0 ? 0 : Math.max(0, centre - half),
        high: successes === trials ? 1 : Math.min(1, centre + half),
    };
}

/**
 * Why counts of v1/v2 replies are not a split of `expectedWeight`% v2 (undefined if they are): the expected
 * share must lie in the z=3.89 Wilson interval (false failure 1e-4), and at most `maxErrorRate` of the
 * `total` connections may have failed.
 */
export function splitMismatch(
    counts: { v1: number; v2: number },
    total: number,
    expectedWeight: number,
    maxErrorRate = 0.01,
): string | undefined {
    const reached = counts.v1 + counts.v2;
    if (reached === 0) return "no connection reached v1 or v2";
    if ((total - reached) / total > maxErrorRate)
        return `${total - reached} of ${total} connections failed`;
    const { low, high } = wilson(counts.v2, reached);
    const e = expectedWeight / 100;
    if (e < low || e > high)
        return `v2 ${counts.v2} of ${reached}: ${expectedWeight}% is outside [${(low * 100).toFixed(1)}%, ${(high * 100).toFixed(1)}%] (z=${Z_1E4})`;
    return undefined;
}
