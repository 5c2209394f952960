import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_ROOT } from "../../tools/engine/engine";
import { kubectl, kubectlJson } from "../../tools/cluster/kubectl";
import { MeshEnv, meshEnv } from "../../tools/cluster/mesh";

export { until } from "./wait";
export { splitMismatch } from "./mesh";

/**
 * The asm tier's own two-cluster topology (scripts/cluster.sh up --topology asm): a mesh control-plane API server
 * (ASM's role) and a data-plane cluster (ACK's role) with the mesh around them. `up` is idempotent (fast when
 * running); scripts/test-all.sh takes it down after the tier. ASM_TCP_SHIFT_ASM_CLUSTER names another one (its own
 * ports and loopback address), e.g. to run the tier beside a running one.
 */
export const ASM_CLUSTER = process.env.ASM_TCP_SHIFT_ASM_CLUSTER || "asm-tcp-shift-asm";
export const CLUSTER_DIR = path.join(PROJECT_ROOT, ".local", `cluster-${ASM_CLUSTER}`);
/** The data plane's admin kubeconfig (the mesh's processes and meshEnv find everything from it). */
export const DATA_ADMIN = path.join(CLUSTER_DIR, "kubeconfig");
/** The user's ASM kubeconfig: a client certificate bound only to istio-admin on the control plane. */
export const CONTROL_USER = path.join(CLUSTER_DIR, "control-plane.kubeconfig");
/** The user's ACK kubeconfig: a client certificate bound to cluster-admin on the data plane. */
export const DATA_USER = path.join(CLUSTER_DIR, "data-plane.kubeconfig");
const clusterEnv = { ...process.env, ASM_TCP_SHIFT_CLUSTER: ASM_CLUSTER };

function script(name: string, args: string[]): string {
    return execFileSync("bash", [path.join(PROJECT_ROOT, "scripts", name), ...args], {
        env: clusterEnv,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "inherit"],
    });
}

export function asmCluster(action: "up" | "down" | "status"): string {
    return script("cluster.sh", action === "up" ? ["up", "--topology", "asm"] : [action]);
}

export const meshScript = (...args: string[]) => script("mesh.sh", args);

/** scripts/mesh.sh env as a record (ports, CONTROL_PLANE_KUBECONFIG, the cluster ids). */
export function asmEnv(): Record<string, string> {
    return Object.fromEntries(
        meshScript("env")
            .split("\n")
            .filter((l) => l.includes("="))
            .map((l) => {
                const i = l.indexOf("=");
                return [l.slice(0, i), l.slice(i + 1)];
            }),
    );
}

export const env = (): MeshEnv => meshEnv(DATA_ADMIN);
/** The control plane's admin kubeconfig (for inspecting and planting objects a user could not). */
export const controlAdmin = (): string => asmEnv().CONTROL_PLANE_KUBECONFIG;
export const dataPlaneClusterId = (): string =>
    fs.readFileSync(path.join(CLUSTER_DIR, "data-plane-cluster-id"), "utf8").trim();

/**
 * A fresh kubeconfig for a new user holding `role` on a plane (scripts/cluster.sh credentials), written owner-only
 * to a temporary file; returns its path.
 */
export function credentials(plane: "control" | "data", role: string, expired = false): string {
    const text = script("cluster.sh", [
        "credentials",
        "--plane",
        plane,
        "--role",
        role,
        ...(expired ? ["--expired"] : []),
    ]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "asm-tcp-shift-cred-"));
    const file = path.join(dir, "kubeconfig");
    fs.writeFileSync(file, text, { mode: 0o600 });
    return file;
}

/** kubectl with a kubeconfig; `attempt` returns the outcome instead of throwing. */
export const kc = (kubeconfig: string, ...args: string[]) => kubectl(kubeconfig, args);
export const kcJson = (kubeconfig: string, ...args: string[]) => kubectlJson(kubeconfig, args);
export const applyWith = (kubeconfig: string, yaml: string) =>
    kubectl(kubeconfig, ["apply", "-f", "-"], yaml);

export function attempt(
    kubeconfig: string,
    args: string[],
    input?: string,
): { ok: boolean; out: string } {
    try {
        return { ok: true, out: kubectl(kubeconfig, args, input) };
    } catch (err) {
        const e = err as { stderr?: string; message: string };
        return { ok: false, out: String(e.stderr ?? e.message) };
    }
}
