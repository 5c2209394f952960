/** The README's Layout section matches the tree: every folder and top-level program file is listed, and every listed path exists. */
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { describe, it } from "node:test";
import { PROJECT_ROOT } from "../../tools/engine/engine";

/** Folders that are not the project's sources: installed packages, local state, outputs (bin/: the compiled program). */
const NOT_SOURCE = new Set(["node_modules", ".git", ".local", "rendered", "bin"]);

function layoutPaths(): string[] {
    const readme = fs.readFileSync(path.join(PROJECT_ROOT, "README.md"), "utf8");
    const block = readme.split("## Layout\n")[1]?.split("```")[1];
    assert.ok(block, "README has a Layout section with a code block");
    return block
        .split("\n")
        .map((line) => line.split(/\s{2,}/)[0].trim())
        .filter(Boolean)
        .flatMap((first) => first.split(/,\s*/))
        .map((p) => p.replace(/\/$/, ""));
}

describe("README layout", () => {
    const listed = layoutPaths();

    it("lists every top-level folder, every folder of tools/, and the program's own files", () => {
        const folders = fs
            .readdirSync(PROJECT_ROOT, { withFileTypes: true })
            .filter((e) => e.isDirectory() && !NOT_SOURCE.has(e.name))
            .map((e) => e.name);
        const toolFolders = fs
            .readdirSync(path.join(PROJECT_ROOT, "tools"), { withFileTypes: true })
            .filter((e) => e.isDirectory())
            .map((e) => `tools/${e.name}`);
        const programFiles = fs.readdirSync(PROJECT_ROOT).filter((f) => f.endsWith(".ts"));
        for (const entry of [...folders, ...toolFolders, ...programFiles]) {
            assert.ok(
                listed.some((p) => p === entry || p.startsWith(`${entry}/`)),
                `${entry} is missing from the README's Layout`,
            );
        }
    });

    it("lists only paths that exist", () => {
        for (const p of listed.filter((p) => !p.includes("<"))) {
            assert.ok(
                fs.existsSync(path.join(PROJECT_ROOT, p)),
                `the README's Layout lists ${p}, which does not exist`,
            );
        }
    });
});
