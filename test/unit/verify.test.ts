import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
    GATE_ALPHA,
    GATE_RULE,
    Outcome,
    VerifyReport,
    assess,
    binomialCdf,
    binomialPmf,
    binomialSf,
    clopperPearson,
    compareWithGatewayCounters,
    fisherExact,
    formatGatewayComparison,
    formatReport,
    splitTest,
    wilsonInterval,
} from "../../tools/rollout/verify";
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

const counts = (v1: number, v2: number, failed = 0): Record<Outcome, number> => ({
    v1,
    v2,
    unknown: failed,
    timeout: 0,
    refused: 0,
    reset: 0,
    error: 0,
});
const close = (actual: number, expected: number, tolerance: number) =>
    assert.ok(Math.abs(actual - expected) <= tolerance, `${actual} vs ${expected}`);

describe("binomial distribution", () => {
    it("matches the closed form for small n and sums to 1 at large n", () => {
        const pmf = binomialPmf(4, 0.25);
        [81, 108, 54, 12, 1].forEach((x, k) => close(pmf[k], x / 256, 1e-15));
        let sum = 0;
        for (const x of binomialPmf(100_000, 0.2)) sum += x;
        close(sum, 1, 1e-12);
    });
    it("is exact at p = 0 and p = 1", () => {
        assert.deepEqual([...binomialPmf(3, 0)], [1, 0, 0, 0]);
        assert.deepEqual([...binomialPmf(3, 1)], [0, 0, 0, 1]);
        assert.equal(binomialSf(1, 1000, 0), 0);
        assert.equal(binomialCdf(999, 1000, 1), 0);
    });
    it("keeps tiny tails to full relative precision: P(X = 0) for n = 1000, p = 0.01", () => {
        const exact = Math.exp(1000 * Math.log1p(-0.01));
        close(binomialCdf(0, 1000, 0.01) / exact, 1, 1e-12);
        close(binomialSf(1000, 1000, 0.99) / exact, 1, 1e-12);
    });
    it("refuses what is not a distribution", () => {
        assert.throws(() => binomialPmf(-1, 0.5), RangeError);
        assert.throws(() => binomialPmf(10, 1.5), RangeError);
        assert.throws(() => binomialPmf(10, Number.NaN), RangeError);
    });
});

describe("clopperPearson", () => {
    it("matches R's binom.test: 20 of 100 gives [0.1266556, 0.2918427], 5 of 10 [0.187086, 0.812914]", () => {
        const a = clopperPearson(20, 100, 0.95);
        close(a.low, 0.1266556, 1e-7);
        close(a.high, 0.2918427, 1e-7);
        const b = clopperPearson(5, 10, 0.95);
        close(b.low, 0.187086, 1e-6);
        close(b.high, 0.812914, 1e-6);
    });
    it("has the closed form 1 - (alpha/2)^(1/n) at 0 of n, and mirrors at n of n", () => {
        const zero = clopperPearson(0, 1000);
        assert.equal(zero.low, 0);
        close(zero.high, 1 - Math.pow(0.0005, 1 / 1000), 1e-12);
        const all = clopperPearson(1000, 1000);
        assert.equal(all.high, 1);
        close(all.low, 1 - zero.high, 1e-12);
    });
    it("refuses counts out of range", () => {
        assert.throws(() => clopperPearson(0, 0), RangeError);
        assert.throws(() => clopperPearson(11, 10), RangeError);
    });
});

