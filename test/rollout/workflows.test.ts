/**
 * The workflows under actionlint (syntax, expressions, the inputs and outputs they name, shellcheck on their
 * scripts when it is installed). What the workflows promise (pinned actions, credentials, order, promotion) is
 * checked in test/unit/workflowFiles.test.ts, which needs no toolchain.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_ROOT, toolchainBinary } from "../../tools/engine/engine";

const WORKFLOWS = path.join(PROJECT_ROOT, ".github/workflows");
const actionlint = (files: string[]) =>
    spawnSync(toolchainBinary("actionlint"), ["-no-color", ...files], {
        encoding: "utf8",
        cwd: PROJECT_ROOT,
    });

describe("GitHub Actions workflows", () => {
    it("are clean under actionlint", () => {
        const files = fs.readdirSync(WORKFLOWS).map((f) => path.join(WORKFLOWS, f));
        assert.ok(files.length >= 4, "test, preview, deploy and promote");
        const r = actionlint(files);
        assert.equal(r.status, 0, r.stdout + r.stderr);
        assert.equal(r.stdout, "");
    });

    it("actionlint really checks: a broken copy is reported", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "asm-actionlint-"));
        const text = fs.readFileSync(path.join(WORKFLOWS, "promote.yml"), "utf8");
        assert.ok(text.includes("${{ inputs.promotion }}"));
        const broken = text.replace("${{ inputs.promotion }}", "${{ inputs.destination }}");
        fs.mkdirSync(path.join(dir, ".github/workflows"), { recursive: true });
        const file = path.join(dir, ".github/workflows/promote.yml");
        fs.writeFileSync(file, broken);
        const r = actionlint([file]);
        fs.rmSync(dir, { recursive: true, force: true });
        assert.equal(r.status, 1);
        assert.match(r.stdout, /property "destination" is not defined/);
    });
});
