/**
 * promote: carries the rollout state (v2Weight and the images) from one stack to the next
 * (dev -> staging -> prod), previews the target with the policy pack and its environment's policy
 * config, and applies only with --yes. Secret values are decrypted from the source and re-encrypted
 * with the target stack's secrets provider. Without --yes, or when the preview fails, the target's
 * config is restored: nothing changes.
 */
import { ConfigValue, Stack } from "@pulumi/pulumi/automation";
import { log } from "./log";
import {
    EngineOptions,
    POLICY_PACK_DIR,
    openStack,
    setSecretConfig,
    stateStoreOf,
} from "../engine/engine";
import { StackLockedError, assertUnlocked } from "../state/locks";
import { withPolicyConfig } from "../engine/policyConfig";
import { readStackFile } from "../engine/stackFiles";

/** The keys that make up a rollout's state; everything else (targets, clusters, secrets) belongs to each environment. */
export const ROLLOUT_KEYS = ["v2Weight", "image", "imageV1", "imageV2"] as const;

export interface PromoteOptions {
    from: string;
    to: string;
    yes: boolean;
    engine?: EngineOptions;
    /** Policy pack config file for the target; defaults to policy/config/<to>.json. */
    policyConfig?: string;
    onOutput?: (out: string) => void;
}

export interface PromoteResult {
    outcome: "applied" | "previewed" | "blocked";
    carried: Record<string, ConfigValue | null>;
    previewStdout: string;
    error?: string;
}

/** The rollout keys set in the stack's own file (project defaults are not state to carry), decrypted. */
async function readKeys(stack: Stack): Promise<Record<string, ConfigValue | null>> {
    const own = readStackFile(stack.name, stack.workspace.workDir);
    const values: Record<string, ConfigValue | null> = {};
    for (const key of ROLLOUT_KEYS) {
        values[key] = key in own ? await stack.getConfig(key) : null;
    }
    return values;
}

async function writeKeys(stack: Stack, values: Record<string, ConfigValue | null>): Promise<void> {
    for (const [key, value] of Object.entries(values)) {
        if (value?.secret) await setSecretConfig(stack, key, value.value);
        else if (value) await stack.setConfig(key, { value: value.value, secret: false });
        else await stack.removeConfig(key).catch(() => undefined);
    }
}

export async function promote(opts: PromoteOptions): Promise<PromoteResult> {
    if (opts.from === opts.to) throw new Error("promote needs two different stacks");
    const source = await openStack(opts.from, opts.engine);
    const target = await openStack(opts.to, opts.engine);
    // A target another job is updating (or rolling out) is left alone, at once.
    try {
        await assertUnlocked(stateStoreOf(target), opts.to);
    } catch (err) {
        if (!(err instanceof StackLockedError)) throw err;
        log("promote", `blocked: ${opts.to} is unchanged`);
        return { outcome: "blocked", carried: {}, previewStdout: "", error: err.message };
    }
    // Read before anything is written: a promotion that does not apply must leave the file as it was.
    const carried = await readKeys(source);
    if (!carried.v2Weight) throw new Error(`stack ${opts.from} has no v2Weight to promote`);
    const previous = await readKeys(target);
    log(
        "promote",
        `${opts.from} -> ${opts.to}: v2Weight ${previous.v2Weight?.value ?? "(unset)"} -> ${carried.v2Weight.value}`,
    );

    await writeKeys(target, carried);
    const result: PromoteResult = { outcome: "previewed", carried, previewStdout: "" };
    try {
        // The pack judges the weight step against the weight the target's own state says it serves.
        await withPolicyConfig(opts.to, { file: opts.policyConfig }, async (config) => {
            const policy = { policyPacks: [POLICY_PACK_DIR], policyPackConfigs: [config] };
            const preview = await target.preview({
                ...policy,
                diff: true,
                onOutput: opts.onOutput,
            });
            result.previewStdout = preview.stdout;
            if (!opts.yes) return;
            await target.up({ ...policy, onOutput: opts.onOutput });
            result.outcome = "applied";
        });
        if (result.outcome !== "applied") {
            await writeKeys(target, previous);
            log("promote", `preview only: ${opts.to} is unchanged; re-run with --yes to apply`);
            return result;
        }
        log("promote", `applied to ${opts.to}`);
        return result;
    } catch (err) {
        await writeKeys(target, previous);
        result.outcome = "blocked";
        result.error = (err as Error).message;
        log("promote", `blocked: ${opts.to} is unchanged`);
        return result;
    }
}
