/**
 * verify: measures the traffic split behind a TCP endpoint the way ASM's guide does by hand with
 * `nc`, but as a statistic. Opens N connections, sends one line each, classifies the reply by the
 * echo prefix, and decides with an exact two-sided binomial test at alpha = 0.001 whether the observed
 * v2 count contradicts the expected v2 weight: a correct split fails at most 1 run in 1,000. A pass
 * counts ("consistent") only when the sample was large enough to catch a split `minDetectable` points
 * off with 99% probability; otherwise the verdict is "inconclusive". docs/verify.md has the math.
 */
import * as net from "net";

export interface VerifyOptions {
    host: string;
    port: number;
    connections: number;
    concurrency: number;
    /** Per-connection budget for connect + reply. */
    timeoutMs: number;
    /** Expected percent of replies from v2, 0..100. */
    expectedWeight: number;
    /** Reply prefix of each version, e.g. {v1: "one", v2: "two"}. */
    prefixes: { v1: string; v2: string };
    /** Largest tolerated fraction of failed connections before the check is inconclusive. */
    maxErrorRate: number;
    /**
     * A pass is "consistent" only if a split this many points of v2 weight off the expected one (either
     * way, where that is a valid weight) would have failed with probability GATE_POWER; else "inconclusive".
     * Default GATE_MIN_DETECTABLE (20).
     */
    minDetectable?: number;
    onProgress?: (done: number, total: number) => void;
}

export type Outcome = "v1" | "v2" | "unknown" | "timeout" | "refused" | "reset" | "error";

export type Verdict = "consistent" | "inconsistent" | "inconclusive";

/** The gate's decision for one sample: which rule, with what numbers. Shares are fractions 0..1. */
export interface GateDetail {
    rule: string;
    /** Largest probability that a correct split fails the test (the false-rollback rate of one step). */
    alpha: number;
    /** Exact probability that a correct split fails at this sample size (<= alpha; the test is discrete). */
    falseRejection: number;
    /** Two-sided exact p-value of the observed v2 count under the expected weight; it fails at p <= alpha. */
    pValue: number;
    /** The v2 counts (of the replies from v1 or v2) that pass, and the same as shares. */
    accept: { minV2: number; maxV2: number; low: number; high: number };
    /**
     * The (1 - alpha) Clopper-Pearson interval of the observed v2 share: the test passes exactly when the
     * expected weight lies in it.
     */
    exactInterval: { low: number; high: number; confidence: number };
    /**
     * The smallest distance, in points of v2 weight, below and above the expected weight at which a split
     * fails with probability >= `power`; null when no split on that side does (or there is none).
     */
    detectable: { power: number; below: number | null; above: number | null };
    /** The size of error a pass must have been able to catch (points), and the probability it would have. */
    minDetectable: number;
    powerAtMinDetectable: { below: number | null; above: number | null };
}

export interface VerifyReport {
    target: string;
    connections: number;
    counts: Record<Outcome, number>;
    /** v2 / (v1 + v2): connections that reached a known version. */
    observedV2Share: number | null;
    /** The observed share's 95% Wilson interval, for reading; the verdict comes from `gate`. */
    wilson95: { low: number; high: number } | null;
    expectedWeight: number;
    errorRate: number;
    verdict: Verdict;
    reason: string;
    /** How the verdict was reached; null when no connection reached v1 or v2. */
    gate: GateDetail | null;
    durationMs: number;
}

const Z95 = 1.959963984540054;

/** The gate's significance level: a correct split fails one run in 1,000 at most. */
export const GATE_ALPHA = 0.001;
/** The probability with which a pass must have caught an error of `minDetectable` points. */
export const GATE_POWER = 0.99;
/** Default error (points of v2 weight) a pass must have been able to catch; smaller samples are inconclusive. */
export const GATE_MIN_DETECTABLE = 20;
export const GATE_RULE = "exact two-sided binomial test (equal tails)";

/** Wilson score interval for a binomial proportion (well-behaved at 0 and 1, unlike the normal one). */
export function wilsonInterval(
    successes: number,
    trials: number,
    z = Z95,
): { low: number; high: number } {
    if (trials <= 0) throw new RangeError("wilsonInterval needs at least one trial");
    const p = successes / trials;
    const z2 = z * z;
    const denominator = 1 + z2 / trials;
    const centre = (p + z2 / (2 * trials)) / denominator;
    const half = (z * Math.sqrt((p * (1 - p)) / trials + z2 / (4 * trials * trials))) / denominator;
    // Exact at the edges: 0 of n must admit a 0% weight, n of n a 100% one, despite rounding.
    return {
        low: successes === 0 ? 0 : Math.max(0, centre - half),
        high: successes === trials ? 1 : Math.min(1, centre + half),
    };
}

