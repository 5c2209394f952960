import assert from "node:assert/strict";
import { execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
    EngineOptions,
    engineEnv,
    toolchainBinPath,
    toolchainBinary,
} from "../../tools/engine/engine";

/**
 * The seed's commands, verbatim, with `kubeconfig` (the cluster that holds the gateway's Service): the reply lines
 * of ten connections through the gateway. Its `nc` is one that half-closes on end of input, as the seed's busybox
 * nc does (Debian's ncat, which cluster.sh up installs).
 */
export function seedReplies(kubeconfig: string): string[] {
    const shim = fs.mkdtempSync(path.join(os.tmpdir(), "asm-tcp-shift-nc-"));
    try {
        const ncat = execFileSync("bash", ["-c", "command -v ncat || true"], {
            encoding: "utf8",
        }).trim();
        assert.ok(ncat, "ncat is installed by cluster.sh up");
        fs.symlinkSync(ncat, path.join(shim, "nc"));
        const seed = [
            `export INGRESS_HOST=$(kubectl -n istio-system get service istio-ingressgateway -o jsonpath='{.status.loadBalancer.ingress[0].ip}')`,
            `export INGRESS_PORT=$(kubectl -n istio-system get service istio-ingressgateway -o jsonpath='{.spec.ports[?(@.name=="tcp")].port}')`,
            `for i in $(seq 1 10); do (date; sleep 1) | nc $INGRESS_HOST $INGRESS_PORT; done`,
        ].join("\n");
        const out = execFileSync("bash", ["-c", seed], {
            encoding: "utf8",
            timeout: 60_000,
            env: {
                ...process.env,
                KUBECONFIG: kubeconfig,
                PATH: `${shim}:${toolchainBinPath()}:${process.env.PATH}`,
            },
        });
        return out.trim().split("\n");
    } finally {
        fs.rmSync(shim, { recursive: true, force: true });
    }
}

/**
 * Runs `pulumi up` of `stack` (in `workDir`) and SIGKILLs it, with its language host and provider plugins, once it
 * is updating a Deployment: the update is cut off mid-way, as by a killed CI job.
 */
export async function upKilledMidUpdate(
    stack: string,
    engine: EngineOptions,
    workDir: string,
): Promise<void> {
    const env = { ...process.env, ...engineEnv(stack, engine) };
    // Its own process group, so SIGKILL takes the language host and provider plugins down with it.
    const child = spawn(
        toolchainBinary("pulumi"),
        ["up", "--yes", "--skip-preview", "--stack", stack],
        { cwd: workDir, env, detached: true },
    );
    let output = "";
    await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
            () => reject(new Error(`no Deployment update seen:\n${output}`)),
            120_000,
        );
        const watch = (chunk: Buffer) => {
            output += chunk.toString();
            if (/Deployment tcp-echo-\w+-deployment updating/.test(output)) {
                clearTimeout(timer);
                process.kill(-child.pid!, "SIGKILL");
                resolve();
            }
        };
        child.stdout.on("data", watch);
        child.stderr.on("data", watch);
    });
    await new Promise((r) => child.once("exit", r));
}
