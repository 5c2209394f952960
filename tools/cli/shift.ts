/** npm run shift -- --stack NAME --steps W1,W2,...: progressive, gated traffic shifting (see tools/rollout/shift.ts). */
import { Gate, appliedWaiterFor, shift } from "../rollout/shift";
import { connectionWatchFor } from "../rollout/drain";
import {
    UsageError,
    choiceFlag,
    defineCommand,
    intFlag,
    required,
    runCommand,
    weightFlag,
} from "./cli";

export const EXIT = { completed: 0, "rolled-back": 1, refused: 3, stopped: 3, locked: 3 } as const;

export const command = defineCommand({
    name: "shift",
    usage: `usage: shift --stack NAME --steps W1,W2,... [--gate verify|command|none]
             [--verify-host 127.0.0.1] [--verify-port PORT] [--connections 1000] [--concurrency 50]
             [--gate-command CMD] [--pause] [--max-step N] [--settle-seconds S] [--drain wait]
             [--force] [--json]

Each step: preview with the policy pack, then up, of v2Weight; then the gate; a failed step or gate rolls back to the last
good weight. On a local stack each step first waits until the gateway received the new split from
istiod (settle time 0 unless given); elsewhere it waits --settle-seconds (default 5). The gate command
sees V2_WEIGHT and STACK. One shift per stack at a time (a rollout lock in the backend).
Before each step it says what the step does to open connections: a weight change replaces the port's
filter chain; the connections open on it (counted on a local stack) are closed when the drain time ends.
--drain wait (local stack): after each update, wait until no gateway drains a filter chain before the gate
and the next step. A --settle-seconds shorter than the drain time is refused unless --drain wait or --force.
exit codes: 0 completed, 1 rolled back or failed, 3 refused (drift, locked by another job) or stopped, 64 usage`,
    options: {
        stack: { type: "string" },
        steps: { type: "string" },
        gate: { type: "string", default: "verify" },
        "gate-command": { type: "string" },
        "verify-host": { type: "string", default: "127.0.0.1" },
        "verify-port": { type: "string" },
        connections: { type: "string", default: "1000" },
        concurrency: { type: "string", default: "50" },
        pause: { type: "boolean", default: false },
        "max-step": { type: "string" },
        "settle-seconds": { type: "string" },
        drain: { type: "string" },
        force: { type: "boolean", default: false },
        json: { type: "boolean", default: false },
    },
    async run(flags) {
        const stack = required("stack", flags.stack);
        const steps = required("steps", flags.steps, "10,20,50,100")
            .split(",")
            .map((step) => weightFlag("steps", step));
        const gate = gateOf(flags);
        const maxStep =
            flags["max-step"] === undefined
                ? undefined
                : intFlag("max-step", flags["max-step"], 1, 100);
        const settleSeconds =
            flags["settle-seconds"] === undefined
                ? undefined
                : intFlag("settle-seconds", flags["settle-seconds"], 0, 3600);
        if (flags.pause && !process.stdin.isTTY)
            throw new UsageError("--pause needs a terminal to ask for promotion");
        const drainWait =
            flags.drain !== undefined &&
            choiceFlag("drain", flags.drain, ["wait"] as const) === "wait";
        const awaitApplied = appliedWaiterFor(stack);
        const result = await shift({
            stack,
            awaitApplied,
            steps,
            gate,
            pause: flags.pause!,
            force: flags.force!,
            maxStep,
            // Where the gateway's own config is watched, no fixed wait is needed.
            settleSeconds: settleSeconds ?? (awaitApplied ? 0 : 5),
            requestedSettleSeconds: settleSeconds,
            connections: connectionWatchFor(stack),
            drainWait,
        });
        if (flags.json) process.stdout.write(`${JSON.stringify(result)}\n`);
        return EXIT[result.outcome];
    },
});

function gateOf(flags: {
    gate?: string;
    "gate-command"?: string;
    "verify-host"?: string;
    "verify-port"?: string;
    connections?: string;
    concurrency?: string;
}): Gate {
    switch (choiceFlag("gate", flags.gate, ["verify", "command", "none"] as const)) {
        case "none":
            return { kind: "none" };
        case "command":
            if (!flags["gate-command"]) throw new UsageError("--gate command needs --gate-command");
            return { kind: "command", command: flags["gate-command"] };
        case "verify":
            if (flags["verify-port"] === undefined)
                throw new UsageError("--gate verify needs --verify-port (the gateway's TCP port)");
            return {
                kind: "verify",
                host: flags["verify-host"]!,
                port: intFlag("verify-port", flags["verify-port"], 1, 65535),
                connections: intFlag("connections", flags.connections, 1, 1_000_000),
                concurrency: intFlag("concurrency", flags.concurrency, 1, 10_000),
                timeoutMs: 2000,
                maxErrorRate: 0.01,
            };
    }
}

if (require.main === module) runCommand(command);