// ---------------------------------------------------------------------------------------------------
// Exact distributions. A mass function is built outward from its mode by the ratio of neighbouring terms
// and then normalised: no factorials, no overflow at any n, relative error about n * 2^-52 per term.
// Terms under 1e-300 of the mode are taken as 0 (far below any probability the gate uses), which also
// keeps the walk out of subnormal numbers, where it would crawl.

interface Mass {
    /** mass[k] = P(X = k); zero outside from..to. */
    mass: Float64Array;
    from: number;
    to: number;
}

const NEGLIGIBLE = 1e-300;

function massFromMode(
    size: number,
    lo: number,
    hi: number,
    mode: number,
    up: (k: number) => number,
    down: (k: number) => number,
): Mass {
    const mass = new Float64Array(size);
    mass[mode] = 1;
    let to = mode;
    while (to < hi) {
        const next = mass[to] * up(to);
        if (!(next >= NEGLIGIBLE)) break;
        mass[++to] = next;
    }
    let from = mode;
    while (from > lo) {
        const next = mass[from] * down(from);
        if (!(next >= NEGLIGIBLE)) break;
        mass[--from] = next;
    }
    let total = 0;
    for (let k = from; k <= to; k++) total += mass[k];
    for (let k = from; k <= to; k++) mass[k] /= total;
    return { mass, from, to };
}

function checkTrials(n: number): void {
    if (!Number.isInteger(n) || n < 0)
        throw new RangeError(`trials must be an integer >= 0; got ${n}`);
}

function binomialMass(n: number, p: number): Mass {
    checkTrials(n);
    if (!(p >= 0 && p <= 1)) throw new RangeError(`p must be from 0 to 1; got ${p}`);
    if (p === 0 || p === 1) {
        const mass = new Float64Array(n + 1);
        const k = p === 0 ? 0 : n;
        mass[k] = 1;
        return { mass, from: k, to: k };
    }
    const odds = p / (1 - p);
    const mode = Math.min(n, Math.floor((n + 1) * p));
    return massFromMode(
        n + 1,
        0,
        n,
        mode,
        (k) => ((n - k) / (k + 1)) * odds,
        (k) => k / (n - k + 1) / odds,
    );
}

/** P(X = k) for X ~ Binomial(n, p), k = 0..n. */
export function binomialPmf(n: number, p: number): Float64Array {
    return binomialMass(n, p).mass;
}

/** P(X <= k) for every k, summed from the far left so that small tails keep their precision. */
function lowerTails({ mass, from }: Mass): Float64Array {
    const below = new Float64Array(mass.length);
    let sum = 0;
    for (let k = from; k < mass.length; k++) {
        sum += mass[k];
        below[k] = Math.min(1, sum);
    }
    return below;
}

/** P(X >= k) for every k, summed from the far right. */
function upperTails({ mass, to }: Mass): Float64Array {
    const above = new Float64Array(mass.length);
    let sum = 0;
    for (let k = to; k >= 0; k--) {
        sum += mass[k];
        above[k] = Math.min(1, sum);
    }
    return above;
}

/** P(X <= k) for X ~ Binomial(n, p); 0 for k < 0. */
export function binomialCdf(k: number, n: number, p: number): number {
    if (k < 0) return 0;
    if (k >= n) return 1;
    const { mass, from } = binomialMass(n, p);
    let sum = 0;
    for (let j = from; j <= k; j++) sum += mass[j];
    return Math.min(1, sum);
}

/** P(X >= k) for X ~ Binomial(n, p); 0 for k > n. */
export function binomialSf(k: number, n: number, p: number): number {
    if (k <= 0) return 1;
    if (k > n) return 0;
    const { mass, to } = binomialMass(n, p);
    let sum = 0;
    for (let j = to; j >= k; j--) sum += mass[j];
    return Math.min(1, sum);
}

