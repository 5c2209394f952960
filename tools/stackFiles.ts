import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { PROJECT } from "../config";
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
