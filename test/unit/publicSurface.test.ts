/**
 * The project runs on its dependencies' public surface only: no file imports a Pulumi package below its public
 * entry points, and nothing patches Node's module loader or turns on V8 internals for the engine's processes.
 */
import { strict as assert } from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { describe, it } from "node:test";
import { PROJECT_ROOT } from "../../tools/engine/engine";

/** Entry points the Pulumi packages document (the SDK's root and its Automation API; every other package's root). */
const PUBLIC_ENTRY_POINTS = new Set(["@pulumi/pulumi/automation"]);

/** The project's own source files, as git tracks them. */
function trackedSources(): string[] {
    return execFileSync(
        "git",
        ["ls-files", "*.ts", "*.js", "*.cjs", "*.mjs", "*.sh", "*.json", "*.yaml"],
        {
            cwd: PROJECT_ROOT,
            encoding: "utf8",
        },
    )
        .split("\n")
        .filter((f) => f && f !== "package-lock.json" && fs.existsSync(path.join(PROJECT_ROOT, f)));
}

/** A module specifier a file imports, requires or loads dynamically. */
const IMPORTED = /(?:from\s+|require\(\s*|import\(\s*)["'](@pulumi\/[^"']+)["']/g;

describe("public surface only", () => {
    const sources = trackedSources();
    const text = (file: string) => fs.readFileSync(path.join(PROJECT_ROOT, file), "utf8");

    it("finds the project's sources", () => assert.ok(sources.length > 50, String(sources.length)));

    it("imports each Pulumi package at its root or a documented entry point", () => {
        const deep: string[] = [];
        for (const file of sources.filter((f) => /\.(ts|js|cjs|mjs)$/.test(f))) {
            for (const [, spec] of text(file).matchAll(IMPORTED)) {
                const root = spec.split("/").slice(0, 2).join("/");
                if (spec !== root && !PUBLIC_ENTRY_POINTS.has(spec)) deep.push(`${file}: ${spec}`);
            }
        }
        assert.deepEqual(deep, []);
    });

    it("neither patches the module loader nor preloads code into the engine's Node.js processes", () => {
        // The needles are assembled so this file does not match itself.
        const needles = [["Module", "_load"].join("."), ["allow", "natives", "syntax"].join("-")];
        const found = sources.flatMap((file) =>
            needles.filter((n) => text(file).includes(n)).map((n) => `${file}: ${n}`),
        );
        assert.deepEqual(found, []);
        for (const script of ["scripts/engine-env.sh", "scripts/pulumi.sh", "scripts/test-all.sh"])
            assert.doesNotMatch(text(script), /NODE_OPTIONS=|--require/, script);
    });
});
