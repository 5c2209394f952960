import * as fs from "fs";
import * as path from "path";
import { PROJECT_ROOT } from "../../tools/engine";

/**
 * Copies the policy pack to `<root>/policy` as the engine would find it: its files without node_modules and
 * bin/, its node_modules linked, and what it uses of the project (components/model.ts, the builder
 * tools/compile-ahead.js) beside it. Returns the pack's folder.
 */
export function copyPolicyPack(root: string): string {
    const pack = path.join(root, "policy");
    fs.cpSync(path.join(PROJECT_ROOT, "policy"), pack, {
        recursive: true,
        filter: (src) => !/[\\/](node_modules|bin)$/.test(src),
    });
    fs.symlinkSync(path.join(PROJECT_ROOT, "policy/node_modules"), path.join(pack, "node_modules"));
    for (const file of ["components/model.ts", "tools/compile-ahead.js"]) {
        fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
        fs.copyFileSync(path.join(PROJECT_ROOT, file), path.join(root, file));
    }
    return pack;
}
