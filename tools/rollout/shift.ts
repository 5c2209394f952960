/**
 * shift: progressive traffic shifting from the stack. Each step is a gated change of v2Weight (a preview with the policy pack, then `up` with it),
 * then a gate (verify against the gateway, or a command), an optional pause for manual promotion, and
 * automatic rollback to the last good weight when a step or its gate fails. Pulumi stays the only
 * writer of the weights: the tool refuses to start when the live weight differs from the stack's.
 */
import { spawnSync } from "child_process";
import * as readline from "readline";
import { Stack } from "@pulumi/pulumi/automation";
import { log } from "./log";
import {
    POLICY_PACK_DIR,
    PROJECT_ROOT,
    gatedUp,
    openStack,
    stateStoreOf,
    EngineOptions,
} from "../engine/engine";
import { HeldLock, StackLockedError, acquireRolloutLock, clearLockHint } from "../state/locks";
import { withPolicyConfig } from "../engine/policyConfig";
import { ROLLOUT_LOCK_ENV } from "../state/stackState";
import { currentVirtualService, routesOf } from "./routes";
import { formatReport } from "./verify";
import { formatGatewaySide, gatewayCounterSourceFor, verifyWithGateway } from "./gatewayCounts";
import * as path from "path";
import { ECHO_PREFIXES, VERSIONS } from "../../components/model";
import { meshEnv, waitForReceivedSplit } from "../cluster/mesh";
import { splitBySubset } from "../../components/weights";
import { readStackSettings } from "../engine/stackFiles";
import { ConnectionWatch, connectionNotice, settleRefusal } from "./drain";

export type Gate =
    | { kind: "none" }
    | { kind: "command"; command: string }
    | {
          kind: "verify";
          host: string;
          port: number;
          connections: number;
          concurrency: number;
          timeoutMs: number;
          maxErrorRate: number;
      };

export interface ShiftOptions {
    stack: string;
    steps: number[];
    gate: Gate;
    /** Ask before each next step (needs a terminal unless `confirm` is given). */
    pause: boolean;
    /** Start even when the live weight differs from the stack's. */
    force: boolean;
    /** Largest allowed step, enforced by the policy pack as mandatory (against the weight the stack serves). */
    maxStep?: number;
    /** Wait after each update before the gate: the mesh applies a new route within seconds, not at once. */
    settleSeconds?: number;
    /**
     * Resolves once the target serves the new weight, before the gate (and the settle time). On the local
     * cluster: once every gateway pod received the new split from istiod. A rejection fails the step's gate.
     */
    awaitApplied?: (weight: number) => Promise<void>;
    /**
     * The settle time the operator asked for, if any: one shorter than the drain time is refused unless `force`
     * or `drainWait` (a default settle time is not the operator's choice and is never refused).
     */
    requestedSettleSeconds?: number;
    /** Reads the drain time and open connections, to say before each step what it does to them. */
    connections?: ConnectionWatch;
    /** After each update, wait until no gateway drains a filter chain before the gate and the next step. */
    drainWait?: boolean;
    engine?: EngineOptions;
    /** Working directory of the project (stack files, rendered output). */
    workDir?: string;
    /** Answers the pause prompt; defaults to reading the terminal. */
    confirm?: (question: string) => Promise<boolean>;
}

export interface ShiftResult {
    /** locked: another rollout or update holds the stack; nothing was changed by this run. */
    outcome: "completed" | "rolled-back" | "refused" | "stopped" | "locked";
    /** Why it was locked or refused. */
    message?: string;
    finalWeight: number;
    steps: {
        weight: number;
        status: "applied" | "gate-failed" | "up-failed" | "stopped";
        detail?: string;
    }[];
}

/**
 * The v2 weight the target holds now (render: the rendered file; local: the cluster; asm: the ASM instance), undefined
 * when it holds no routes yet, or why it cannot be read.
 */
async function liveWeight(
    stack: Stack,
    workDir: string,
): Promise<{ weight?: number; unreadable?: string }> {
    try {
        const vs = await currentVirtualService(stack.name, workDir, { stack });
        return {
            weight: routesOf(vs)[0]?.destinations.find((d) => d.subset === VERSIONS.canary.subset)
                ?.weight,
        };
    } catch (err) {
        return { unreadable: (err as Error).message };
    }
}

async function declaredWeight(stack: Stack): Promise<number> {
    return Number((await stack.getConfig("v2Weight")).value);
}

/**
 * One step, with the environment's policy config: the pack judges it against the weight the stack serves now
 * (max-weight-step), except a rollback, which returns to the last good weight.
 */
async function applyWeight(
    stack: Stack,
    lock: HeldLock,
    weight: number,
    limits: { maxWeightStep?: number; rollback?: boolean },
): Promise<void> {
    await stack.setConfig("v2Weight", { value: String(weight) });
    await withPolicyConfig(stack.name, limits, (config) =>
        gatedUp(stack, {
            ownLock: lock.key,
            policyPacks: [POLICY_PACK_DIR],
            policyPackConfigs: [config],
        }),
    );
}