/** The p in [0, 1] at which a monotone `f` crosses `target`, by bisection to double precision. */
function solve(f: (p: number) => number, target: number, increasing: boolean): number {
    let lo = 0;
    let hi = 1;
    for (let i = 0; i < 60 && hi - lo > 1e-15; i++) {
        const mid = (lo + hi) / 2;
        if (f(mid) < target === increasing) lo = mid;
        else hi = mid;
    }
    return (lo + hi) / 2;
}

/**
 * The Clopper-Pearson ("exact") interval of a binomial proportion at `confidence`: the p for which neither
 * tail of the observed count has probability <= (1 - confidence) / 2. The equal-tailed exact test at
 * alpha = 1 - confidence passes exactly for the p inside it.
 */
export function clopperPearson(
    successes: number,
    trials: number,
    confidence = 1 - GATE_ALPHA,
): { low: number; high: number } {
    if (trials <= 0) throw new RangeError("clopperPearson needs at least one trial");
    if (!Number.isInteger(successes) || successes < 0 || successes > trials)
        throw new RangeError(`successes must be an integer from 0 to ${trials}; got ${successes}`);
    const tail = (1 - confidence) / 2;
    return {
        low: successes === 0 ? 0 : solve((p) => binomialSf(successes, trials, p), tail, true),
        high:
            successes === trials ? 1 : solve((p) => binomialCdf(successes, trials, p), tail, false),
    };
}

// ---------------------------------------------------------------------------------------------------
// The gate.

export interface SplitTestOptions {
    alpha?: number;
    power?: number;
    minDetectable?: number;
}

export interface SplitJudgement {
    verdict: Verdict;
    pValue: number;
}

/** The exact test for one sample size and expected weight, set up once; `judge` is O(1) per count. */
export interface SplitTest {
    /** Replies from v1 or v2: the binomial's n. */
    n: number;
    expectedWeight: number;
    alpha: number;
    accept: GateDetail["accept"];
    falseRejection: number;
    detectable: GateDetail["detectable"];
    minDetectable: number;
    powerAtMinDetectable: GateDetail["powerAtMinDetectable"];
    /** Whether a pass counts: every valid split minDetectable points off fails with probability >= power. */
    conclusive: boolean;
    /** The probability that a split whose true v2 share is `share` (0..1) fails. */
    power(share: number): number;
    judge(v2: number): SplitJudgement;
}

/**
 * Sets up the gate's test for `n` replies (from v1 or v2) at an expected v2 weight (percent): a count of v2
 * replies fails when either exact binomial tail at the expected share is <= alpha / 2, so a correct split
 * fails with probability <= alpha whatever n and the weight.
 */
