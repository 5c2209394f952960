import { execFileSync } from "child_process";
import * as path from "path";
import { PROJECT_ROOT } from "../../tools/engine";

/** Name of the integration tests' own local cluster, apart from the `local` stack's. */
export const TEST_CLUSTER = "asm-tcp-shift-itest";
export const TEST_KUBECONFIG = path.join(
    PROJECT_ROOT,
    ".local",
    `cluster-${TEST_CLUSTER}`,
    "kubeconfig",
);

export function testCluster(action: "up" | "down"): void {
    execFileSync("bash", [path.join(PROJECT_ROOT, "scripts/cluster.sh"), action], {
        env: { ...process.env, ASM_TCP_SHIFT_CLUSTER: TEST_CLUSTER },
        stdio: ["ignore", "ignore", "inherit"],
    });
}