describe("splitTest: the gate's exact test", () => {
    it("at 1000 replies passes 159..243 v2 replies for weight 20 and 448..552 for 50", () => {
        assert.deepEqual(splitTest(1000, 20).accept, {
            minV2: 159,
            maxV2: 243,
            low: 0.159,
            high: 0.243,
        });
        assert.deepEqual(splitTest(1000, 50).accept, {
            minV2: 448,
            maxV2: 552,
            low: 0.448,
            high: 0.552,
        });
    });
    it("fails a correct split with probability at most alpha = 0.001 (the exact figure is reported)", () => {
        for (const w of [0, 1, 20, 50, 80, 99, 100]) {
            const t = splitTest(1000, w);
            assert.equal(t.alpha, GATE_ALPHA);
            assert.ok(t.falseRejection <= GATE_ALPHA, `${w}: ${t.falseRejection}`);
        }
        close(splitTest(1000, 20).falseRejection, 7.672e-4, 1e-7);
        close(splitTest(1000, 50).falseRejection, 8.9e-4, 1e-6);
    });
    it("at 1000 replies catches 7 points below and 8 above weight 20, 9 either way at 50, with >= 99%", () => {
        const t20 = splitTest(1000, 20);
        assert.deepEqual(t20.detectable, { power: 0.99, below: 6.71, above: 7.61 });
        assert.ok(t20.power(0.13) >= 0.995 && t20.power(0.28) >= 0.995);
        // Just inside the stated distance it is below 99%: the figure is the smallest.
        assert.ok(t20.power(0.2 - 0.0669) < 0.99 && t20.power(0.2 + 0.0759) < 0.99);
        const t50 = splitTest(1000, 50);
        assert.deepEqual(t50.detectable, { power: 0.99, below: 8.89, above: 8.89 });
        assert.ok(t50.power(0.41) >= 0.99 && t50.power(0.59) >= 0.99);
    });
    it("beyond the detectable distance the power only grows", () => {
        const t = splitTest(1000, 20);
        let last = 0;
        for (let d = 7.61; d <= 80; d += 0.5) {
            const power = t.power(0.2 + d / 100);
            assert.ok(power >= 0.99 && power >= last - 1e-12, `${d}: ${power}`);
            last = power;
        }
    });
    it("has zero tolerance at weight 0 and 100: one reply from the wrong version fails", () => {
        const zero = splitTest(1000, 0);
        assert.deepEqual(zero.accept, { minV2: 0, maxV2: 0, low: 0, high: 0 });
        assert.equal(zero.falseRejection, 0);
        assert.equal(zero.judge(0).verdict, "consistent");
        assert.equal(zero.judge(1).verdict, "inconsistent");
        assert.equal(zero.judge(1).pValue, 0);
        const hundred = splitTest(1000, 100);
        assert.equal(hundred.judge(1000).verdict, "consistent");
        assert.equal(hundred.judge(999).verdict, "inconsistent");
        // At weight 0 a true share of 0.47% already fails 99% of runs (1 - 0.9953^1000).
        assert.equal(zero.detectable.above, 0.47);
        assert.equal(zero.detectable.below, null);
    });
    it("calls a pass on too few replies inconclusive, but a contradiction is one at any size", () => {
        const small = splitTest(50, 20);
        assert.equal(small.conclusive, false);
        assert.equal(small.judge(10).verdict, "inconclusive");
        assert.equal(small.judge(40).verdict, "inconsistent");
        // A split 20 points off is caught with 99% from 165 replies at weight 20, 202 at any weight.
        assert.equal(splitTest(164, 20).conclusive, false);
        assert.equal(splitTest(165, 20).conclusive, true);
        for (let w = 0; w <= 100; w++) assert.ok(splitTest(202, w).conclusive, String(w));
        // At weight 0, 21 replies of v1 are enough: 0.8^21 < 1%.
        assert.equal(splitTest(20, 0).judge(0).verdict, "inconclusive");
        assert.equal(splitTest(21, 0).judge(0).verdict, "consistent");
        // A smaller minDetectable asks for more replies.
        assert.equal(splitTest(1000, 50, { minDetectable: 8 }).conclusive, false);
        assert.equal(splitTest(1000, 50, { minDetectable: 9 }).conclusive, true);
    });
    it("passes exactly when the p-value exceeds alpha and the weight lies in the exact interval", () => {
        for (const w of [1, 20, 50, 73]) {
            const t = splitTest(1000, w);
            for (const k of [
                t.accept.minV2 - 1,
                t.accept.minV2,
                t.accept.maxV2,
                t.accept.maxV2 + 1,
            ]) {
                const passes = t.judge(k).verdict !== "inconsistent";
                assert.equal(passes, t.judge(k).pValue > GATE_ALPHA, `${w} ${k}`);
                const ci = clopperPearson(k, 1000);
                assert.equal(passes, ci.low <= w / 100 && w / 100 <= ci.high, `${w} ${k}`);
            }
        }
    });
    it("refuses bad input", () => {
        assert.throws(() => splitTest(0, 20), RangeError);
        assert.throws(() => splitTest(10, 101), RangeError);
        assert.throws(() => splitTest(10, 20, { alpha: 0 }), RangeError);
        assert.throws(() => splitTest(10, 20, { minDetectable: 0 }), RangeError);
        assert.throws(() => splitTest(10, 20).judge(11), RangeError);
    });
});

