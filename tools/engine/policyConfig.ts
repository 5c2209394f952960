import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { POLICY_PACK_DIR } from "./engine";

/**
 * The policy pack config for a stack: policy/config/<stack>.json when it exists (per-environment
 * enforcement), with the live v2 weight added so max-weight-step can judge the step. `use` gets the path of a
 * file written for it alone; the file and its folder are removed once `use` settles.
 */
export async function withPolicyConfig<T>(
    stack: string,
    previousV2Weight: number | undefined,
    overrides: { file?: string; maxWeightStep?: number },
    use: (file: string) => Promise<T>,
): Promise<T> {
    const base = overrides.file ?? path.join(POLICY_PACK_DIR, "config", `${stack}.json`);
    const config: Record<string, Record<string, unknown>> = fs.existsSync(base)
        ? JSON.parse(fs.readFileSync(base, "utf8"))
        : {};
    if (previousV2Weight !== undefined)
        config["max-weight-step"] = { ...config["max-weight-step"], previousV2Weight };
    // An explicit step limit (shift --max-step) is enforced, whatever the environment's default level.
    if (overrides.maxWeightStep !== undefined) {
        config["max-weight-step"] = {
            ...config["max-weight-step"],
            enforcementLevel: "mandatory",
            maxWeightStep: overrides.maxWeightStep,
        };
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "asm-policy-"));
    try {
        const file = path.join(dir, `${stack}.json`);
        fs.writeFileSync(file, JSON.stringify(config, null, 2));
        return await use(file);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}
