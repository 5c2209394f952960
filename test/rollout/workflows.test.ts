import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_ROOT, toolchainBinary } from "../../tools/engine";

const WORKFLOWS = path.join(PROJECT_ROOT, ".github/workflows");
const actionlint = (files: string[]) => spawnSync(toolchainBinary("actionlint"), ["-no-color", ...files], { encoding: "utf8", cwd: PROJECT_ROOT });

describe("GitHub Actions workflows", () => {
    it("has preview, deploy and promote workflows", () => {
        assert.deepEqual(fs.readdirSync(WORKFLOWS).sort(), ["deploy.yml", "preview.yml", "promote.yml"]);
    });

    it("are clean under actionlint", () => {
        const r = actionlint(fs.readdirSync(WORKFLOWS).map((f) => path.join(WORKFLOWS, f)));
        assert.equal(r.status, 0, r.stdout + r.stderr);
        assert.equal(r.stdout, "");
    });

    it("actionlint really checks: a broken copy is reported", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "asm-actionlint-"));
        const broken = fs.readFileSync(path.join(WORKFLOWS, "promote.yml"), "utf8").replace("${{ inputs.to }}", "${{ inputs.destination }}");
        fs.mkdirSync(path.join(dir, ".github/workflows"), { recursive: true });
        const file = path.join(dir, ".github/workflows/promote.yml");
        fs.writeFileSync(file, broken);
        const r = actionlint([file]);
        fs.rmSync(dir, { recursive: true, force: true });
        assert.equal(r.status, 1);
        assert.match(r.stdout, /property "destination" is not defined/);
    });

    it("install the pinned CLI and provider with pulumi/actions and build nothing from source", () => {
        const pins = Object.fromEntries(
            fs.readFileSync(path.join(PROJECT_ROOT, "toolchain.versions"), "utf8").split("\n").filter((l) => /^[A-Z_]+=/.test(l)).map((l) => l.split("=", 2) as [string, string]),
        );
        for (const file of fs.readdirSync(WORKFLOWS)) {
            const text = fs.readFileSync(path.join(WORKFLOWS, file), "utf8");
            assert.match(text, new RegExp(`uses: pulumi/actions@v\\d+\\s+with:\\s+pulumi-version: ${pins.PULUMI_VERSION.replace(/\./g, "\\.")}\\n`), file);
            assert.match(text, new RegExp(`pulumi plugin install resource kubernetes ${pins.KUBERNETES_PROVIDER_VERSION.replace(/\./g, "\\.")}\\n`), file);
            assert.doesNotMatch(text, /setup-go|go build|go-version/, file);
        }
    });

    it("run the same entry points as a developer (npm run preview / promote / pulumi)", () => {
        const text = fs.readdirSync(WORKFLOWS).map((f) => fs.readFileSync(path.join(WORKFLOWS, f), "utf8")).join("\n");
        assert.match(text, /npm run preview -- --stack/);
        assert.match(text, /npm run promote --/);
        assert.match(text, /--policy-pack policy/);
    });
});
