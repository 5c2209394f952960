import { after } from "node:test";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

/**
 * Temporary folders removed after the suite (or file) that made this maker: call it where a suite is defined,
 * then `make(prefix)` in the tests.
 */
export function tempDirs(): { make(prefix: string): string } {
    const made: string[] = [];
    after(() => made.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));
    return {
        make: (prefix) => {
            const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
            made.push(dir);
            return dir;
        },
    };
}
