/**
 * verify's gate in simulation: Envoy picks a weighted cluster at random for each connection, so the v2
 * count of a run is Binomial(n, w/100). Runs are drawn exactly and fast, by inverse CDF on a table built
 * here independently of tools/rollout/verify.ts (log-space binomial coefficients), from a seeded PRNG.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { GATE_ALPHA, clopperPearson, splitTest, wilsonInterval } from "../../tools/rollout/verify";
import { seededRandom } from "../support/random";

/** P(X = k), k = 0..n, X ~ Binomial(n, p): log C(n, k) summed term by term, exponentiated, normalised. */
function referencePmf(n: number, p: number): Float64Array {
    const pmf = new Float64Array(n + 1);
    if (p === 0 || p === 1) {
        pmf[p === 0 ? 0 : n] = 1;
        return pmf;
    }
    const logs = new Float64Array(n + 1);
    let logChoose = 0;
    let max = -Infinity;
    for (let k = 0; k <= n; k++) {
        if (k > 0) logChoose += Math.log((n - k + 1) / k);
        logs[k] = logChoose + k * Math.log(p) + (n - k) * Math.log1p(-p);
        max = Math.max(max, logs[k]);
    }
    let total = 0;
    for (let k = 0; k <= n; k++) total += pmf[k] = Math.exp(logs[k] - max);
    for (let k = 0; k <= n; k++) pmf[k] /= total;
    return pmf;
}

/** A sampler of Binomial(n, p) by inverse CDF: one uniform and a binary search per run. */
function binomialSampler(n: number, p: number, random: () => number): () => number {
    const pmf = referencePmf(n, p);
    const cdf = new Float64Array(n + 1);
    let sum = 0;
    for (let k = 0; k <= n; k++) cdf[k] = sum += pmf[k];
    cdf[n] = 1;
    return () => {
        const u = random();
        let lo = 0;
        let hi = n;
        while (lo < hi) {
            const mid = (lo + hi) >> 1;
            if (cdf[mid] > u) hi = mid;
            else lo = mid + 1;
        }
        return lo;
    };
}

/** Exact probability, under the reference pmf at `share`, that the gate at (n, w) fails the run. */
function exactRejection(n: number, w: number, share: number): number {
    const { minV2, maxV2 } = splitTest(n, w).accept;
    const pmf = referencePmf(n, share);
    let p = 0;
    for (let k = 0; k < minV2; k++) p += pmf[k];
    for (let k = maxV2 + 1; k <= n; k++) p += pmf[k];
    return p;
}

const RUNS = 100_000;

/** Fraction of `runs` simulated runs of n replies at a true share that the gate set up for (n, w) fails. */
function simulateRejections(n: number, w: number, share: number, runs: number, seed: number) {
    const gate = splitTest(n, w);
    const draw = binomialSampler(n, share, seededRandom(seed));
    let failed = 0;
    for (let i = 0; i < runs; i++) if (gate.judge(draw()).verdict === "inconsistent") failed++;
    return failed / runs;
}

describe("verify's gate on correct splits (false rollbacks)", () => {
    it("the exact false-rejection probability is at most 1/1000 for every weight 0..100 at 50, 202, 1000 and 5000 replies", () => {
        for (const n of [50, 202, 1000, 5000]) {
            for (let w = 0; w <= 100; w++) {
                const exact = exactRejection(n, w, w / 100);
                assert.ok(exact <= GATE_ALPHA, `n ${n}, w ${w}: ${exact}`);
                const reported = splitTest(n, w).falseRejection;
                assert.ok(
                    Math.abs(reported - exact) <= 1e-12 + 1e-9 * exact,
                    `${reported} vs ${exact}`,
                );
            }
        }
    });

    for (const [w, seed] of [
        [20, 1],
        [50, 2],
    ]) {
        it(`${RUNS} simulated runs of 1000 connections at exactly ${100 - w}/${w}: at most 1 in 1000 fail`, (t) => {
            const rate = simulateRejections(1000, w, w / 100, RUNS, seed);
            t.diagnostic(
                `failed ${Math.round(rate * RUNS)} of ${RUNS} (${rate}); exact ${exactRejection(1000, w, w / 100).toExponential(3)}`,
            );
            assert.ok(rate <= GATE_ALPHA, String(rate));
        });
    }

    it(`${RUNS} runs of 1000 connections spread over every weight 0..100: at most 1 in 1000 fail`, (t) => {
        const random = seededRandom(3);
        const gates = Array.from({ length: 101 }, (_, w) => ({
            gate: splitTest(1000, w),
            draw: binomialSampler(1000, w / 100, random),
        }));
        let failed = 0;
        for (let i = 0; i < RUNS; i++) {
            const { gate, draw } = gates[i % 101];
            if (gate.judge(draw()).verdict === "inconsistent") failed++;
        }
        t.diagnostic(`failed ${failed} of ${RUNS}`);
        assert.ok(failed / RUNS <= GATE_ALPHA, String(failed));
    });

    it("the same simulation catches the old rule (expected weight inside the 95% Wilson interval): about 5% fail", (t) => {
        const draw = binomialSampler(1000, 0.2, seededRandom(1));
        let failed = 0;
        for (let i = 0; i < RUNS; i++) {
            const { low, high } = wilsonInterval(draw(), 1000);
            if (0.2 < low || 0.2 > high) failed++;
        }
        t.diagnostic(`old rule failed ${failed} of ${RUNS}`);
        assert.ok(failed / RUNS > 0.04 && failed / RUNS < 0.06, String(failed));
    });

    it("a 4-step shift (10, 20, 50, 100) at 1000 connections rolls a correct rollout back with probability < 0.4%", (t) => {
        const pass = [10, 20, 50, 100].map((w) => 1 - exactRejection(1000, w, w / 100));
        const rollback = 1 - pass.reduce((a, b) => a * b, 1);
        t.diagnostic(`P(rollback) = ${rollback.toExponential(3)}`);
        assert.ok(rollback < 0.004, String(rollback));
    });
});