export function splitTest(
    n: number,
    expectedWeight: number,
    opts: SplitTestOptions = {},
): SplitTest {
    const alpha = opts.alpha ?? GATE_ALPHA;
    const power = opts.power ?? GATE_POWER;
    const minDetectable = opts.minDetectable ?? GATE_MIN_DETECTABLE;
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`n must be an integer >= 1; got ${n}`);
    if (!(expectedWeight >= 0 && expectedWeight <= 100))
        throw new RangeError(`expectedWeight must be from 0 to 100; got ${expectedWeight}`);
    if (!(alpha > 0 && alpha < 1)) throw new RangeError(`alpha must be in (0, 1); got ${alpha}`);
    if (!(power > alpha && power < 1))
        throw new RangeError(`power must be in (alpha, 1); got ${power}`);
    if (!(minDetectable > 0 && minDetectable <= 100))
        throw new RangeError(`minDetectable must be in (0, 100]; got ${minDetectable}`);

    const p0 = expectedWeight / 100;
    const mass = binomialMass(n, p0);
    const below = lowerTails(mass);
    const above = upperTails(mass);
    const tail = alpha / 2;
    // Equal tails: the smallest and largest counts at which neither tail probability is <= alpha / 2.
    let minV2 = 0;
    while (below[minV2] <= tail) minV2++;
    let maxV2 = n;
    while (above[maxV2] <= tail) maxV2--;
    const falseRejection = (minV2 > 0 ? below[minV2 - 1] : 0) + (maxV2 < n ? above[maxV2 + 1] : 0);

    const rejectProbability = (share: number): number => {
        const m = binomialMass(n, Math.min(1, Math.max(0, share)));
        let p = 0;
        for (let k = m.from; k < minV2; k++) p += m.mass[k];
        for (let k = m.to; k > maxV2; k--) p += m.mass[k];
        return Math.min(1, p);
    };
    // The rejection probability falls then rises with the true share (its derivative changes sign once), and
    // is <= alpha at p0; so on each side it reaches `power` at one distance and stays above it beyond.
    const detectableOn = (side: -1 | 1): number | null => {
        const room = side < 0 ? p0 : 1 - p0;
        if (room <= 0 || rejectProbability(p0 + side * room) < power) return null;
        let lo = 0;
        let hi = room;
        while (hi - lo > 1e-5) {
            const mid = (lo + hi) / 2;
            if (rejectProbability(p0 + side * mid) >= power) hi = mid;
            else lo = mid;
        }
        // Points, rounded up to 0.01 so that the claim holds at the stated distance.
        return Math.min(room * 100, Math.ceil(hi * 1e4 - 1e-9) / 100);
    };
    const d = minDetectable / 100;
    const powerAtMinDetectable = {
        below: p0 - d >= -1e-12 ? rejectProbability(p0 - d) : null,
        above: p0 + d <= 1 + 1e-12 ? rejectProbability(p0 + d) : null,
    };
    const conclusive =
        (powerAtMinDetectable.below ?? 1) >= power && (powerAtMinDetectable.above ?? 1) >= power;

    return {
        n,
        expectedWeight,
        alpha,
        accept: { minV2, maxV2, low: minV2 / n, high: maxV2 / n },
        falseRejection,
        detectable: { power, below: detectableOn(-1), above: detectableOn(1) },
        minDetectable,
        powerAtMinDetectable,
        conclusive,
        power: rejectProbability,
        judge(v2: number): SplitJudgement {
            if (!Number.isInteger(v2) || v2 < 0 || v2 > n)
                throw new RangeError(`v2 must be an integer from 0 to ${n}; got ${v2}`);
            const pValue = Math.min(1, 2 * Math.min(below[v2], above[v2]));
            const passes = v2 >= minV2 && v2 <= maxV2;
            return {
                verdict: !passes ? "inconsistent" : conclusive ? "consistent" : "inconclusive",
                pValue,
            };
        },
    };
}

export interface Assessment {
    observedV2Share: number | null;
    wilson95: { low: number; high: number } | null;
    errorRate: number;
    verdict: Verdict;
    reason: string;
    gate: GateDetail | null;
}

/**
 * The verdict on the counts of one run (no network): inconclusive without replies or with too many errors;
 * otherwise the exact test at the expected weight decides, and a pass of a sample too small to have caught
 * an error of `minDetectable` points is inconclusive.
 */
export function assess(
    counts: Record<Outcome, number>,
    connections: number,
    expectedWeight: number,
    maxErrorRate: number,
    opts: SplitTestOptions = {},
): Assessment {
    const reached = counts.v1 + counts.v2;
    const failed = connections - reached;
    const errorRate = connections > 0 ? failed / connections : 0;
    const observedV2Share = reached > 0 ? counts.v2 / reached : null;
    const wilson95 = reached > 0 ? wilsonInterval(counts.v2, reached) : null;
    if (reached === 0) {
        return {
            observedV2Share,
            wilson95,
            errorRate,
            verdict: "inconclusive",
            reason: "no connection reached v1 or v2",
            gate: null,
        };
    }
    const test = splitTest(reached, expectedWeight, opts);
    const { verdict: tested, pValue } = test.judge(counts.v2);
    const confidence = 1 - test.alpha;
    const interval = clopperPearson(counts.v2, reached, confidence);
    const gate: GateDetail = {
        rule: GATE_RULE,
        alpha: test.alpha,
        falseRejection: test.falseRejection,
        pValue,
        accept: test.accept,
        exactInterval: { ...interval, confidence },
        detectable: test.detectable,
        minDetectable: test.minDetectable,
        powerAtMinDetectable: test.powerAtMinDetectable,
    };
    const level = `${fmtPercent(confidence * 100)}%`;
    const exact = `the ${level} exact interval [${pct(interval.low)}, ${pct(interval.high)}]`;
    const pText = `exact binomial p = ${fmtP(pValue)}`;
    let verdict: Verdict;
    let reason: string;
    if (errorRate > maxErrorRate) {
        verdict = "inconclusive";
        reason = `${(errorRate * 100).toFixed(1)}% of connections failed or gave unknown replies (limit ${(maxErrorRate * 100).toFixed(1)}%)`;
    } else if (tested === "inconsistent") {
        verdict = "inconsistent";
        const expected = expectedWeight / 100;
        const outside95 = expected < wilson95!.low || expected > wilson95!.high;
        reason = outside95
            ? `expected ${expectedWeight}% lies outside the 95% interval [${pct(wilson95!.low)}, ${pct(wilson95!.high)}] and outside ${exact} (${pText} <= alpha ${test.alpha})`
            : `expected ${expectedWeight}% lies outside ${exact} (${pText} <= alpha ${test.alpha})`;
    } else if (tested === "inconclusive") {
        verdict = "inconclusive";
        const { below, above } = test.powerAtMinDetectable;
        const missed = 1 - Math.min(below ?? 1, above ?? 1);
        reason = `expected ${expectedWeight}% lies in ${exact} (${pText}), but ${reached} replies are too few: a split ${fmtPercent(test.minDetectable)} points off would still pass with probability ${pct(missed)} (a conclusive pass needs under ${pct(1 - test.detectable.power)}); use more connections`;
    } else {
        verdict = "consistent";
        reason = `expected ${expectedWeight}% lies in ${exact} (${pText} > alpha ${test.alpha}); ${formatDetectable(test.detectable)}`;
    }
    return { observedV2Share, wilson95, errorRate, verdict, reason, gate };
}

