/**
 * dataplane: a loopback stand-in for the mesh's data plane on the `local` stack, so `verify` and
 * `shift` can be run for real without a cloud. Istio's tcp-echo servers play v1 ("one") and v2 ("two"),
 * and a weighted TCP proxy on 127.0.0.1:<gatewayPort> splits new connections by the weights the local
 * cluster's VirtualService holds (re-read every second). The pods in the local cluster are kwok fakes;
 * this is what answers instead. Runs until interrupted.
 *   npm run dataplane -- [--stack local]
 */
import { parseArgs } from "util";
import { log, runCli } from "./cli";
import { startEchoServer } from "./echoServers";
import { startWeightedProxy } from "./localGateway";
import { currentVirtualService, routesOf } from "./routes";
import { readStackSettings } from "./stackFiles";

const USAGE = "usage: dataplane [--stack local]";

export async function main(argv = process.argv.slice(2)): Promise<number> {
    const { values } = parseArgs({ args: argv, options: { stack: { type: "string", default: "local" } } });
    const stack = values.stack!;
    const { gatewayPort } = readStackSettings(stack);
    let weights: Record<string, number> = { v1: 100, v2: 0 };
    const refresh = () => {
        try {
            const route = routesOf(currentVirtualService(stack))[0];
            weights = Object.fromEntries(route.destinations.map((d) => [d.subset, d.weight]));
        } catch (err) {
            log("dataplane", `cannot read the VirtualService: ${(err as Error).message.split("\n")[0]}`);
        }
    };
    refresh();
    const timer = setInterval(refresh, 1000);
    const v1 = await startEchoServer("v1", "one");
    const v2 = await startEchoServer("v2", "two");
    const proxy = await startWeightedProxy({ listenPort: gatewayPort, backends: [v1, v2].map((s) => ({ name: s.name, port: s.port })), weights: () => weights });
    log("dataplane", `listening on 127.0.0.1:${proxy.port}; v1 (one) on :${v1.port}, v2 (two) on :${v2.port}; weights follow stack ${stack}: ${JSON.stringify(weights)}`);
    await new Promise<void>((resolve) => {
        process.once("SIGINT", resolve);
        process.once("SIGTERM", resolve);
    });
    clearInterval(timer);
    await proxy.close();
    await Promise.all([v1.stop(), v2.stop()]);
    return 0;
}

if (require.main === module) runCli("dataplane", USAGE, main);
