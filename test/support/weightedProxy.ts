/**
 * Test fixture for verify's statistics: a weighted TCP proxy on loopback whose split the test controls
 * exactly. Each new connection goes to one backend, chosen at random by weight. It is not the mesh: the
 * local stack's traffic goes through istiod and the gateway stand-in (mesh/), never through this.
 */
import * as net from "net";

export interface Backend {
    name: string;
    port: number;
    host?: string;
}

export interface WeightedProxyOptions {
    listenPort?: number;
    backends: Backend[];
    /** Current weight of each backend, by name; read on every new connection. */
    weights: () => Record<string, number>;
    random?: () => number;
}

export interface RunningProxy {
    port: number;
    connections: Record<string, number>;
    close(): Promise<void>;
}

export function pickBackend(
    backends: Backend[],
    weights: Record<string, number>,
    roll: number,
): Backend | undefined {
    const total = backends.reduce((sum, b) => sum + Math.max(0, weights[b.name] ?? 0), 0);
    if (total <= 0) return undefined;
    let point = roll * total;
    for (const b of backends) {
        point -= Math.max(0, weights[b.name] ?? 0);
        if (point < 0) return b;
    }
    return backends[backends.length - 1];
}

export function startWeightedProxy(opts: WeightedProxyOptions): Promise<RunningProxy> {
    const random = opts.random ?? Math.random;
    const connections: Record<string, number> = Object.fromEntries(
        opts.backends.map((b) => [b.name, 0]),
    );
    const sockets = new Set<net.Socket>();
    const server = net.createServer((client) => {
        sockets.add(client);
        client.on("close", () => sockets.delete(client));
        let backend: Backend | undefined;
        try {
            backend = pickBackend(opts.backends, opts.weights(), random());
        } catch {
            backend = undefined;
        }
        if (!backend) {
            client.destroy();
            return;
        }
        connections[backend.name]++;
        const upstream = net.connect({ host: backend.host ?? "127.0.0.1", port: backend.port });
        sockets.add(upstream);
        upstream.on("close", () => sockets.delete(upstream));
        client.pipe(upstream).pipe(client);
        const teardown = () => {
            client.destroy();
            upstream.destroy();
        };
        client.on("error", teardown);
        upstream.on("error", teardown);
    });
    return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(opts.listenPort ?? 0, "127.0.0.1", () => {
            const address = server.address() as net.AddressInfo;
            resolve({
                port: address.port,
                connections,
                close: () =>
                    new Promise<void>((done) => {
                        for (const s of sockets) s.destroy();
                        server.close(() => done());
                    }),
            });
        });
    });
}
