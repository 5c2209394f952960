import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import { EngineOptions, openStack, scratchProject } from "../../tools/engine/engine";
import { promote } from "../../tools/rollout/promote";
import { renderedVirtualService, routesOf } from "../../tools/rollout/routes";

describe("promote", () => {
    let dir: string;
    let engine: EngineOptions;
    let policyConfig: string;
    const renderedWeights = (stack: string) =>
        routesOf(renderedVirtualService(path.join(dir, `rendered-${stack}`)))[0].destinations.map(
            (d) => d.weight,
        );
    const stackFile = (stack: string) =>
        parse(fs.readFileSync(path.join(dir, `Pulumi.${stack}.yaml`), "utf8")).config;

    before(async () => {
        dir = scratchProject(fs.mkdtempSync(path.join(os.tmpdir(), "asm-tcp-shift-promote-")));
        engine = {
            workDir: dir,
            backendUrl: `file://${path.join(dir, ".state")}`,
            env: { PULUMI_CONFIG_PASSPHRASE: "promote-test" },
        };
        for (const [name, weight] of [
            ["dev", "80"],
            ["staging", "0"],
        ]) {
            const stack = await openStack(name, engine);
            await stack.setAllConfig({
                target: { value: "render" },
                renderDir: { value: `rendered-${name}` },
                v2Weight: { value: weight },
            });
            await stack.up();
        }
        // Staging's environment policy: at most 50 points per promotion, enforced.
        policyConfig = path.join(dir, "staging-policy.json");
        fs.writeFileSync(
            policyConfig,
            JSON.stringify({
                "max-weight-step": { enforcementLevel: "mandatory", maxWeightStep: 50 },
            }),
        );
    });

    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("is blocked by a mandatory policy violation and leaves the target unchanged", async () => {
        const before = fs.readFileSync(path.join(dir, "Pulumi.staging.yaml"), "utf8");
        const result = await promote({
            from: "dev",
            to: "staging",
            yes: true,
            engine,
            policyConfig,
        });
        assert.equal(result.outcome, "blocked");
        assert.match(
            result.error ?? "",
            /max-weight-step[\s\S]*v2 weight moves 0 -> 80 \(80 points\); the largest allowed step is 50/,
        );
        assert.equal(fs.readFileSync(path.join(dir, "Pulumi.staging.yaml"), "utf8"), before);
        assert.deepEqual(renderedWeights("staging"), [100, 0]);
    });

    it("previews without --yes and changes nothing", async () => {
        const dev = await openStack("dev", engine);
        await dev.setConfig("v2Weight", { value: "40" });
        await dev.setConfig("imageV2", {
            value: "docker.io/istio/tcp-echo-server:1.3",
            secret: true,
        });
        const result = await promote({
            from: "dev",
            to: "staging",
            yes: false,
            engine,
            policyConfig,
        });
        assert.equal(result.outcome, "previewed");
        assert.match(result.previewStdout, /weight\s*:\s*0 => 40/);
        assert.equal(stackFile("staging")["asm-tcp-shift:v2Weight"], "0");
        assert.equal(stackFile("staging")["asm-tcp-shift:imageV2"], undefined);
    });

    it("applies with --yes, re-encrypting secrets for the target stack", async () => {
        const result = await promote({
            from: "dev",
            to: "staging",
            yes: true,
            engine,
            policyConfig,
        });
        assert.equal(result.outcome, "applied", result.error);
        assert.deepEqual(renderedWeights("staging"), [60, 40]);
        const staging = stackFile("staging");
        assert.equal(staging["asm-tcp-shift:v2Weight"], "40");
        const secure = staging["asm-tcp-shift:imageV2"]?.secure;
        assert.ok(secure, "imageV2 stays a secret in the target stack file");
        assert.notEqual(
            secure,
            stackFile("dev")["asm-tcp-shift:imageV2"].secure,
            "encrypted with the target's own key, not copied",
        );
        const value = await (await openStack("staging", engine)).getConfig("imageV2");
        assert.deepEqual(value, { value: "docker.io/istio/tcp-echo-server:1.3", secret: true });
    });
});