describe("assess: the verdict on one run's counts", () => {
    it("an 80/20 sample at weight 20 is consistent, and the report says by which rule", () => {
        const a = assess(counts(797, 203), 1000, 20, 0.01);
        assert.equal(a.verdict, "consistent", a.reason);
        assert.equal(a.observedV2Share, 0.203);
        assert.deepEqual(a.wilson95, wilsonInterval(203, 1000));
        assert.equal(a.gate!.rule, GATE_RULE);
        assert.equal(a.gate!.alpha, 0.001);
        assert.deepEqual(a.gate!.accept, splitTest(1000, 20).accept);
        assert.equal(a.gate!.exactInterval.confidence, 0.999);
        assert.match(a.reason, /expected 20% lies in the 99.9% exact interval \[16\.3%, 24\.8%\]/);
        assert.match(a.reason, /6\.71 points below or 7\.61 points above .* >= 99%/);
    });
    it("a share the old 95% rule failed (expected just outside Wilson) now passes", () => {
        // 229 of 1000: the 95% Wilson interval starts at 20.4%; the 99.9% exact one at 19.6%.
        const a = assess(counts(771, 229), 1000, 20, 0.01);
        assert.ok(a.wilson95!.low > 0.2);
        assert.equal(a.verdict, "consistent", a.reason);
    });
    it("a contradiction names both intervals and the p-value", () => {
        const a = assess(counts(500, 500), 1000, 20, 0.01);
        assert.equal(a.verdict, "inconsistent");
        assert.match(a.reason, /expected 20% lies outside the 95% interval/);
        assert.match(
            a.reason,
            /outside the 99\.9% exact interval .*p = [\d.]+e-\d+ <= alpha 0\.001/,
        );
    });
    it("errors over the limit are inconclusive, whatever the split", () => {
        const a = assess(counts(300, 300, 400), 1000, 20, 0.01);
        assert.equal(a.verdict, "inconclusive");
        assert.match(a.reason, /40\.0% of connections failed or gave unknown replies/);
        assert.ok(a.gate, "the test's figures are still reported");
    });
    it("no replies: inconclusive without a gate", () => {
        const a = assess(counts(0, 0, 10), 10, 20, 0.01);
        assert.equal(a.verdict, "inconclusive");
        assert.equal(a.gate, null);
        assert.equal(a.observedV2Share, null);
    });
    it("too few replies: inconclusive, saying how likely a 20-point error would have passed", () => {
        const a = assess(counts(40, 10), 50, 20, 0.01);
        assert.equal(a.verdict, "inconclusive");
        assert.match(a.reason, /50 replies are too few: a split 20 points off would still pass/);
        assert.equal(
            assess(counts(40, 10), 50, 20, 0.01, { minDetectable: 50 }).verdict,
            "consistent",
        );
    });
    it("weight 0: all v1 is consistent, a single v2 reply is not", () => {
        assert.equal(assess(counts(300, 0), 300, 0, 0.01).verdict, "consistent");
        assert.equal(assess(counts(999, 1), 1000, 0, 0.01).verdict, "inconsistent");
        assert.equal(assess(counts(1000, 0), 1000, 1, 0.01).verdict, "inconsistent");
    });
    it("formatReport shows the gate, its band and its power", () => {
        const a = assess(counts(797, 203), 1000, 20, 0.01);
        const text = formatReport({
            target: "127.0.0.1:31400",
            connections: 1000,
            counts: counts(797, 203),
            expectedWeight: 20,
            durationMs: 1200,
            ...a,
        });
        assert.match(
            text,
            /observed v2 +20\.3% +\(95% Wilson 17\.9%\.\.22\.9%; 99\.9% exact 16\.3%\.\.24\.8%\)/,
        );
        assert.match(
            text,
            /gate +exact two-sided binomial test \(equal tails\), alpha 0\.001: passes with 159\.\.243 v2 of 1000/,
        );
        assert.match(text, /power +a split 6\.71 points below or 7\.61 points above/);
        assert.match(text, /verdict +consistent: /);
    });
});

