/**
 * Which of the project's config keys the stack stores encrypted. `pulumi config set --secret` writes the value as
 * `{secure: <ciphertext>}` in the stack settings file `Pulumi.<stack>.yaml` (for a `--path` key, at that path
 * inside the key's object), which is the documented file format; the SDK gives a program the decrypted values
 * but no public way to ask which were secrets, so the program reads the file the engine read.
 */
import * as fs from "fs";
import * as path from "path";
import { parseDocument } from "yaml";
import { ConfigError, PROJECT } from "./errors";

/** Whether a config value is an encrypted one, `{secure: <ciphertext>}`, as the stack settings file stores it. */
export function isSecureValue(value: unknown): boolean {
    return (
        value !== null &&
        typeof value === "object" &&
        !Array.isArray(value) &&
        Object.keys(value).length === 1 &&
        "secure" in value
    );
}

/** Whether a config value is, or holds, an encrypted value. */
function holdsSecure(value: unknown): boolean {
    if (isSecureValue(value)) return true;
    return value !== null && typeof value === "object" && Object.values(value).some(holdsSecure);
}

/** The keys of the project's namespace stored encrypted in the text of a stack settings file. */
export function secureKeysOf(stackFileText: string, file = "the stack settings file"): Set<string> {
    const doc = parseDocument(stackFileText, { prettyErrors: false });
    if (doc.errors.length > 0) {
        // Position only: the file may hold plain-text values a message must not quote.
        const [first] = doc.errors;
        const at = first.linePos?.[0];
        throw new ConfigError([
            {
                key: "config",
                message: `${file} is not valid YAML (${first.code}${at ? ` at line ${at.line}, column ${at.col}` : ""})`,
            },
        ]);
    }
    const config = (doc.toJS() as { config?: Record<string, unknown> } | null)?.config ?? {};
    const keys = new Set<string>();
    for (const [fullKey, value] of Object.entries(config)) {
        if (fullKey.startsWith(`${PROJECT}:`) && holdsSecure(value))
            keys.add(fullKey.slice(PROJECT.length + 1));
    }
    return keys;
}

/**
 * The keys stored encrypted for `stack`, from `Pulumi.<stack>.yaml` in the project folder (the runner's working
 * folder). A stack without a settings file (its config given another way) has none there.
 */
export function storedSecretKeys(stack: string, projectDir = process.cwd()): Set<string> {
    const file = path.join(projectDir, `Pulumi.${stack}.yaml`);
    let text: string;
    try {
        text = fs.readFileSync(file, "utf8");
    } catch {
        return new Set();
    }
    return secureKeysOf(text, path.basename(file));
}
