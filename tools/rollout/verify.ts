/**
 * verify: measures the traffic split behind a TCP endpoint the way ASM's guide does by hand with
 * `nc`, but as a statistic. Opens N connections, sends one line each, classifies the reply by the
 * echo prefix, and checks the expected v2 weight against the 95% Wilson interval of the observed share.
 */
import * as net from "net";

export interface VerifyOptions {
    host: string;
    port: number;
    connections: number;
    concurrency: number;
    /** Per-connection budget for connect + reply. */
    timeoutMs: number;
    /** Expected percent of replies from v2, 0..100. */
    expectedWeight: number;
    /** Reply prefix of each version, e.g. {v1: "one", v2: "two"}. */
    prefixes: { v1: string; v2: string };
    /** Largest tolerated fraction of failed connections before the check is inconclusive. */
    maxErrorRate: number;
    onProgress?: (done: number, total: number) => void;
}

export type Outcome = "v1" | "v2" | "unknown" | "timeout" | "refused" | "reset" | "error";

export interface VerifyReport {
    target: string;
    connections: number;
    counts: Record<Outcome, number>;
    /** v2 / (v1 + v2): connections that reached a known version. */
    observedV2Share: number | null;
    wilson95: { low: number; high: number } | null;
    expectedWeight: number;
    errorRate: number;
    verdict: "consistent" | "inconsistent" | "inconclusive";
    reason: string;
    durationMs: number;
}

const Z95 = 1.959963984540054;

/** Wilson score interval for a binomial proportion (well-behaved at 0 and 1, unlike the normal one). */
export function wilsonInterval(
    successes: number,
    trials: number,
    z = Z95,
): { low: number; high: number } {
    if (trials <= 0) throw new RangeError("wilsonInterval needs at least one trial");
    const p = successes / trials;
    const z2 = z * z;
    const denominator = 1 + z2 / trials;
    const centre = (p + z2 / (2 * trials)) / denominator;
    const half = (z * Math.sqrt((p * (1 - p)) / trials + z2 / (4 * trials * trials))) / denominator;
    // Exact at the edges: 0 of n must admit a 0% weight, n of n a 100% one, despite rounding.
    return {
        low: successes === 0 ? 0 : Math.max(0, centre - half),
        high: successes === trials ? 1 : Math.min(1, centre + half),
    };
}

function classifyError(err: NodeJS.ErrnoException): Outcome {
    switch (err.code) {
        case "ECONNREFUSED":
            return "refused";
        case "ECONNRESET":
        case "EPIPE":
            return "reset";
        case "ETIMEDOUT":
            return "timeout";
        default:
            return "error";
    }
}

/** One connection: send a line, read one line back, say which version answered. Never throws. */
export function probe(
    host: string,
    port: number,
    line: string,
    prefixes: VerifyOptions["prefixes"],
    timeoutMs: number,
): Promise<Outcome> {
    return new Promise((resolve) => {
        let settled = false;
        let received = "";
        const socket = net.connect({ host, port });
        const finish = (outcome: Outcome) => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            socket.destroy();
            resolve(outcome);
        };
        const timer = setTimeout(() => finish("timeout"), timeoutMs);
        socket.setNoDelay(true);
        socket.on("connect", () => socket.write(`${line}\n`));
        socket.on("data", (chunk) => {
            received += chunk.toString("utf8");
            const newline = received.indexOf("\n");
            if (newline < 0) return;
            const reply = received.slice(0, newline);
            if (reply.startsWith(`${prefixes.v1} `)) finish("v1");
            else if (reply.startsWith(`${prefixes.v2} `)) finish("v2");
            else finish("unknown");
        });
        socket.on("error", (err) => finish(classifyError(err)));
        // Closed before a full line: the peer hung up on us.
        socket.on("close", () => finish(received.length > 0 ? "unknown" : "reset"));
    });
}

export async function verify(opts: VerifyOptions): Promise<VerifyReport> {
    const started = Date.now();
    const counts: Record<Outcome, number> = {
        v1: 0,
        v2: 0,
        unknown: 0,
        timeout: 0,
        refused: 0,
        reset: 0,
        error: 0,
    };
    let next = 0;
    let done = 0;
    const worker = async () => {
        while (next < opts.connections) {
            const i = next++;
            counts[
                await probe(
                    opts.host,
                    opts.port,
                    `asm-tcp-shift-verify-${i}`,
                    opts.prefixes,
                    opts.timeoutMs,
                )
            ]++;
            opts.onProgress?.(++done, opts.connections);
        }
    };
    await Promise.all(
        Array.from({ length: Math.max(1, Math.min(opts.concurrency, opts.connections)) }, worker),
    );

    const reached = counts.v1 + counts.v2;
    const failed = opts.connections - reached;
    const errorRate = failed / opts.connections;
    const observedV2Share = reached > 0 ? counts.v2 / reached : null;
    const wilson95 = reached > 0 ? wilsonInterval(counts.v2, reached) : null;
    const expected = opts.expectedWeight / 100;
    let verdict: VerifyReport["verdict"];
    let reason: string;
    if (reached === 0) {
        verdict = "inconclusive";
        reason = "no connection reached v1 or v2";
    } else if (errorRate > opts.maxErrorRate) {
        verdict = "inconclusive";
        reason = `${(errorRate * 100).toFixed(1)}% of connections failed or gave unknown replies (limit ${(opts.maxErrorRate * 100).toFixed(1)}%)`;
    } else if (expected >= wilson95!.low && expected <= wilson95!.high) {
        verdict = "consistent";
        reason = `expected ${opts.expectedWeight}% lies in the 95% interval [${pct(wilson95!.low)}, ${pct(wilson95!.high)}]`;
    } else {
        verdict = "inconsistent";
        reason = `expected ${opts.expectedWeight}% lies outside the 95% interval [${pct(wilson95!.low)}, ${pct(wilson95!.high)}]`;
    }
    return {
        target: `${opts.host}:${opts.port}`,
        connections: opts.connections,
        counts,
        observedV2Share,
        wilson95,
        expectedWeight: opts.expectedWeight,
        errorRate,
        verdict,
        reason,
        durationMs: Date.now() - started,
    };
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

export function formatReport(r: VerifyReport): string {
    const c = r.counts;
    return [
        `target          ${r.target}`,
        `connections     ${r.connections} in ${(r.durationMs / 1000).toFixed(1)}s`,
        `replies         v1 ${c.v1}, v2 ${c.v2}, unknown ${c.unknown}`,
        `failures        timeout ${c.timeout}, refused ${c.refused}, reset ${c.reset}, other ${c.error}`,
        `observed v2     ${r.observedV2Share === null ? "n/a" : pct(r.observedV2Share)}  (95% Wilson ${r.wilson95 ? `${pct(r.wilson95.low)}..${pct(r.wilson95.high)}` : "n/a"})`,
        `expected v2     ${r.expectedWeight}%`,
        `verdict         ${r.verdict}: ${r.reason}`,
    ].join("\n");
}
