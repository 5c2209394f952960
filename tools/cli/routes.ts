/**
 * npm run routes -- [--stack local] [--json]: the TCP routes as the stack's target holds them, and on the local
 * cluster the split each gateway pod received from istiod and its open connections per subset (see
 * tools/rollout/routes.ts).
 */
import { readStackSettings } from "../engine/stackFiles";
import {
    connectionsByGateway,
    connectionsOnPort,
    currentVirtualService,
    formatConnections,
    formatReceived,
    receivedByGateway,
    routesOf,
} from "../rollout/routes";
import { defineCommand, runCommand } from "./cli";

export const command = defineCommand({
    name: "routes",
    usage: `usage: routes [--stack local] [--json]

Prints each TCP route of the stack's VirtualService (live on a cluster, rendered on the render target)
and, on the local cluster, what each gateway pod received from istiod, the endpoints of each subset, and
each gateway pod's connections per subset: open now, opened since its Envoy started, and whether a filter
chain is draining (what a weight change leaves behind until the drain time ends).
exit codes: 0 printed, 1 the routes could not be read (no cluster, no rendered output), 64 usage`,
    options: {
        stack: { type: "string", default: "local" },
        json: { type: "boolean", default: false },
    },
    async run(flags) {
        const stack = flags.stack!;
        const routes = routesOf(await currentVirtualService(stack));
        const received = await receivedByGateway(stack);
        const connections = await connectionsByGateway(stack);
        const onPort = (port: number) =>
            typeof connections === "string"
                ? connections
                : connectionsOnPort(connections, received, port);
        if (flags.json) {
            const withReceived =
                typeof received === "string"
                    ? routes
                    : routes.map((r) => ({
                          ...r,
                          received: received.filter((x) => x.port === r.port),
                          connections: onPort(r.port),
                      }));
            process.stdout.write(`${JSON.stringify(withReceived)}\n`);
            return 0;
        }
        const local = readStackSettings(stack).target === "local";
        for (const r of routes) {
            process.stdout.write(
                `port ${r.port}: ${r.destinations.map((d) => `${d.subset} ${d.weight}%`).join(", ")}   (VirtualService)\n`,
            );
            if (typeof received !== "string" || local) {
                process.stdout.write(`${formatReceived(received, r.port).join("\n")}\n`);
                process.stdout.write(`${formatConnections(onPort(r.port)).join("\n")}\n`);
            }
        }
        return 0;
    },
});

if (require.main === module) runCommand(command);