/** The update was refused because someone else holds the stack (our lock check, or the CLI's own). */
function lockedOut(err: unknown): boolean {
    return (
        err instanceof StackLockedError ||
        /the stack is currently locked/.test((err as Error)?.message ?? "")
    );
}

async function runGate(
    gate: Gate,
    weight: number,
    stack: string,
    workDir: string,
): Promise<{ ok: boolean; detail: string }> {
    switch (gate.kind) {
        case "none":
            return { ok: true, detail: "no gate" };
        case "command": {
            const r = spawnSync("bash", ["-c", gate.command], {
                env: { ...process.env, V2_WEIGHT: String(weight), STACK: stack },
                encoding: "utf8",
            });
            return {
                ok: r.status === 0,
                detail: `gate command exited ${r.status}${r.stderr ? `: ${r.stderr.trim().slice(0, 500)}` : ""}`,
            };
        }
        case "verify": {
            // The gateway's own split is reported beside the gate's; the gate decides on the replies alone.
            const { report, gateway } = await verifyWithGateway(
                { ...gate, expectedWeight: weight, prefixes: ECHO_PREFIXES },
                counterSource(stack, workDir),
            );
            return {
                ok: report.verdict === "consistent",
                detail: `${formatReport(report)}\n${formatGatewaySide(gateway)}`,
            };
        }
    }
}

/** The gateway counters of the stack, or why there are none (an unreadable stack file is one reason). */
function counterSource(stack: string, workDir: string) {
    try {
        return gatewayCounterSourceFor(stack, workDir);
    } catch (err) {
        return (err as Error).message;
    }
}

function askTerminal(question: string): Promise<boolean> {
    if (!process.stdin.isTTY) throw new Error("--pause needs a terminal to ask for promotion");
    const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
    return new Promise((resolve) =>
        rl.question(`${question} [y/N] `, (answer) => {
            rl.close();
            resolve(/^y(es)?$/i.test(answer.trim()));
        }),
    );
}

/**
 * How a step waits for its weight to be served: on the local cluster, until every gateway pod received the
 * new split from istiod; elsewhere there is nothing to watch (undefined: the caller's settle time applies).
 */
export function appliedWaiterFor(
    stack: string,
    workDir = PROJECT_ROOT,
): ShiftOptions["awaitApplied"] {
    const settings = readStackSettings(stack, workDir);
    if (settings.target !== "local") return undefined;
    const env = meshEnv(path.resolve(workDir, settings.localKubeconfig));
    return async (weight) => {
        await waitForReceivedSplit(env, settings.gatewayPort, splitBySubset(weight));
    };
}

export async function shift(opts: ShiftOptions): Promise<ShiftResult> {
    const workDir = opts.workDir ?? PROJECT_ROOT;
    const stack = await openStack(opts.stack, { ...opts.engine, workDir });
    // One rollout of a stack at a time, across machines: held in the backend for the whole rollout,
    // gates and pauses included, so two shifts never interleave their steps.
    let lock: HeldLock;
    try {
        lock = await acquireRolloutLock(stateStoreOf(stack), opts.stack);
    } catch (err) {
        if (!(err instanceof StackLockedError)) throw err;
        log("shift", `refusing to start: ${err.message}`);
        return {
            outcome: "locked",
            message: err.message,
            finalWeight: await declaredWeight(stack),
            steps: [],
        };
    }
    // The program refuses every update while a rollout lock is held (preflight/rolloutLock.ts); this rollout's own
    // engine runs carry its key, which tells them apart.
    stack.workspace.envVars[ROLLOUT_LOCK_ENV] = lock.key;
    try {
        return await shiftHoldingLock(opts, stack, workDir, lock);
    } finally {
        delete stack.workspace.envVars[ROLLOUT_LOCK_ENV];
        await lock.release();
    }
}

