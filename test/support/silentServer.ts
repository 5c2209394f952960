import * as net from "net";

/**
 * A loopback listener that accepts connections and never answers: what an API server's intranet endpoint looks like
 * from outside its VPC (the TLS handshake waits forever).
 */
export async function silentServer(): Promise<{ url: string; close: () => void }> {
    const sockets: net.Socket[] = [];
    const server = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as net.AddressInfo;
    return {
        url: `https://127.0.0.1:${port}`,
        close: () => {
            sockets.forEach((s) => s.destroy());
            server.close();
        },
    };
}
