import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { PROJECT_ROOT, openStack } from "../../tools/engine";
import * as compileAhead from "../../tools/compile-ahead";

/** What a copy of the project needs to run as the engine runs it (node_modules is linked, not copied). */
const PROGRAM_FILES = [
    "index.ts",
    "program.ts",
    "config",
    "components",
    "preflight",
    "main.js",
    "tools/compile-ahead.js",
    "Pulumi.yaml",
    "package.json",
    "package-lock.json",
    "tsconfig.json",
];

/**
 * How the engine runs the program (the real CLI, language host and @pulumi/pulumi's runner, with the start-up
 * preload of the engine environment): compiled and current, the program runs from bin/ without the TypeScript
 * compiler; edited since its build, it runs from its sources, through the runner's ts-node, exactly as without a
 * build. On a copy of the project, so the test can edit a source.
 */
describe("program start: the compiled program while current, else the sources", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "asm-program-start-"));
    const report = path.join(dir, "loaded.jsonl");
    let stack: Stack;

    before(async () => {
        for (const entry of PROGRAM_FILES) {
            fs.mkdirSync(path.dirname(path.join(dir, entry)), { recursive: true });
            fs.cpSync(path.join(PROJECT_ROOT, entry), path.join(dir, entry), { recursive: true });
        }
        fs.symlinkSync(path.join(PROJECT_ROOT, "node_modules"), path.join(dir, "node_modules"));
        // Reports, as the program's process exits, which modules it had loaded.
        const reporter = path.join(dir, "report.cjs");
        fs.writeFileSync(
            reporter,
            `if (/[\\\\/]cmd[\\\\/]run[\\\\/]index\\.js$/.test(process.argv[1] || "")) process.on("exit", () => require("fs").appendFileSync(${JSON.stringify(report)}, JSON.stringify(Object.keys(require.cache)) + "\\n"));\n`,
        );
        assert.deepEqual(compileAhead.build(dir), []);
        stack = await openStack("start", {
            workDir: dir,
            backendUrl: `file://${path.join(dir, ".state")}`,
            env: { PULUMI_CONFIG_PASSPHRASE: "start", NODE_OPTIONS: `--require ${reporter}` },
        });
        await stack.setAllConfig({
            target: { value: "render" },
            v2Weight: { value: "20" },
            renderDir: { value: path.join(dir, "rendered") },
        });
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    /** A preview; returns the modules the program's process loaded and the changes it showed. */
    async function preview(): Promise<{ loaded: string[]; changes: Record<string, number> }> {
        fs.rmSync(report, { force: true });
        const result = await stack.preview();
        const lines = fs.readFileSync(report, "utf8").trim().split("\n");
        assert.equal(lines.length, 1, "one program process");
        return { loaded: JSON.parse(lines[0]), changes: result.changeSummary };
    }
    const loadedTypeScript = (loaded: string[]) =>
        loaded.some((f) => /[\\/]typescript[\\/]lib[\\/]typescript\.js$/.test(f));

    let compiledChanges: Record<string, number>;

    it("runs the compiled program, without the TypeScript compiler, and reads Pulumi.yaml from above bin/", async () => {
        const entry = compileAhead.currentEntry(dir)!;
        assert.ok(entry.startsWith(path.join(dir, "bin") + path.sep), entry);
        const { loaded, changes } = await preview();
        assert.ok(loaded.includes(entry), "the compiled entry ran");
        assert.ok(!loaded.includes(path.join(dir, "index.ts")));
        assert.equal(loadedTypeScript(loaded), false);
        // Every object of the program, the same as from the sources (next test).
        assert.ok((changes.create ?? 0) > 10, JSON.stringify(changes));
        compiledChanges = changes;
    });

    it("runs the sources of a program edited since its build, through the runner's ts-node, with the same result", async () => {
        fs.appendFileSync(
            path.join(dir, "components/echoService.ts"),
            "\n// edited after the build\n",
        );
        assert.equal(compileAhead.staleness(dir), "components/echoService.ts changed");
        const { loaded, changes } = await preview();
        assert.ok(loaded.includes(path.join(dir, "index.ts")));
        assert.ok(loaded.includes(path.join(dir, "components/echoService.ts")));
        assert.ok(!loaded.some((f) => f.startsWith(path.join(dir, "bin") + path.sep)));
        assert.equal(loadedTypeScript(loaded), true);
        assert.deepEqual(changes, compiledChanges);
    });
});
