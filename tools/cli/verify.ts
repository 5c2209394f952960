/**
 * npm run verify -- (--port PORT --expect-weight W | --stack NAME) [...]: the measured split behind a TCP
 * endpoint against the expected v2 weight (see tools/rollout/verify.ts).
 */
import { VERSIONS } from "../../components/model";
import { stackOutputs } from "../engine/stackOutputs";
import {
    GATE_ALPHA,
    GATE_MIN_DETECTABLE,
    GATE_POWER,
    VerifyOptions,
    formatReport,
} from "../rollout/verify";
import {
    formatGatewaySide,
    gatewayCounterSourceFor,
    verifyWithGateway,
} from "../rollout/gatewayCounts";
import { UsageError, defineCommand, intFlag, numberFlag, runCommand } from "./cli";

export const EXIT = { consistent: 0, inconsistent: 1, inconclusive: 2, usage: 64 } as const;

export const command = defineCommand({
    name: "verify",
    usage: `usage: verify (--port PORT [--host 127.0.0.1] --expect-weight W | --stack NAME [--port ...])
              [--connections 1000] [--concurrency 50] [--timeout-ms 2000]
              [--v1-prefix ${VERSIONS.stable.prefix}] [--v2-prefix ${VERSIONS.canary.prefix}] [--max-error-rate 0.01]
              [--min-detectable ${GATE_MIN_DETECTABLE}] [--json]

Opens N TCP connections, sends a line on each, classifies replies by prefix, and tests the observed
v2 count against the expected v2 weight with an exact two-sided binomial test at alpha ${GATE_ALPHA}: a
correct split fails at most one run in ${1 / GATE_ALPHA}. A pass is conclusive only if a split
--min-detectable points off would have failed with probability ${GATE_POWER * 100}%. See docs/verify.md.
With --stack, the weight, the gateway address and the port default to the stack's outputs (v2Weight,
ingressAddress, gatewayPort), and on a local stack the gateway's own split is read too: each gateway pod's
Envoy upstream_cx_total per subset, before and after the run, reported beside the replies' split (it does
not change the verdict or the exit code).
exit codes: 0 consistent, 1 inconsistent, 2 inconclusive (errors, no replies, or too few replies to
catch a --min-detectable error), 64 usage`,
    options: {
        host: { type: "string" },
        port: { type: "string" },
        "expect-weight": { type: "string" },
        stack: { type: "string" },
        connections: { type: "string", default: "1000" },
        concurrency: { type: "string", default: "50" },
        "timeout-ms": { type: "string", default: "2000" },
        "v1-prefix": { type: "string", default: VERSIONS.stable.prefix },
        "v2-prefix": { type: "string", default: VERSIONS.canary.prefix },
        "max-error-rate": { type: "string", default: "0.01" },
        "min-detectable": { type: "string", default: String(GATE_MIN_DETECTABLE) },
        json: { type: "boolean", default: false },
    },
    async run(flags) {
        if (flags["expect-weight"] === undefined && !flags.stack) {
            throw new UsageError(
                "give the expected weight with --expect-weight, or --stack to read it from the stack's outputs",
            );
        }
        // Every flag is checked before the stack's outputs are read.
        const given = {
            expectedWeight:
                flags["expect-weight"] === undefined
                    ? undefined
                    : intFlag("expect-weight", flags["expect-weight"], 0, 100),
            port: flags.port === undefined ? undefined : intFlag("port", flags.port, 1, 65535),
            connections: intFlag("connections", flags.connections, 1, 1_000_000),
            concurrency: intFlag("concurrency", flags.concurrency, 1, 10_000),
            timeoutMs: intFlag("timeout-ms", flags["timeout-ms"], 1, 600_000),
            maxErrorRate: numberFlag("max-error-rate", flags["max-error-rate"], 0, 1),
            minDetectable: numberFlag("min-detectable", flags["min-detectable"], 0.01, 100),
        };
        // --stack fills in what the flags leave out: the weight, the gateway address and port from the outputs.
        const outputs = flags.stack ? await stackOutputs(flags.stack) : {};
        const outputHost =
            typeof outputs.ingressAddress === "string" && /^[\w.:-]+$/.test(outputs.ingressAddress)
                ? outputs.ingressAddress
                : undefined;
        const fromStack = (key: string, flag: string, min: number, max: number) => {
            const value = outputs[key];
            if (
                typeof value !== "number" ||
                !Number.isInteger(value) ||
                value < min ||
                value > max
            ) {
                throw new UsageError(
                    `stack ${flags.stack} has no output ${key} from ${min} to ${max} (got ${JSON.stringify(value)}); give --${flag}`,
                );
            }
            return value;
        };
        const opts: VerifyOptions = {
            host: flags.host ?? outputHost ?? "127.0.0.1",
            port:
                given.port ??
                (flags.stack
                    ? fromStack("gatewayPort", "port", 1, 65535)
                    : intFlag("port", undefined, 1, 65535)),
            connections: given.connections,
            concurrency: given.concurrency,
            timeoutMs: given.timeoutMs,
            expectedWeight: given.expectedWeight ?? fromStack("v2Weight", "expect-weight", 0, 100),
            prefixes: { v1: flags["v1-prefix"]!, v2: flags["v2-prefix"]! },
            maxErrorRate: given.maxErrorRate,
            minDetectable: given.minDetectable,
        };
        if (process.stderr.isTTY && !flags.json) opts.onProgress = progressBar;
        const source = flags.stack
            ? (() => {
                  try {
                      return gatewayCounterSourceFor(flags.stack);
                  } catch (err) {
                      return (err as Error).message;
                  }
              })()
            : "give --stack (a local stack) to read the gateway pods' own counters";
        const { report, gateway } = await verifyWithGateway(opts, source);
        process.stdout.write(
            flags.json
                ? `${JSON.stringify({ ...report, gateway })}\n`
                : `${formatReport(report)}\n${formatGatewaySide(gateway)}\n`,
        );
        return EXIT[report.verdict];
    },
});

function progressBar(done: number, total: number): void {
    if (done % Math.max(1, Math.floor(total / 100)) !== 0 && done !== total) return;
    const width = 30;
    const filled = Math.round((done / total) * width);
    process.stderr.write(`\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total}`);
    if (done === total) process.stderr.write("\n");
}

if (require.main === module) runCommand(command);