export async function verify(opts: VerifyOptions): Promise<VerifyReport> {
    const started = Date.now();
    const counts: Record<Outcome, number> = {
        v1: 0,
        v2: 0,
        unknown: 0,
        timeout: 0,
        refused: 0,
        reset: 0,
        error: 0,
    };
    let next = 0;
    let done = 0;
    const worker = async () => {
        while (next < opts.connections) {
            const i = next++;
            counts[
                await probe(
                    opts.host,
                    opts.port,
                    `asm-tcp-shift-verify-${i}`,
                    opts.prefixes,
                    opts.timeoutMs,
                )
            ]++;
            opts.onProgress?.(++done, opts.connections);
        }
    };
    await Promise.all(
        Array.from({ length: Math.max(1, Math.min(opts.concurrency, opts.connections)) }, worker),
    );
    const assessment = assess(counts, opts.connections, opts.expectedWeight, opts.maxErrorRate, {
        minDetectable: opts.minDetectable,
    });
    return {
        target: `${opts.host}:${opts.port}`,
        connections: opts.connections,
        counts,
        observedV2Share: assessment.observedV2Share,
        wilson95: assessment.wilson95,
        expectedWeight: opts.expectedWeight,
        errorRate: assessment.errorRate,
        verdict: assessment.verdict,
        reason: assessment.reason,
        gate: assessment.gate,
        durationMs: Date.now() - started,
    };
}

// ---------------------------------------------------------------------------------------------------
// The gateway's own counts.

/** Connections the gateway opened to each subset during the run (deltas of Envoy's upstream_cx_total). */
export interface GatewayCounters {
    v1: number;
    v2: number;
}

export interface GatewayComparison {
    /** The gateway's split judged against the expected weight with the gate's rule. */
    gateway: {
        v1: number;
        v2: number;
        observedV2Share: number | null;
        verdict: Verdict;
        pValue: number | null;
        accept: GateDetail["accept"] | null;
    };
    client: { v1: number; v2: number; observedV2Share: number | null; verdict: Verdict };
    /**
     * Whether the client's classification and the gateway's counts show the same split: an equal-tailed
     * Fisher exact test at the same alpha ("disagree" at p <= alpha); "agree" only when both samples are
     * large enough for a conclusive gate on their own, else "inconclusive".
     */
    agreement: "agree" | "disagree" | "inconclusive";
    pValue: number | null;
    /** Gateway minus client, per subset. */
    difference: { v1: number; v2: number };
    notes: string[];
    reason: string;
}

/**
 * P-value of the equal-tailed Fisher exact test of a 2x2 table [[a, b], [c, d]] (rows: samples; columns:
 * v1, v2): twice the smaller hypergeometric tail of b given the margins, capped at 1.
 */
