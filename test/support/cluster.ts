import { execFileSync } from "child_process";
import * as path from "path";
import { OBJECT_NAMES } from "../../components/model";
import { PROJECT_ROOT } from "../../tools/engine/engine";

/** Name of the integration tests' own local cluster, apart from the `local` stack's. */
export const TEST_CLUSTER = "asm-tcp-shift-itest";
export const TEST_KUBECONFIG = path.join(
    PROJECT_ROOT,
    ".local",
    `cluster-${TEST_CLUSTER}`,
    "kubeconfig",
);

export function testCluster(action: "up" | "down", env: NodeJS.ProcessEnv = {}): void {
    execFileSync("bash", [path.join(PROJECT_ROOT, "scripts/cluster.sh"), action], {
        env: { ...process.env, ...env, ASM_TCP_SHIFT_CLUSTER: TEST_CLUSTER },
        stdio: ["ignore", "ignore", "inherit"],
    });
}

/** kubectl arguments of a hand edit of the stack's VirtualService weights (v1, v2), as an operator would make it. */
export function handEditWeights(namespace: string, v1: number, v2: number): string[] {
    const patch = [
        { op: "replace", path: "/spec/tcp/0/route/0/weight", value: v1 },
        { op: "replace", path: "/spec/tcp/0/route/1/weight", value: v2 },
    ];
    const vs = ["virtualservices.networking.istio.io", OBJECT_NAMES.virtualService];
    return ["-n", namespace, "patch", ...vs, "--type=json", "-p", JSON.stringify(patch)];
}

/** kubectl arguments of a hand edit of the stack's DestinationRule: its v2 subset selects version v3 instead. */
export function handEditSubsetVersion(namespace: string): string[] {
    const patch = [{ op: "replace", path: "/spec/subsets/1/labels/version", value: "v3" }];
    const dr = ["destinationrules.networking.istio.io", OBJECT_NAMES.destinationRule];
    return ["-n", namespace, "patch", ...dr, "--type=json", "-p", JSON.stringify(patch)];
}
