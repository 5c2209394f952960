import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { EngineEvent, PolicyEvent } from "@pulumi/pulumi/automation";
import {
    MAX_DIFF_CHARS,
    connectionLines,
    filterChainChanges,
    toMarkdown,
    violationLine,
} from "../../tools/rollout/preview";

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

/** The engine's pre-step event of an update of `type`, from `before` to `after` (their specs). */
function update(type: string, before: unknown, after: unknown, op = "update"): EngineEvent {
    const state = (spec: unknown) => ({
        type,
        urn: `urn:${type}`,
        id: "x",
        parent: "",
        inputs: { spec },
    });
    return {
        sequence: 1,
        timestamp: 0,
        resourcePreEvent: {
            metadata: {
                op,
                urn: `urn:${type}`,
                type,
                provider: "",
                old: before === undefined ? undefined : state(before),
                new: state(after),
            },
        },
    } as unknown as EngineEvent;
}

const VS = "kubernetes:networking.istio.io/v1beta1:VirtualService";
const DR = "kubernetes:networking.istio.io/v1:DestinationRule";
const route = (v2: number) => ({
    tcp: [
        {
            match: [{ port: 31400 }],
            route: [
                { destination: { host: "tcp-echo", subset: "v1" }, weight: 100 - v2 },
                { destination: { host: "tcp-echo", subset: "v2" }, weight: v2 },
            ],
        },
    ],
});
const LOCAL = {
    drainSeconds: 45,
    drainSource:
        "drainDuration of the gateway pods, from the mesh config and their proxy.istio.io/config",
    open: 12,
};
const CI = {
    drainSeconds: 45,
    drainSource: "Istio's default drainDuration, unless the gateway's ProxyConfig sets another",
    unreadable:
        "from CI or anywhere outside the cluster: target asm: the gateways' Envoy stats are not reachable from here",
};

describe("preview: what the change does to open connections", () => {
    it("finds a weight change of the VirtualService at any served API version, and ignores what leaves the filter chain alone", () => {
        assert.deepEqual(filterChainChanges([update(VS, route(20), route(50))]), [
            { kind: "weight", port: 31400, from: 20, to: 50 },
        ]);
        assert.deepEqual(
            filterChainChanges([
                update(VS, route(20), { ...route(20), hosts: ["a.example.com"] }),
                update(VS, undefined, route(20), "create"),
                update("kubernetes:apps/v1:Deployment", { replicas: 1 }, { replicas: 2 }),
                update(DR, { host: "tcp-echo" }, { host: "tcp-echo", subsets: [] }),
            ]),
            [],
        );
    });

    it("finds a change of the DestinationRule's connection pool durations", () => {
        const pool = (tcp: object) => ({
            host: "tcp-echo",
            trafficPolicy: { connectionPool: { tcp } },
        });
        assert.deepEqual(
            filterChainChanges([update(DR, { host: "tcp-echo" }, pool({ idleTimeout: "10m" }))]),
            [{ kind: "connectionPool", from: {}, to: { idleTimeout: "10m" } }],
        );
    });

    it("says, as shift does per step, that a weight change closes the open connections at the end of the drain, with how many are open on a local stack", () => {
        const [line] = connectionLines(
            [{ kind: "weight", port: 31400, from: 20, to: 50 }],
            LOCAL,
            31400,
        );
        assert.match(
            line,
            /^v2 weight 20 -> 50 replaces port 31400's filter chain on every gateway/,
        );
        assert.match(line, /12 connections are open on it now/);
        assert.match(line, /until the drain time ends, 45 s after the gateway has the change/);
        assert.match(line, /clients reconnect under the new split/);
    });

    it("says the count cannot be read from CI on other targets", () => {
        const lines = connectionLines(
            [
                { kind: "weight", port: 31400, from: 0, to: 10 },
                { kind: "connectionPool", from: {}, to: { maxConnectionDuration: "1h" } },
            ],
            CI,
            31400,
        );
        assert.equal(lines.length, 2);
        assert.match(
            lines[0],
            /cannot be read from here \(from CI or anywhere outside the cluster: target asm/,
        );
        assert.match(
            lines[1],
            /connectionPool\.tcp \{\} -> \{"maxConnectionDuration":"1h"\} also lives in port 31400's tcp_proxy filter, so it replaces the filter chain too$/,
        );
        const alone = connectionLines(
            [{ kind: "connectionPool", from: { idleTimeout: "1h" }, to: {} }],
            LOCAL,
            31400,
        );
        assert.match(
            alone[0],
            /12 connections are open on it now\. They are closed when the drain time ends, 45 s/,
        );
    });

    it("puts the note after the violations and before the diff, and leaves it out when there is nothing to say", () => {
        const summary = {
            stack: "dev",
            ok: true,
            changes: { update: 1, same: 14 },
            violations: [],
            output: "diff",
        };
        const md = toMarkdown({ ...summary, connections: ["v2 weight 20 -> 50 replaces ..."] });
        assert.ok(md.indexOf("**Policy violations**") < md.indexOf("**Open connections**"));
        assert.ok(md.indexOf("- v2 weight 20 -> 50 replaces ...") < md.indexOf("<details>"));
        assert.doesNotMatch(toMarkdown(summary), /Open connections/);
    });
});