export function fisherExact(a: number, b: number, c: number, d: number): number {
    for (const x of [a, b, c, d]) checkTrials(x);
    const rows = a + b; // draws
    const v2 = b + d; // successes in the population
    const total = a + b + c + d;
    const lo = Math.max(0, rows + v2 - total);
    const hi = Math.min(v2, rows);
    if (lo === hi) return 1;
    const rest = total - v2 - rows;
    const mode = Math.min(hi, Math.max(lo, Math.floor(((rows + 1) * (v2 + 1)) / (total + 2))));
    const m = massFromMode(
        hi + 1,
        lo,
        hi,
        mode,
        (x) => ((v2 - x) * (rows - x)) / ((x + 1) * (rest + x + 1)),
        (x) => (x * (rest + x)) / ((v2 - x + 1) * (rows - x + 1)),
    );
    let left = 0;
    for (let x = m.from; x <= b; x++) left += m.mass[x];
    let right = 0;
    for (let x = m.to; x >= b; x--) right += m.mass[x];
    return Math.min(1, 2 * Math.min(left, right));
}

/**
 * States whether the split the gateway's own counters show (connections per subset over the run, summed
 * over gateway pods, gathered elsewhere) agrees with the client's classification of replies, and how the
 * gateway's split fares against the expected weight under the same rule.
 */
export function compareWithGatewayCounters(
    report: VerifyReport,
    counters: GatewayCounters,
    opts: SplitTestOptions = {},
): GatewayComparison {
    for (const [name, value] of Object.entries(counters))
        if (!Number.isInteger(value) || value < 0)
            throw new RangeError(`gateway counter ${name} must be an integer >= 0; got ${value}`);
    const alpha = opts.alpha ?? GATE_ALPHA;
    const options = { ...opts, minDetectable: opts.minDetectable ?? report.gate?.minDetectable };
    const { v1: c1, v2: c2 } = report.counts;
    const gw = counters.v1 + counters.v2;
    const clientN = c1 + c2;
    const gatewayTest = gw > 0 ? splitTest(gw, report.expectedWeight, options) : null;
    const judged = gatewayTest?.judge(counters.v2) ?? null;
    const gateway = {
        v1: counters.v1,
        v2: counters.v2,
        observedV2Share: gw > 0 ? counters.v2 / gw : null,
        verdict: judged?.verdict ?? ("inconclusive" as Verdict),
        pValue: judged?.pValue ?? null,
        accept: gatewayTest?.accept ?? null,
    };
    const client = {
        v1: c1,
        v2: c2,
        observedV2Share: report.observedV2Share,
        verdict: report.verdict,
    };
    const difference = { v1: counters.v1 - c1, v2: counters.v2 - c2 };
    const notes: string[] = [];
    if (gw < clientN)
        notes.push(
            `the gateway counted ${gw} connections, fewer than the ${clientN} replies the client classified: counters from another window, or gateway pods left out of the sum?`,
        );
    const over = (["v1", "v2"] as const).filter((v) => difference[v] < 0);
    if (over.length > 0)
        notes.push(
            `the client classified more replies as ${over.join(" and ")} than the gateway opened to that subset: replies do not match subsets (pod labels, or a version's prefix), or the counters miss connections`,
        );
    else if (gw > clientN)
        notes.push(
            `the gateway counted ${gw - clientN} connections more than the client classified: other clients, connect retries, or the client's ${report.connections - clientN} failed or unknown`,
        );

    let agreement: GatewayComparison["agreement"];
    let pValue: number | null = null;
    let reason: string;
    const shares = `client v2 ${clientN > 0 ? pct(c2 / clientN) : "n/a"} of ${clientN}, gateway v2 ${gw > 0 ? pct(counters.v2 / gw) : "n/a"} of ${gw}`;
    if (clientN === 0 || gw === 0) {
        agreement = "inconclusive";
        reason = `${shares}: nothing to compare`;
    } else {
        pValue = fisherExact(c1, c2, counters.v1, counters.v2);
        const conclusive =
            splitTest(clientN, report.expectedWeight, options).conclusive &&
            gatewayTest!.conclusive;
        if (pValue <= alpha) {
            agreement = "disagree";
            reason = `${shares}: the splits differ (Fisher exact p = ${fmtP(pValue)} <= alpha ${alpha})`;
        } else if (!conclusive) {
            agreement = "inconclusive";
            reason = `${shares}: no evidence of a difference (Fisher exact p = ${fmtP(pValue)}), but too few connections on one side for a conclusive gate`;
        } else {
            agreement = "agree";
            reason = `${shares}: the splits agree (Fisher exact p = ${fmtP(pValue)} > alpha ${alpha})`;
        }
    }
    reason += `; the gateway's split is ${gateway.verdict} with ${report.expectedWeight}%`;
    return { gateway, client, agreement, pValue, difference, notes, reason };
}

