import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_ROOT, toolchainBinary } from "../../tools/engine/engine";

const WORKFLOWS = path.join(PROJECT_ROOT, ".github/workflows");
const SETUP_ACTION = path.join(PROJECT_ROOT, ".github/actions/setup/action.yml");
const actionlint = (files: string[]) =>
    spawnSync(toolchainBinary("actionlint"), ["-no-color", ...files], {
        encoding: "utf8",
        cwd: PROJECT_ROOT,
    });

describe("GitHub Actions workflows", () => {
    it("has preview, deploy and promote workflows", () => {
        assert.deepEqual(fs.readdirSync(WORKFLOWS).sort(), [
            "deploy.yml",
            "preview.yml",
            "promote.yml",
        ]);
    });

    it("are clean under actionlint", () => {
        const r = actionlint(fs.readdirSync(WORKFLOWS).map((f) => path.join(WORKFLOWS, f)));
        assert.equal(r.status, 0, r.stdout + r.stderr);
        assert.equal(r.stdout, "");
    });

    it("actionlint really checks: a broken copy is reported", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "asm-actionlint-"));
        const broken = fs
            .readFileSync(path.join(WORKFLOWS, "promote.yml"), "utf8")
            .replace("${{ inputs.to }}", "${{ inputs.destination }}");
        fs.mkdirSync(path.join(dir, ".github/workflows"), { recursive: true });
        const file = path.join(dir, ".github/workflows/promote.yml");
        fs.writeFileSync(file, broken);
        const r = actionlint([file]);
        fs.rmSync(dir, { recursive: true, force: true });
        assert.equal(r.status, 1);
        assert.match(r.stdout, /property "destination" is not defined/);
    });

    it("share one setup that installs the pinned CLI and provider with pulumi/actions and builds nothing from source", () => {
        const setup = fs.readFileSync(SETUP_ACTION, "utf8");
        // The pins come from toolchain.versions at run time, so no version is restated in the action.
        assert.match(
            setup,
            /grep -E '\^\(PULUMI_VERSION\|KUBERNETES_PROVIDER_VERSION\)=' toolchain\.versions >> "\$GITHUB_OUTPUT"/,
        );
        assert.match(
            setup,
            /uses: pulumi\/actions@v\d+\s+with:\s+pulumi-version: \$\{\{ steps\.pins\.outputs\.PULUMI_VERSION \}\}\n/,
        );
        assert.match(
            setup,
            /pulumi plugin install resource kubernetes "\$\{\{ steps\.pins\.outputs\.KUBERNETES_PROVIDER_VERSION \}\}"\n/,
        );
        assert.doesNotMatch(setup, /\d+\.\d+\.\d+/, "no version restated");
        const versions = fs.readFileSync(path.join(PROJECT_ROOT, "toolchain.versions"), "utf8");
        for (const pin of ["PULUMI_VERSION", "KUBERNETES_PROVIDER_VERSION"])
            assert.match(versions, new RegExp(`^${pin}=\\d+\\.\\d+\\.\\d+$`, "m"));
        for (const file of fs.readdirSync(WORKFLOWS)) {
            const text = fs.readFileSync(path.join(WORKFLOWS, file), "utf8");
            assert.match(
                text,
                /- uses: actions\/checkout@v\d+\n\s+- uses: \.\/\.github\/actions\/setup\n/,
                file,
            );
            assert.doesNotMatch(
                text,
                /setup-node|pulumi\/actions|plugin install|setup-go|go build|go-version/,
                `${file} repeats the setup`,
            );
        }
        assert.doesNotMatch(setup, /setup-go|go build|go-version/);
    });

    it("run the same entry points as a developer (npm run preview / promote / pulumi)", () => {
        const text = fs
            .readdirSync(WORKFLOWS)
            .map((f) => fs.readFileSync(path.join(WORKFLOWS, f), "utf8"))
            .join("\n");
        assert.match(text, /npm run preview -- --stack/);
        assert.match(text, /npm run promote --/);
        assert.match(text, /--policy-pack policy/);
    });
});