async function shiftHoldingLock(
    opts: ShiftOptions,
    stack: Stack,
    workDir: string,
    lock: HeldLock,
): Promise<ShiftResult> {
    const declared = await declaredWeight(stack);
    const read = await liveWeight(stack, workDir);
    const result: ShiftResult = { outcome: "completed", finalWeight: declared, steps: [] };
    if (read.unreadable !== undefined && !opts.force) {
        // Without the live routes drift cannot be ruled out; the guard refuses rather than assume there is none.
        const message = `cannot read the routes the target holds, to check them for drift: ${read.unreadable}. Fix the access, or pass --force to shift without the check.`;
        log("shift", `refusing to start: ${message}`);
        return { ...result, outcome: "refused", message };
    }
    const live = read.weight;
    if (live !== undefined && live !== declared && !opts.force) {
        log(
            "shift",
            `refusing to start: the target holds v2 weight ${live} but stack ${opts.stack} declares ${declared} (drift; someone else changed the routes). Reconcile with \`up --refresh\`, or pass --force.`,
        );
        return { ...result, outcome: "refused" };
    }
    let lastGood = live ?? declared;
    const port = readStackSettings(opts.stack, workDir).gatewayPort;
    const firstProbe = await opts.connections?.probe();
    if (opts.drainWait && !opts.connections?.waitDrained) {
        const message = `--drain wait needs the local target: the gateways' drain state cannot be read from here`;
        log("shift", `refusing to start: ${message}`);
        return { ...result, outcome: "refused", message };
    }
    const refusal =
        firstProbe &&
        settleRefusal({
            settleSeconds: opts.requestedSettleSeconds,
            drainSeconds: firstProbe.drainSeconds,
            drainWait: !!opts.drainWait,
            force: opts.force,
        });
    if (refusal) {
        log("shift", `refusing to start: ${refusal}`);
        return { ...result, outcome: "refused", message: refusal };
    }
    log(
        "shift",
        `stack ${opts.stack}: starting at v2 weight ${lastGood}; steps ${opts.steps.join(" -> ")}`,
    );

    const rollback = async () => {
        log("shift", `rolling back to the last good weight ${lastGood}`);
        // A rollback is never held back by the step limit: returning to a known-good weight is always allowed.
        await applyWeight(stack, lock, lastGood, { rollback: true });
        result.outcome = "rolled-back";
        result.finalWeight = lastGood;
        log("shift", `rolled back: v2 weight ${lastGood}`);
    };

    for (const [i, weight] of opts.steps.entries()) {
        log("shift", `step ${i + 1}/${opts.steps.length}: v2 weight ${lastGood} -> ${weight}`);
        if (opts.connections) {
            const info = i === 0 && firstProbe ? firstProbe : await opts.connections.probe();
            log("shift", connectionNotice(lastGood, weight, port, info));
        }
        try {
            await applyWeight(stack, lock, weight, { maxWeightStep: opts.maxStep });
        } catch (err) {
            if (lockedOut(err)) {
                // Someone ran a plain update meanwhile: nothing of this step was applied, and a rollback would
                // fight that update. The target keeps the last good weight; the stack file says what was tried.
                await stack.setConfig("v2Weight", { value: String(lastGood) });
                const message = `${(err as Error).message
                    .split("\n")
                    .filter((l) => /lock|created by|pulumi cancel/.test(l))
                    .join("\n")}\n${clearLockHint(opts.stack)}`;
                log(
                    "shift",
                    `step ${weight} not applied: the stack is locked by another job\n${message}`,
                );
                result.steps.push({ weight, status: "up-failed", detail: message });
                return { ...result, outcome: "locked", message };
            }
            const detail = (err as Error).message
                .split("\n")
                .filter((l) => /error|violation|mandatory/i.test(l))
                .slice(0, 10)
                .join("\n");
            result.steps.push({ weight, status: "up-failed", detail });
            log("shift", `step ${weight} failed to apply:\n${detail}`);
            await rollback();
            return result;
        }
        let applied: string | undefined;
        if (opts.awaitApplied) {
            const started = Date.now();
            try {
                await opts.awaitApplied(weight);
                log(
                    "shift",
                    `the gateway serves v2 weight ${weight} (${Date.now() - started} ms after the update)`,
                );
            } catch (err) {
                applied = (err as Error).message;
            }
        }
        if (opts.drainWait && applied === undefined && opts.connections?.waitDrained) {
            const { drainSeconds } = await opts.connections.probe();
            try {
                const ms = await opts.connections.waitDrained((drainSeconds + 30) * 1000);
                log(
                    "shift",
                    `no gateway drains a filter chain any more (${ms} ms after the gateway was seen serving the new split)`,
                );
            } catch (err) {
                applied = (err as Error).message;
            }
        }
        if (opts.settleSeconds) await new Promise((r) => setTimeout(r, opts.settleSeconds! * 1000));
        const gate =
            applied === undefined
                ? await runGate(opts.gate, weight, opts.stack, workDir)
                : { ok: false, detail: applied };
        log("shift", `gate at ${weight}: ${gate.ok ? "passed" : "FAILED"}\n${gate.detail}`);
        if (!gate.ok) {
            result.steps.push({ weight, status: "gate-failed", detail: gate.detail });
            await rollback();
            return result;
        }
        result.steps.push({ weight, status: "applied" });
        lastGood = weight;
        result.finalWeight = weight;
        const next = opts.steps[i + 1];
        if (opts.pause && next !== undefined) {
            const go = await (opts.confirm ?? askTerminal)(
                `v2 weight is ${weight}. Promote to ${next}?`,
            );
            if (!go) {
                log("shift", `stopped by the operator at ${weight}`);
                result.outcome = "stopped";
                return result;
            }
        }
    }
    log("shift", `completed: v2 weight ${lastGood}`);
    return result;
}
