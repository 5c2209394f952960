import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as fs from "fs";
import * as path from "path";
import { withPolicyConfig } from "../../tools/engine/policyConfig";

/** The policy config file shift, preview and promote hand the engine: what it holds, and that it does not outlive its use. */
describe("withPolicyConfig", () => {
    it("holds the environment's config with the live weight and an explicit step limit, then is removed", async () => {
        let seen = "";
        const answer = await withPolicyConfig("prod", 10, { maxWeightStep: 5 }, async (file) => {
            seen = file;
            assert.equal(path.basename(file), "prod.json");
            return JSON.parse(fs.readFileSync(file, "utf8"));
        });
        assert.deepEqual(answer["max-weight-step"], {
            enforcementLevel: "mandatory",
            maxWeightStep: 5,
            previousV2Weight: 10,
        });
        // policy/config/prod.json's other policies are kept as the environment sets them.
        assert.equal(answer["production-replicas"].minReplicas, 2);
        assert.equal(fs.existsSync(path.dirname(seen)), false);
    });

    it("is removed when its use fails, and the failure is passed on", async () => {
        let seen = "";
        await assert.rejects(
            withPolicyConfig("no-such-stack", undefined, {}, async (file) => {
                seen = file;
                assert.equal(fs.readFileSync(file, "utf8"), "{}");
                throw new Error("refused by a mandatory policy");
            }),
            /refused by a mandatory policy/,
        );
        assert.equal(fs.existsSync(path.dirname(seen)), false);
    });
});
