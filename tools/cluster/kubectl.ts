import { execFileSync } from "child_process";
import { toolchainBinary } from "../engine/engine";

/** Runs the pinned kubectl against a kubeconfig and returns stdout. */
export function kubectl(kubeconfig: string, args: string[], input?: string): string {
    return execFileSync(toolchainBinary("kubectl"), ["--kubeconfig", kubeconfig, ...args], {
        encoding: "utf8",
        input,
        stdio: ["pipe", "pipe", "pipe"],
    });
}

export function kubectlJson(kubeconfig: string, args: string[]): any {
    return JSON.parse(kubectl(kubeconfig, [...args, "-o", "json"]));
}
