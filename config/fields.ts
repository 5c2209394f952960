import { Problems } from "./errors";

// Value parsers: each takes the raw value as the CLI stores it and reports what is wrong under its key.

export function integer(
    p: Problems,
    key: string,
    raw: unknown,
    min: number,
    max: number,
    meaning = "",
): number | undefined {
    const value = typeof raw === "string" && /^-?\d+$/.test(raw.trim()) ? Number(raw) : raw;
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
        return p.fail(
            key,
            `must be an integer from ${min} to ${max}${meaning}; got ${p.show(key, raw)}`,
        );
    }
    return value;
}

export function oneOf<T extends string>(
    p: Problems,
    key: string,
    raw: unknown,
    allowed: readonly T[],
): T | undefined {
    if (typeof raw !== "string" || !(allowed as readonly string[]).includes(raw)) {
        return p.fail(
            key,
            `must be one of ${allowed.map((a) => `"${a}"`).join(", ")}; got ${p.show(key, raw)}`,
        );
    }
    return raw as T;
}

export function boolean(p: Problems, key: string, raw: unknown): boolean | undefined {
    return typeof raw === "boolean"
        ? raw
        : p.fail(key, `must be true or false; got ${p.show(key, raw)}`);
}

export function matching(
    p: Problems,
    key: string,
    raw: unknown,
    pattern: RegExp,
    what: string,
): string | undefined {
    return typeof raw === "string" && pattern.test(raw)
        ? raw
        : p.fail(key, `${what}; got ${p.show(key, raw)}`);
}

/** A non-empty string, such as a path. */
export function text(p: Problems, key: string, raw: unknown, what: string): string | undefined {
    return typeof raw === "string" && raw.trim() !== ""
        ? raw
        : p.fail(key, `must be ${what}; got ${p.show(key, raw)}`);
}

/** Names of an object key's fields: the ones it takes, and retired ones its parser reports on its own. */
export interface ObjectFields {
    readonly known: readonly string[];
    readonly retired?: readonly string[];
}

/**
 * An object key (`slb`, `asm`) over its defaults; the CLI stores objects as JSON text. A field it does not know
 * is refused with the closest known name: a misspelt field would otherwise be dropped, and its default used.
 */
export function object(
    p: Problems,
    key: string,
    raw: string | undefined,
    defaults: object,
    fields: ObjectFields,
): Record<string, unknown> {
    if (raw === undefined) return { ...defaults };
    let parsed: unknown;
    try {
        parsed = JSON.parse(raw);
    } catch {
        parsed = undefined;
    }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
        p.fail(
            key,
            `must be an object (set it with --path, e.g. ${key}.${fields.known[0]}); got ${p.show(key, raw)}`,
        );
        return { ...defaults };
    }
    const allowed = new Set([...fields.known, ...(fields.retired ?? [])]);
    for (const field of Object.keys(parsed).filter((f) => !allowed.has(f)))
        p.fail(key, unknownNameMessage("field", field, fields.known));
    return { ...defaults, ...(parsed as Record<string, unknown>) };
}

/** A list of strings, each matching `pattern`; the CLI stores lists as JSON text. */
export function stringList(
    p: Problems,
    key: string,
    raw: unknown,
    pattern: RegExp,
    what: string,
): string[] | undefined {
    let value = raw;
    if (typeof raw === "string") {
        try {
            value = JSON.parse(raw);
        } catch {
            value = raw;
        }
    }
    if (!Array.isArray(value) || value.some((v) => typeof v !== "string"))
        return p.fail(key, `must be a list of ${what}; got ${p.show(key, raw)}`);
    const bad = value.filter((v: string) => !pattern.test(v));
    if (bad.length > 0) return p.fail(key, `entries ${p.show(key, bad)} are not ${what}`);
    return value as string[];
}

/** A list of integers from `min` to `max`; each bad entry is reported under its index. */
export function integerList(
    p: Problems,
    key: string,
    raw: unknown,
    min: number,
    max: number,
): number[] | undefined {
    if (!Array.isArray(raw))
        return p.fail(
            key,
            `must be a list of integers from ${min} to ${max}; got ${p.show(key, raw)}`,
        );
    return raw
        .map((entry, i) => integer(p, `${key}[${i}]`, entry, min, max))
        .filter((entry): entry is number => entry !== undefined);
}

/**
 * `unknown field "addresstype"; did you mean "addressType"? (known: ...)`: the name someone most likely meant,
 * when one is close enough to be a slip rather than another word.
 */
export function unknownNameMessage(what: string, name: string, known: readonly string[]): string {
    const guess = closest(name, known);
    return (
        `unknown ${what} ${JSON.stringify(name)}` +
        (guess === undefined ? "" : `; did you mean ${JSON.stringify(guess)}?`) +
        ` (known: ${known.join(", ")})`
    );
}

/**
 * The candidate nearest to `name` by edit distance, ignoring case (a wrong case is the commonest slip in a
 * camelCase name); undefined when even the nearest differs in more than a third of its letters.
 */