export function formatGatewayComparison(c: GatewayComparison): string {
    return [
        `gateway counts  v1 ${c.gateway.v1}, v2 ${c.gateway.v2} (v2 ${c.gateway.observedV2Share === null ? "n/a" : pct(c.gateway.observedV2Share)}; ${c.gateway.verdict})`,
        `agreement       ${c.agreement}: ${c.reason}`,
        ...c.notes.map((n) => `note            ${n}`),
    ].join("\n");
}

// ---------------------------------------------------------------------------------------------------
// Probing.

function classifyError(err: NodeJS.ErrnoException): Outcome {
    switch (err.code) {
        case "ECONNREFUSED":
            return "refused";
        case "ECONNRESET":
        case "EPIPE":
            return "reset";
        case "ETIMEDOUT":
            return "timeout";
        default:
            return "error";
    }
}

/** One connection: send a line, read one line back, say which version answered. Never throws. */
export function probe(
    host: string,
    port: number,
    line: string,
    prefixes: VerifyOptions["prefixes"],
    timeoutMs: number,
): Promise<Outcome> {
    return new Promise((resolve) => {
        let settled = false;
        let received = "";
        const socket = net.connect({ host, port });
        const finish = (outcome: Outcome) => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            socket.destroy();
            resolve(outcome);
        };
        const timer = setTimeout(() => finish("timeout"), timeoutMs);
        socket.setNoDelay(true);
        socket.on("connect", () => socket.write(`${line}\n`));
        socket.on("data", (chunk) => {
            received += chunk.toString("utf8");
            const newline = received.indexOf("\n");
            if (newline < 0) return;
            const reply = received.slice(0, newline);
            if (reply.startsWith(`${prefixes.v1} `)) finish("v1");
            else if (reply.startsWith(`${prefixes.v2} `)) finish("v2");
            else finish("unknown");
        });
        socket.on("error", (err) => finish(classifyError(err)));
        // Closed before a full line: the peer hung up on us.
        socket.on("close", () => finish(received.length > 0 ? "unknown" : "reset"));
    });
}

// ---------------------------------------------------------------------------------------------------
// Output.

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
/** A percentage without trailing zeros: 99.9, 20, 7.25. */
const fmtPercent = (x: number) => String(Number(x.toFixed(2)));
const fmtP = (p: number) => (p >= 0.01 ? p.toFixed(3) : p.toExponential(1));

function formatDetectable(d: GateDetail["detectable"]): string {
    const side = (points: number | null, word: string) =>
        points === null ? null : `${fmtPercent(points)} points ${word}`;
    const sides = [side(d.below, "below"), side(d.above, "above")].filter((s) => s !== null);
    return sides.length === 0
        ? `no split would fail with probability ${fmtPercent(d.power * 100)}%`
        : `a split ${sides.join(" or ")} the expected weight fails with probability >= ${fmtPercent(d.power * 100)}%`;
}

export function formatReport(r: VerifyReport): string {
    const c = r.counts;
    const g = r.gate;
    const lines = [
        `target          ${r.target}`,
        `connections     ${r.connections} in ${(r.durationMs / 1000).toFixed(1)}s`,
        `replies         v1 ${c.v1}, v2 ${c.v2}, unknown ${c.unknown}`,
        `failures        timeout ${c.timeout}, refused ${c.refused}, reset ${c.reset}, other ${c.error}`,
        `observed v2     ${r.observedV2Share === null ? "n/a" : pct(r.observedV2Share)}  (95% Wilson ${r.wilson95 ? `${pct(r.wilson95.low)}..${pct(r.wilson95.high)}` : "n/a"}${g ? `; ${fmtPercent(g.exactInterval.confidence * 100)}% exact ${pct(g.exactInterval.low)}..${pct(g.exactInterval.high)}` : ""})`,
        `expected v2     ${r.expectedWeight}%`,
    ];
    if (g) {
        lines.push(
            `gate            ${g.rule}, alpha ${g.alpha}: passes with ${g.accept.minV2}..${g.accept.maxV2} v2 of ${c.v1 + c.v2} (${pct(g.accept.low)}..${pct(g.accept.high)}); p = ${fmtP(g.pValue)}`,
            `power           ${formatDetectable(g.detectable)}`,
        );
    }
    lines.push(`verdict         ${r.verdict}: ${r.reason}`);
    return lines.join("\n");
}
