/**
 * The stack's config as the program reads it from the engine: the settings, the kubeconfig secrets, and the
 * rules for what may be stored as a secret. Only this module of config/ loads @pulumi/pulumi, so the tools that
 * parse stack files through `config/` do not.
 */
import * as pulumi from "@pulumi/pulumi";
import { ConfigError, ConfigProblem, PROJECT } from "./errors";
import { unknownNameMessage } from "./fields";
import { SETTING_KEYS } from "./keys";
import { Settings, parseSettings } from "./settings";
import { storedSecretKeys } from "./storedSecrets";

/** Secret config, read only through Pulumi's secret channel. */
export interface StackSecrets {
    /** kubeconfig of the ACK cluster (data plane). */
    dataPlaneKubeconfig?: pulumi.Output<string>;
    /** kubeconfig of the ASM instance (control plane); see README for the intranet-endpoint caveat. */
    controlPlaneKubeconfig?: pulumi.Output<string>;
}

export const SECRET_KEYS = ["dataPlaneKubeconfig", "controlPlaneKubeconfig"] as const;
/** Settings that may be stored as secrets; the program keeps them secret in every resource and output. */
export const SECRET_CAPABLE_KEYS = ["image", "imageV1", "imageV2"] as const;
/** Every key of the project's namespace the program reads; any other is a slip the program would ignore. */
export const CONFIG_KEYS: readonly string[] = [...SETTING_KEYS, ...SECRET_KEYS];

/** Reads and validates the stack config; throws a {@link ConfigError} naming each bad key before any resource exists. */
export function readStackConfig(
    storedSecrets: ReadonlySet<string> = storedSecretKeys(pulumi.getStack()),
): { settings: Settings; secrets: StackSecrets } {
    const config = new pulumi.Config(PROJECT);
    const secretKeys = new Set<string>(SECRET_KEYS);
    const isSecret = (key: string) => storedSecrets.has(key);
    // Every problem at once, settings and secrets alike, so one round of edits fixes them all.
    const problems: ConfigProblem[] = [];
    let settings: Settings | undefined;
    try {
        settings = parseSettings((key) => (secretKeys.has(key) ? undefined : config.get(key)), {
            isSecret,
        });
    } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        problems.push(...err.problems);
    }
    const target = settings?.target ?? config.get("target") ?? "asm";
    const secrets: StackSecrets = {};
    for (const key of SECRET_KEYS) {
        const fullKey = `${PROJECT}:${key}`;
        // Read raw: Config.get on a secret key would log a warning for doing exactly this check.
        const present = pulumi.runtime.getConfig(fullKey) !== undefined;
        if (present && !isSecret(key)) {
            problems.push({
                key,
                message: `holds a kubeconfig in plain text; set it with \`pulumi config set --secret ${key} < file\``,
            });
        } else if (present) {
            secrets[key] = config.requireSecret(key);
        } else if (target === "asm") {
            problems.push({
                key,
                message:
                    'is required when target is "asm": a kubeconfig, stored with `pulumi config set --secret`',
            });
        }
    }
    const known = new Set<string>(CONFIG_KEYS);
    // Any other setting stored as a secret would be written in plain text into the objects and outputs in the
    // state (a shared bucket, for a team): refuse it rather than leak it.
    const capable = new Set<string>([...SECRET_KEYS, ...SECRET_CAPABLE_KEYS]);
    for (const fullKey of Object.keys(pulumi.runtime.allConfig())) {
        if (!fullKey.startsWith(`${PROJECT}:`)) continue;
        const key = fullKey.slice(PROJECT.length + 1);
        if (!known.has(key)) {
            // A misspelt key would be ignored and its default used, unseen.
            problems.push({ key, message: unknownNameMessage("key", key, CONFIG_KEYS) });
        } else if (!capable.has(key) && isSecret(key)) {
            problems.push({
                key,
                message:
                    "is stored as a secret, but its value is written in plain text into Kubernetes objects and stack outputs; set it without --secret (only kubeconfigs and images can be kept secret)",
            });
        }
    }
    if (problems.length > 0 || !settings) throw new ConfigError(problems);
    return { settings, secrets };
}
