import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as fs from "fs";
import * as path from "path";
import { PROJECT_ROOT } from "../../tools/engine/engine";

/** toolchain.versions is shell: KEY=value lines. */
function toolchainVersions(): Record<string, string> {
    const text = fs.readFileSync(path.join(PROJECT_ROOT, "toolchain.versions"), "utf8");
    return Object.fromEntries(
        text
            .split("\n")
            .filter((l) => /^[A-Z_]+=/.test(l))
            .map((l) => l.split("=", 2) as [string, string]),
    );
}
const json = (file: string) => JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, file), "utf8"));

describe("version pins", () => {
    const pins = toolchainVersions();

    it("@pulumi/kubernetes is exactly the provider plugin the toolchain builds (the engine matches versions exactly)", () => {
        assert.equal(
            json("package.json").dependencies["@pulumi/kubernetes"],
            pins.KUBERNETES_PROVIDER_VERSION,
        );
        assert.equal(
            json("package-lock.json").packages["node_modules/@pulumi/kubernetes"].version,
            pins.KUBERNETES_PROVIDER_VERSION,
        );
    });

    it("@pulumi/pulumi in the program and in the policy pack is the CLI's version", () => {
        assert.equal(json("package.json").dependencies["@pulumi/pulumi"], pins.PULUMI_VERSION);
        assert.equal(
            json("policy/package.json").dependencies["@pulumi/pulumi"],
            pins.PULUMI_VERSION,
        );
        // The pack is an npm workspace of the root: one lock file, one installed @pulumi/pulumi for both.
        assert.deepEqual(json("package.json").workspaces, ["policy"]);
        assert.equal(
            json("package-lock.json").packages["node_modules/@pulumi/pulumi"].version,
            pins.PULUMI_VERSION,
        );
        assert.equal(fs.existsSync(path.join(PROJECT_ROOT, "policy/package-lock.json")), false);
    });

    it("every npm dependency is pinned exactly", () => {
        for (const file of ["package.json", "policy/package.json"]) {
            const manifest = json(file);
            for (const [name, version] of Object.entries({
                ...manifest.dependencies,
                ...manifest.devDependencies,
            })) {
                assert.match(String(version), /^\d+\.\d+\.\d+$/, `${file}: ${name}@${version}`);
            }
        }
    });
});
