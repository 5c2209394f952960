import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { POLICY_PACK_DIR } from "./engine";

export interface PolicyConfigOverrides {
    /** The environment's config file; defaults to policy/config/<stack>.json. */
    file?: string;
    /** An explicit step limit (shift --max-step), enforced whatever the environment's default level. */
    maxWeightStep?: number;
    /**
     * A return to the last good weight: max-weight-step is off for it. The pack judges every other update against
     * the weight the stack serves now (read from the stack's own state), so only a rollback needs saying so.
     */
    rollback?: boolean;
}

/**
 * The policy pack config for a stack: policy/config/<stack>.json when it exists (per-environment enforcement),
 * with the caller's overrides. `use` gets the path of a file written for it alone; the file and its folder are
 * removed once `use` settles.
 */
export async function withPolicyConfig<T>(
    stack: string,
    overrides: PolicyConfigOverrides,
    use: (file: string) => Promise<T>,
): Promise<T> {
    const base = overrides.file ?? path.join(POLICY_PACK_DIR, "config", `${stack}.json`);
    const config: Record<string, Record<string, unknown>> = fs.existsSync(base)
        ? JSON.parse(fs.readFileSync(base, "utf8"))
        : {};
    if (overrides.maxWeightStep !== undefined) {
        config["max-weight-step"] = {
            ...config["max-weight-step"],
            enforcementLevel: "mandatory",
            maxWeightStep: overrides.maxWeightStep,
        };
    }
    if (overrides.rollback)
        config["max-weight-step"] = { ...config["max-weight-step"], enforcementLevel: "disabled" };
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "asm-policy-"));
    try {
        const file = path.join(dir, `${stack}.json`);
        fs.writeFileSync(file, JSON.stringify(config, null, 2));
        return await use(file);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}