describe("verify's gate on wrong splits (what it still catches at 1000 connections)", () => {
    // The documented figures (docs/verify.md): weight 20 fails 13% and 28%, weight 50 fails 41% and 59%.
    for (const [w, share, seed] of [
        [20, 13, 11],
        [20, 28, 12],
        [50, 41, 13],
        [50, 59, 14],
    ]) {
        it(`weight ${w} against a true ${share}%: >= 99% of ${RUNS} runs fail`, (t) => {
            const rate = simulateRejections(1000, w, share / 100, RUNS, seed);
            const exact = exactRejection(1000, w, share / 100);
            t.diagnostic(`failed ${rate * 100}% of runs; exact ${(exact * 100).toFixed(2)}%`);
            assert.ok(exact >= 0.99, String(exact));
            assert.ok(rate >= 0.99, String(rate));
            assert.ok(Math.abs(rate - exact) < 0.002, `${rate} vs ${exact}`);
        });
    }

    it("the reported detectable distances are the smallest with >= 99% (reference pmf)", () => {
        for (const w of [1, 5, 10, 20, 30, 50, 70, 95]) {
            const { below, above, power } = splitTest(1000, w).detectable;
            for (const [d, side] of [
                [below, -1],
                [above, 1],
            ] as const) {
                if (d === null) continue;
                const at = (x: number) => exactRejection(1000, w, (w + side * x) / 100);
                assert.ok(at(d) >= power, `w ${w} side ${side}: ${at(d)} at ${d}`);
                assert.ok(
                    at(d - 0.02) < power,
                    `w ${w} side ${side}: ${at(d - 0.02)} at ${d - 0.02}`,
                );
            }
        }
    });

    it("weight 0 tolerates no v2 reply: a true 0.5% v2 share fails >= 99% of runs", (t) => {
        const rate = simulateRejections(1000, 0, 0.005, RUNS, 15);
        t.diagnostic(`failed ${rate * 100}% of runs`);
        assert.ok(rate >= 0.99, String(rate));
        assert.equal(simulateRejections(1000, 0, 0, 1000, 16), 0);
        assert.equal(simulateRejections(1000, 100, 1, 1000, 17), 0);
    });
});

describe("verify's gate: properties", () => {
    it("passes exactly when the expected weight lies in the 99.9% Clopper-Pearson interval", () => {
        fc.assert(
            fc.property(
                fc.integer({ min: 1, max: 2000 }),
                fc.integer({ min: 0, max: 100 }),
                fc.double({ min: 0, max: 1, noNaN: true }),
                (n, w, where) => {
                    const k = Math.min(n, Math.floor(where * (n + 1)));
                    const passes = splitTest(n, w).judge(k).verdict !== "inconsistent";
                    const { low, high } = clopperPearson(k, n);
                    const inside = low <= w / 100 && w / 100 <= high;
                    // Within 1e-9 of an end the bisection may round either way; no case lands there.
                    const near = Math.min(Math.abs(low - w / 100), Math.abs(high - w / 100)) < 1e-9;
                    assert.ok(near || passes === inside, `n ${n} w ${w} k ${k}`);
                },
            ),
            { numRuns: 300, seed: 20 },
        );
    });

    it("the band of passing counts is never empty and the p-value agrees with it", () => {
        fc.assert(
            fc.property(
                fc.integer({ min: 1, max: 3000 }),
                fc.integer({ min: 0, max: 100 }),
                (n, w) => {
                    const t = splitTest(n, w);
                    assert.ok(t.accept.minV2 <= t.accept.maxV2);
                    for (const k of [
                        t.accept.minV2 - 1,
                        t.accept.minV2,
                        t.accept.maxV2,
                        t.accept.maxV2 + 1,
                    ]) {
                        if (k < 0 || k > n) continue;
                        const { verdict, pValue } = t.judge(k);
                        assert.equal(
                            verdict === "inconsistent",
                            pValue <= t.alpha,
                            `n ${n} w ${w} k ${k}`,
                        );
                    }
                },
            ),
            { numRuns: 200, seed: 21 },
        );
    });
});
