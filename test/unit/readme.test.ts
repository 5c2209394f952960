/**
 * The README a newcomer reads first: two commands at the top, under 300 lines, every link to the docs resolving,
 * and a Layout that names only paths that exist.
 */
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { describe, it } from "node:test";
import { PROJECT_ROOT } from "../../tools/engine/engine";

const read = (file: string) => fs.readFileSync(path.join(PROJECT_ROOT, file), "utf8");
const README = read("README.md");

/** Relative Markdown link targets of a file, without anchors. */
function relativeLinks(file: string): string[] {
    return [...read(file).matchAll(/\]\(([^)\s]+)\)/g)]
        .map(([, target]) => target.split("#")[0])
        .filter((target) => target && !/^[a-z]+:/.test(target));
}

describe("README", () => {
    it("opens with exactly two commands: set up and up the local stack, and every test tier", () => {
        const first = README.split("```")[1];
        const commands = first
            .split("\n")
            .slice(1)
            .map((line) => line.split("#")[0].trim())
            .filter(Boolean);
        assert.deepEqual(commands, ["npm run local", "npm test"]);
        const scripts = JSON.parse(read("package.json")).scripts;
        assert.ok(scripts.local && scripts.test);
        assert.match(read(".ci/run"), /^npm test$/m, "CI runs the README's test command");
    });

    it("stays under 300 lines", () => assert.ok(README.split("\n").length < 300));

    it("links only to files that exist, and so does every page of docs/", () => {
        const pages = [
            "README.md",
            ...fs.readdirSync(path.join(PROJECT_ROOT, "docs")).map((f) => `docs/${f}`),
        ];
        const missing = pages.flatMap((page) =>
            relativeLinks(page)
                .map((target) => path.join(path.dirname(page), target))
                .filter((target) => !fs.existsSync(path.join(PROJECT_ROOT, target)))
                .map((target) => `${page} -> ${target}`),
        );
        assert.deepEqual(missing, []);
        assert.ok(relativeLinks("README.md").length >= 6, "the README links its docs");
    });

    it("names only paths that exist in its Layout", () => {
        const block = README.split("## Layout\n")[1]?.split("```")[1];
        assert.ok(block, "README has a Layout section with a code block");
        const listed = block
            .split("\n")
            .map((line) => line.split(/\s{2,}/)[0].trim())
            .filter(Boolean)
            .flatMap((first) => first.split(/,\s*/))
            .map((p) => p.replace(/\/$/, ""));
        assert.ok(listed.length > 10);
        for (const p of listed)
            assert.ok(
                fs.existsSync(path.join(PROJECT_ROOT, p)),
                `the Layout lists ${p}, which does not exist`,
            );
    });
});
