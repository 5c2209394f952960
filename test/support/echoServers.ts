import { ChildProcess, spawn } from "child_process";
import * as net from "net";
import { toolchainBinary } from "../../tools/engine/engine";

export interface EchoServer {
    name: string;
    port: number;
    process: ChildProcess;
    stop(): Promise<void>;
}

/** A free loopback port (the kernel picks, then releases it for the child). */
export function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.once("error", reject);
        s.listen(0, "127.0.0.1", () => {
            const { port } = s.address() as net.AddressInfo;
            s.close(() => resolve(port));
        });
    });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
        const ok = await new Promise<boolean>((resolve) => {
            const s = net.connect({ host: "127.0.0.1", port }, () => {
                s.destroy();
                resolve(true);
            });
            s.on("error", () => resolve(false));
        });
        if (ok) return;
        await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs}ms`);
}

/** Starts Istio's own tcp-echo server (built from the Istio module) with a reply prefix. */
export async function startEchoServer(
    name: string,
    prefix: string,
    port?: number,
): Promise<EchoServer> {
    const listenPort = port ?? (await freePort());
    const child = spawn(toolchainBinary("tcp-echo"), [String(listenPort), prefix], {
        stdio: "ignore",
    });
    await waitForPort(listenPort, 10_000);
    return {
        name,
        port: listenPort,
        process: child,
        stop: () =>
            new Promise<void>((resolve) => {
                if (child.exitCode !== null || child.signalCode !== null) return resolve();
                child.once("exit", () => resolve());
                child.kill("SIGTERM");
            }),
    };
}
