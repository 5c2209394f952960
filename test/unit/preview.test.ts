import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MAX_DIFF_CHARS, policyViolations, toMarkdown } from "../../tools/preview";

const FAILED_OUTPUT = `Previewing update (staging):
Policies:
    ❌ asm-tcp-shift@v0.1.0 (local: /work/main/policy)
        - [mandatory]  max-weight-step  (asm-tcp-shift:policy:DesiredState: policy-gate)
          One update moves the canary weight by at most maxWeightStep percentage points.
          tcp-echo-routing-virtualservice (kubernetes:networking.istio.io/v1:VirtualService): before any change: VirtualService tcp-echo: v2 weight moves 0 -> 80 (80 points); the largest allowed step is 50.
        - [mandatory]  max-weight-step  (kubernetes:networking.istio.io/v1:VirtualService: tcp-echo-routing-virtualservice)
          One update moves the canary weight by at most maxWeightStep percentage points.
          VirtualService tcp-echo: v2 weight moves 0 -> 80 (80 points); the largest allowed step is 50.
`;

describe("preview summary", () => {
    it("extracts policy violations with their level, name, resource and message, without the policy gate's copies", () => {
        assert.deepEqual(policyViolations(FAILED_OUTPUT), [
            "[mandatory] max-weight-step (kubernetes:networking.istio.io/v1:VirtualService: tcp-echo-routing-virtualservice): VirtualService tcp-echo: v2 weight moves 0 -> 80 (80 points); the largest allowed step is 50.",
        ]);
    });

    it("puts the verdict, counts and violations before the folded diff", () => {
        const md = toMarkdown({
            stack: "staging",
            ok: false,
            changes: {},
            violations: policyViolations(FAILED_OUTPUT),
            output: FAILED_OUTPUT,
        });
        assert.match(md, /^### Pulumi preview: `staging` ❌ failed/);
        assert.ok(md.indexOf("max-weight-step") < md.indexOf("<details>"));
    });

    it("trims a huge diff so the comment stays under GitHub's limit, keeping the summary", () => {
        const md = toMarkdown({
            stack: "dev",
            ok: true,
            changes: { update: 1, same: 14 },
            violations: [],
            output: "x".repeat(200_000),
        });
        assert.ok(md.length < 65_536, String(md.length));
        assert.match(md, /\| update \| 1 \|/);
        assert.match(md, new RegExp(`${200_000 - MAX_DIFF_CHARS} more characters trimmed`));
    });
});
