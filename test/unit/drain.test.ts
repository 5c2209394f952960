import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
    ISTIO_DEFAULT_DRAIN_SECONDS,
    connectionNotice,
    settleRefusal,
} from "../../tools/rollout/drain";

describe("what a shift step does to open connections", () => {
    const local = {
        drainSeconds: 5,
        drainSource: "drainDuration of the gateway pods",
        open: 3,
    };

    it("a weight change replaces the port's filter chain and says how many connections close, and when", () => {
        const m = connectionNotice(10, 20, 31400, local);
        assert.match(m, /v2 weight 10 -> 20 replaces port 31400's filter chain on every gateway/);
        assert.match(m, /3 connections are open on it now/);
        assert.match(
            m,
            /until the drain time ends, 5 s after the gateway has the change \(drainDuration/,
        );
        assert.match(
            connectionNotice(10, 20, 31400, { ...local, open: 1 }),
            /1 connection is open/,
        );
    });

    it("on a target whose gateways cannot be read, it says so and gives Istio's default drain time", () => {
        const m = connectionNotice(0, 100, 31400, {
            drainSeconds: ISTIO_DEFAULT_DRAIN_SECONDS,
            drainSource: "Istio's default drainDuration",
            unreadable: "target asm: the gateways' Envoy stats are not reachable from here",
        });
        assert.match(m, /cannot be read from here \(target asm: /);
        assert.match(m, /45 s after the gateway has the change/);
    });

    it("a step to the same weight leaves the chain and its connections alone", () => {
        assert.match(
            connectionNotice(20, 20, 31400, local),
            /unchanged and its open connections stay/,
        );
    });

    it("refuses a settle time shorter than the drain time, unless --drain wait or --force", () => {
        const base = { drainSeconds: 45, drainWait: false, force: false };
        assert.match(
            settleRefusal({ ...base, settleSeconds: 10 })!,
            /--settle-seconds 10 is shorter than the gateway's drain time \(45 s\).*--settle-seconds 45 or more, --drain wait, or --force/,
        );
        assert.equal(settleRefusal({ ...base, settleSeconds: 45 }), undefined);
        assert.equal(settleRefusal({ ...base, settleSeconds: 10, force: true }), undefined);
        assert.equal(settleRefusal({ ...base, settleSeconds: 10, drainWait: true }), undefined);
        // A default settle time is not the operator's choice.
        assert.equal(settleRefusal({ ...base, settleSeconds: undefined }), undefined);
    });
});