export function closest(name: string, candidates: readonly string[]): string | undefined {
    let best: { candidate: string; distance: number } | undefined;
    for (const candidate of candidates) {
        const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
        if (!best || distance < best.distance) best = { candidate, distance };
    }
    if (!best) return undefined;
    return best.distance <= Math.max(1, Math.floor(best.candidate.length / 3))
        ? best.candidate
        : undefined;
}

/**
 * Damerau-Levenshtein distance in its optimal-string-alignment form: insertions, deletions, substitutions and
 * swaps of two adjacent letters each count one, so `adressTpye` is two slips from `addressType`, as it looks.
 */
export function editDistance(a: string, b: string): number {
    const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
        Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
    );
    for (let i = 1; i <= a.length; i++) {
        for (let j = 1; j <= b.length; j++) {
            const cost = a[i - 1] === b[j - 1] ? 0 : 1;
            d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
                d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
        }
    }
    return d[a.length][b.length];
}

// Durations as Istio reads them. A DestinationRule's duration fields reach istiod as strings that the legacy
// jsonpb unmarshaler parses with Go's time.ParseDuration (istio/istio pkg/util/protomarshal; golang/protobuf
// v1.5 jsonpb/decode.go, case "Duration"), and the CRD's CEL rule `duration(self)` takes the same syntax.

const NS_PER: Record<string, bigint> = {
    ns: 1n,
    us: 1_000n,
    "\u00b5s": 1_000n, // µ, micro sign
    "\u03bcs": 1_000n, // μ, Greek mu
    ms: 1_000_000n,
    s: 1_000_000_000n,
    m: 60_000_000_000n,
    h: 3_600_000_000_000n,
};
/** Go's time.Duration is an int64 of nanoseconds: ParseDuration refuses anything longer (about 292 years). */
export const MAX_GO_DURATION_NS = 2n ** 63n - 1n;

/**
 * Nanoseconds of a duration in Go's time.ParseDuration syntax (`300ms`, `1.5h`, `1h30m`, `0`), or undefined
 * where ParseDuration fails: a unit on every number but a lone 0, digits on one side of the dot at least, a
 * known unit, and no overflow of int64 nanoseconds. Fractions below a nanosecond are truncated, as Go does.
 */
export function parseGoDuration(text: string): bigint | undefined {
    let s = text;
    let negative = false;
    if (s.startsWith("-") || s.startsWith("+")) {
        negative = s.startsWith("-");
        s = s.slice(1);
    }
    if (s === "0") return 0n;
    if (s === "") return undefined;
    let total = 0n;
    while (s !== "") {
        const m = /^(\d*)(?:\.(\d*))?([^\d.]+)/.exec(s);
        if (!m || (m[1] === "" && (m[2] ?? "") === "")) return undefined;
        const unit = NS_PER[m[3]];
        if (unit === undefined) return undefined;
        const fraction = m[2] ?? "";
        total +=
            BigInt(m[1] || "0") * unit +
            (fraction === "" ? 0n : (BigInt(fraction) * unit) / 10n ** BigInt(fraction.length));
        if (total > MAX_GO_DURATION_NS) return undefined;
        s = s.slice(m[0].length);
    }
    return negative ? -total : total;
}

/** A whole number of milliseconds in the largest unit that divides it: 3600000 -> `1h`, 1500 -> `1500ms`. */
export function formatDurationMs(ms: bigint): string {
    for (const [unit, size] of [
        ["h", 3_600_000n],
        ["m", 60_000n],
        ["s", 1_000n],
    ] as const)
        if (ms !== 0n && ms % size === 0n) return `${ms / size}${unit}`;
    return ms === 0n ? "0s" : `${ms}ms`;
}

/**
 * A duration for an Istio duration field, in its canonical form (see formatDurationMs): Go's syntax, at least
 * `minMs`, whole milliseconds (Istio's ValidateDuration refuses finer ones), and `0s` only when `zero` says
 * what zero means for this field.
 */
export function istioDuration(
    p: Problems,
    key: string,
    raw: unknown,
    opts: { minMs: number; zero?: string },
): string | undefined {
    const allowed = `a duration such as "30s", "10m" or "1h30m" (Go's syntax, as Istio parses it), at least ${formatDurationMs(BigInt(opts.minMs))}${opts.zero ? `, or "0s" ${opts.zero}` : ""}`;
    const ns = typeof raw === "string" ? parseGoDuration(raw.trim()) : undefined;
    if (ns === undefined) return p.fail(key, `must be ${allowed}; got ${p.show(key, raw)}`);
    if (ns === 0n && opts.zero) return "0s";
    if (ns % 1_000_000n !== 0n)
        return p.fail(
            key,
            `must be whole milliseconds: Istio refuses finer durations ("only durations to ms precision are supported"); got ${p.show(key, raw)}`,
        );
    if (ns < BigInt(opts.minMs) * 1_000_000n)
        return p.fail(key, `must be ${allowed}; got ${p.show(key, raw)}`);
    return formatDurationMs(ns / 1_000_000n);
}
