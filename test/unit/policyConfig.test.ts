import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as fs from "fs";
import * as path from "path";
import { withPolicyConfig } from "../../tools/engine/policyConfig";

const read = (file: string) => Promise.resolve(JSON.parse(fs.readFileSync(file, "utf8")));

/** The policy config file shift, preview and promote hand the engine: what it holds, and that it does not outlive its use. */
describe("withPolicyConfig", () => {
    it("holds the environment's config with an explicit step limit, then is removed", async () => {
        let seen = "";
        const answer = await withPolicyConfig("prod", { maxWeightStep: 5 }, async (file) => {
            seen = file;
            assert.equal(path.basename(file), "prod.json");
            return read(file);
        });
        // No previous weight: the pack reads the weight the stack serves from the stack's own state.
        assert.deepEqual(answer["max-weight-step"], {
            enforcementLevel: "mandatory",
            maxWeightStep: 5,
        });
        // policy/config/prod.json's other policies are kept as the environment sets them.
        assert.equal(answer["production-replicas"].minReplicas, 2);
        assert.equal(fs.existsSync(path.dirname(seen)), false);
    });

    it("keeps the environment's step limit as it is when nothing overrides it", async () => {
        const answer = await withPolicyConfig("staging", {}, read);
        assert.deepEqual(answer["max-weight-step"], {
            enforcementLevel: "mandatory",
            maxWeightStep: 50,
        });
    });

    it("turns the step limit off for a rollback, whatever the environment enforces", async () => {
        const answer = await withPolicyConfig("prod", { rollback: true }, read);
        assert.equal(answer["max-weight-step"].enforcementLevel, "disabled");
        assert.equal(answer["production-replicas"].enforcementLevel, "mandatory");
    });

    it("is removed when its use fails, and the failure is passed on", async () => {
        let seen = "";
        await assert.rejects(
            withPolicyConfig("no-such-stack", {}, async (file) => {
                seen = file;
                assert.equal(fs.readFileSync(file, "utf8"), "{}");
                throw new Error("refused by a mandatory policy");
            }),
            /refused by a mandatory policy/,
        );
        assert.equal(fs.existsSync(path.dirname(seen)), false);
    });
});
