import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { PROJECT, Settings, parseSettings } from "../../config";
import { isSecureValue } from "../../config/storedSecrets";
import { PROJECT_ROOT } from "./engine";

/** The project's own config keys of a stack file (Pulumi.<stack>.yaml), without the namespace prefix. */
export function readStackFile(stack: string, workDir = PROJECT_ROOT): Record<string, any> {
    const file = path.join(workDir, `Pulumi.${stack}.yaml`);
    const doc = fs.existsSync(file) ? (parse(fs.readFileSync(file, "utf8")) ?? {}) : {};
    const config: Record<string, any> = {};
    for (const [key, value] of Object.entries<any>(doc.config ?? {})) {
        if (key.startsWith(`${PROJECT}:`)) config[key.slice(PROJECT.length + 1)] = value;
    }
    return config;
}

/**
 * A stack file's settings as the program would parse them, defaults included, so the tools never
 * restate a default (render folder, kubeconfig path, namespace, gateway port) the program owns.
 */
export function readStackSettings(stack: string, workDir = PROJECT_ROOT): Settings {
    if (!fs.existsSync(path.join(workDir, `Pulumi.${stack}.yaml`)))
        throw new Error(`stack ${stack} has no stack file Pulumi.${stack}.yaml in ${workDir}`);
    const own = readStackFile(stack, workDir);
    // A value stored with `config set --secret` is ciphertext here: the tools read none of those keys (only the
    // engine decrypts them), so it counts as unset rather than as a value to validate.
    const stored = (key: string) => {
        const value = own[key];
        return isSecureValue(value) ? undefined : value;
    };
    return parseSettings(
        (key) => {
            const value = stored(key);
            return value === undefined || typeof value === "string" ? value : JSON.stringify(value);
        },
        { isSecret: (key) => stored(key) === undefined && own[key] !== undefined },
    );
}
