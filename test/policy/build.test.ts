import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_ROOT } from "../../tools/engine";
import { copyPolicyPack } from "../support/policyPack";

/**
 * The compiled policy pack (policy/build.js) and its entry (policy/main.js) on a copy of the pack: the compiled pack
 * runs only when it was built from exactly the sources there are now; after any edit the sources run.
 */
describe("policy pack: compiled only while current", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "asm-policy-build-"));
    const pack = path.join(root, "policy");
    const build = require(
        path.join(PROJECT_ROOT, "policy/build.js"),
    ) as typeof import("../../policy/build");

    before(() => {
        copyPolicyPack(root);
    });
    after(() => fs.rmSync(root, { recursive: true, force: true }));

    /** Changes a file, checks the build is stale for that reason, puts the file back and checks it is current again. */
    function staleWhile(file: string, change: (file: string) => void, reason: string): void {
        const original = fs.readFileSync(file);
        change(file);
        assert.equal(build.staleness(pack), reason);
        assert.equal(build.currentEntry(pack), undefined);
        fs.writeFileSync(file, original);
        assert.equal(build.staleness(pack), undefined);
    }
    const edit = (file: string) => fs.appendFileSync(file, "\n// edited\n");

    it("is stale before the first build, and the entry then runs the sources", () => {
        assert.equal(build.staleness(pack), "not built");
        assert.equal(build.currentEntry(pack), undefined);
    });

    /** `node policy/build.js` on the copy, as setup and the tools run it: its exit code and what it printed. */
    const buildCommand = () =>
        new Promise<{ code: number | null; stderr: string }>((resolve) => {
            let stderr = "";
            const child = spawn(process.execPath, [path.join(pack, "build.js")], {
                stdio: ["ignore", "ignore", "pipe"],
            });
            child.stderr.on("data", (d) => (stderr += d));
            // "close": its output is all read by then.
            child.on("close", (code) => resolve({ code, stderr }));
        });

    it("two builds at once both succeed, and leave a current build whose entry runs the compiled pack", async () => {
        const runs = await Promise.all([buildCommand(), buildCommand()]);
        assert.deepEqual(
            runs.map((r) => r.code),
            [0, 0],
            runs.map((r) => r.stderr).join("\n"),
        );
        assert.equal(build.staleness(pack), undefined);
        const entry = build.currentEntry(pack)!;
        assert.ok(
            entry.startsWith(path.join(pack, "bin") + path.sep) &&
                entry.endsWith(path.join("policy", "index.js")),
            entry,
        );
        assert.match(fs.readFileSync(entry, "utf8"), /new policy_1\.PolicyPack\("asm-tcp-shift"/);
    });

    it("is stale while a policy, the pack's index, or what it imports from the project differs from what was built", () => {
        staleWhile(path.join(pack, "policies/routing.ts"), edit, "policies/routing.ts changed");
        staleWhile(path.join(pack, "index.ts"), edit, "index.ts changed");
        staleWhile(path.join(root, "components/model.ts"), edit, "../components/model.ts changed");
    });

    it("is stale while a file appears beside the sources (an import could resolve to it), or one of them is gone", () => {
        const extra = path.join(pack, "policies/extra.ts");
        fs.writeFileSync(extra, "export const extra = 1;\n");
        assert.equal(build.staleness(pack), "files were added to or removed from policies");
        fs.rmSync(extra);
        // A tool's settings beside the sources: no import resolves to a dot name without naming it.
        const settings = path.join(pack, "policies/.prettierrc.json");
        fs.writeFileSync(settings, "{}\n");
        assert.equal(build.staleness(pack), undefined);
        fs.rmSync(settings);
        staleWhile(
            path.join(pack, "policies/workloads.ts"),
            (file) => fs.rmSync(file),
            "policies/workloads.ts is gone",
        );
    });

    it("is stale while the compiler settings, the installed libraries or the compiled entry differ", () => {
        staleWhile(path.join(pack, "tsconfig.json"), edit, "tsconfig.json changed");
        staleWhile(
            path.join(root, "package-lock.json"),
            (file) => fs.appendFileSync(file, "\n"),
            "../package-lock.json changed",
        );
        staleWhile(
            build.currentEntry(pack)!,
            (file) => fs.rmSync(file),
            "the compiled entry is missing",
        );
    });

    it("records nothing when the sources do not type-check: they keep running, and report the error", async () => {
        const routing = path.join(pack, "policies/routing.ts");
        const original = fs.readFileSync(routing);
        fs.appendFileSync(routing, "\nexport const broken: number = 'not a number';\n");
        const { code, stderr } = await buildCommand();
        assert.equal(code, 1);
        assert.match(
            stderr,
            /runs from its TypeScript sources, which have errors:\n.*routing\.ts.*Type 'string' is not assignable to type 'number'.*\n?$/,
        );
        assert.equal(build.staleness(pack), "policies/routing.ts changed");
        fs.writeFileSync(routing, original);
        assert.equal(build.staleness(pack), undefined);
    });
});
