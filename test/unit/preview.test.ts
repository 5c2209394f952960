import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { PolicyEvent } from "@pulumi/pulumi/automation";
import { MAX_DIFF_CHARS, toMarkdown, violationLine } from "../../tools/rollout/preview";

/** A policy event as the engine emits it for a mandatory violation on the VirtualService. */
const VIOLATION: PolicyEvent = {
    resourceUrn:
        "urn:pulumi:staging::asm-tcp-shift::asm-tcp-shift:index:TcpEchoCanary$kubernetes:networking.istio.io/v1:VirtualService::tcp-echo-routing-virtualservice",
    message:
        "One update moves the canary weight by at most maxWeightStep percentage points.\nVirtualService tcp-echo: v2 weight moves 0 -> 80 (80 points); the largest allowed step is 50.",
    color: "never",
    policyName: "max-weight-step",
    policyPackName: "asm-tcp-shift",
    policyPackVersion: "0.1.0",
    policyPackVersionTag: "0.1.0",
    enforcementLevel: "mandatory",
};
const FAILED_OUTPUT = "Previewing update (staging):\n…";

describe("preview summary", () => {
    it("gives each policy event its level, name, resource and its message on one line", () => {
        assert.equal(
            violationLine(VIOLATION),
            "[mandatory] max-weight-step (asm-tcp-shift:index:TcpEchoCanary$kubernetes:networking.istio.io/v1:VirtualService tcp-echo-routing-virtualservice): One update moves the canary weight by at most maxWeightStep percentage points. VirtualService tcp-echo: v2 weight moves 0 -> 80 (80 points); the largest allowed step is 50.",
        );
        assert.match(
            violationLine({ ...VIOLATION, resourceUrn: undefined }),
            /^\[mandatory\] max-weight-step \(stack\)/,
        );
    });

    it("puts the verdict, counts and violations before the folded diff", () => {
        const md = toMarkdown({
            stack: "staging",
            ok: false,
            changes: {},
            violations: [violationLine(VIOLATION)],
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
