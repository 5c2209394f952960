import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { wilsonInterval } from "../../tools/rollout/verify";
import { pickBackend } from "../support/weightedProxy";

describe("wilsonInterval", () => {
    it("matches the textbook value for 20 of 100", () => {
        const { low, high } = wilsonInterval(20, 100);
        assert.ok(Math.abs(low - 0.1333) < 1e-3, String(low));
        assert.ok(Math.abs(high - 0.2888) < 1e-3, String(high));
    });
    it("stays inside [0, 1] at the edges and includes the edge itself", () => {
        assert.equal(wilsonInterval(0, 1000).low, 0);
        assert.ok(wilsonInterval(0, 1000).high < 0.005);
        assert.equal(wilsonInterval(1000, 1000).high, 1);
    });
    it("narrows as the sample grows", () => {
        const width = (n: number) => {
            const i = wilsonInterval(n / 5, n);
            return i.high - i.low;
        };
        assert.ok(width(10_000) < width(1000) && width(1000) < width(100));
    });
    it("refuses an empty sample", () => {
        assert.throws(() => wilsonInterval(0, 0), RangeError);
    });
});

describe("pickBackend", () => {
    const backends = [
        { name: "v1", port: 1 },
        { name: "v2", port: 2 },
    ];
    it("splits the unit interval by weight", () => {
        assert.equal(pickBackend(backends, { v1: 80, v2: 20 }, 0.79)?.name, "v1");
        assert.equal(pickBackend(backends, { v1: 80, v2: 20 }, 0.81)?.name, "v2");
        assert.equal(pickBackend(backends, { v1: 0, v2: 100 }, 0)?.name, "v2");
    });
    it("has no backend when every weight is zero, as Istio rejects a zero total", () => {
        assert.equal(pickBackend(backends, { v1: 0, v2: 0 }, 0.5), undefined);
    });
});