describe("fisherExact", () => {
    it("matches the hypergeometric tails by hand", () => {
        // [[3, 1], [1, 3]]: P(X <= 1) = (1 + 16) / 70 for X ~ Hypergeometric(8, 4, 4).
        close(fisherExact(3, 1, 1, 3), (2 * 17) / 70, 1e-15);
        assert.equal(fisherExact(800, 200, 800, 200), 1);
        assert.equal(fisherExact(5, 0, 7, 0), 1);
    });
    it("is symmetric in the two samples", () => {
        close(fisherExact(800, 200, 700, 300), fisherExact(700, 300, 800, 200), 1e-15);
        assert.ok(fisherExact(800, 200, 700, 300) < 1e-6);
    });
});

describe("compareWithGatewayCounters", () => {
    const report = (v1: number, v2: number, expectedWeight = 20): VerifyReport => ({
        target: "127.0.0.1:31400",
        connections: v1 + v2,
        counts: counts(v1, v2),
        expectedWeight,
        durationMs: 0,
        ...assess(counts(v1, v2), v1 + v2, expectedWeight, 0.01),
    });
    it("agrees when the gateway counted the client's connections", () => {
        const c = compareWithGatewayCounters(report(797, 203), { v1: 797, v2: 203 });
        assert.equal(c.agreement, "agree", c.reason);
        assert.equal(c.pValue, 1);
        assert.equal(c.gateway.verdict, "consistent");
        assert.deepEqual(c.difference, { v1: 0, v2: 0 });
        assert.deepEqual(c.notes, []);
        assert.match(formatGatewayComparison(c), /agreement +agree: .*consistent with 20%/);
    });
    it("agrees with a gateway that also carried other traffic at the same split", () => {
        const c = compareWithGatewayCounters(report(797, 203), { v1: 8012, v2: 1988 });
        assert.equal(c.agreement, "agree", c.reason);
        assert.equal(c.gateway.verdict, "consistent");
    });
    it("disagrees when replies do not match the subsets the gateway picked", () => {
        // The gateway sent 20% to subset v2, yet 30% of replies came from v2: pods labelled for the wrong subset.
        const c = compareWithGatewayCounters(report(700, 300), { v1: 800, v2: 200 });
        assert.equal(c.agreement, "disagree");
        assert.ok(c.pValue! <= GATE_ALPHA);
        assert.equal(c.client.verdict, "inconsistent");
        assert.equal(c.gateway.verdict, "consistent");
        assert.match(c.notes.join("\n"), /more replies as v2 than the gateway opened/);
    });
    it("judges the gateway's split by the same rule: a stale gateway at 50/50 is inconsistent with 20", () => {
        const c = compareWithGatewayCounters(report(500, 500), { v1: 500, v2: 500 });
        assert.equal(c.agreement, "agree");
        assert.equal(c.gateway.verdict, "inconsistent");
        assert.deepEqual(c.gateway.accept, splitTest(1000, 20).accept);
        assert.match(c.reason, /the gateway's split is inconsistent with 20%/);
    });
    it("is inconclusive without counts, or with too few on one side; notes counters that miss connections", () => {
        assert.equal(
            compareWithGatewayCounters(report(797, 203), { v1: 0, v2: 0 }).agreement,
            "inconclusive",
        );
        const few = compareWithGatewayCounters(report(797, 203), { v1: 40, v2: 10 });
        assert.equal(few.agreement, "inconclusive");
        assert.equal(few.gateway.verdict, "inconclusive");
        assert.match(few.notes.join("\n"), /gateway counted 50 connections, fewer than the 1000/);
    });
    it("refuses counters that are not counts", () => {
        assert.throws(
            () => compareWithGatewayCounters(report(8, 2), { v1: -1, v2: 2 }),
            RangeError,
        );
        assert.throws(
            () => compareWithGatewayCounters(report(8, 2), { v1: 1.5, v2: 2 }),
            RangeError,
        );
    });
});
