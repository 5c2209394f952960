import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ConfigError, parseSettings } from "../../config";
import { tcpRoute } from "../../components/trafficRouting";
import { splitWeights } from "../../components/weights";
import { happyConfig, readerFor } from "../support/settings";

const settingsWithWeight = (v2Weight: unknown) =>
    parseSettings(readerFor(happyConfig({ v2Weight })));

describe("v2Weight property", () => {
    it("every integer 0..100 yields weights summing to 100 with v2 exactly that value", () => {
        fc.assert(
            fc.property(fc.integer({ min: 0, max: 100 }), (w) => {
                const settings = settingsWithWeight(w);
                const route = tcpRoute({
                    serviceHost: "tcp-echo",
                    servicePort: 9000,
                    gatewayPort: 31400,
                    weights: settings.weights,
                });
                const weights = route.route!.map((d) => d.weight!);
                assert.equal(weights[0] + weights[1], 100);
                assert.equal(weights[1], w);
                assert.equal(route.route![1].destination!.subset, "v2");
            }),
            { numRuns: 101 },
        );
    });

    it("the same holds when the weight arrives as text, as the CLI stores it", () => {
        for (let w = 0; w <= 100; w++)
            assert.equal(settingsWithWeight(String(w)).weights.canary, w);
    });

    it("every other number is rejected naming v2Weight and the allowed range", () => {
        const outOfRange = fc.oneof(fc.integer({ max: -1 }), fc.integer({ min: 101 }));
        const fractional = fc
            .double({ min: -1e6, max: 1e6, noNaN: true })
            .filter((x) => !Number.isInteger(x));
        const special = fc.constantFrom(
            Number.NaN,
            Number.POSITIVE_INFINITY,
            Number.NEGATIVE_INFINITY,
        );
        fc.assert(
            fc.property(fc.oneof(outOfRange, fractional, special), (w) => {
                assert.throws(
                    () => settingsWithWeight(w),
                    (err: unknown) =>
                        err instanceof ConfigError &&
                        /asm-tcp-shift:v2Weight: must be an integer from 0 to 100/.test(
                            err.message,
                        ),
                );
            }),
            { numRuns: 500 },
        );
    });

    it("non-numeric text and other JSON types are rejected naming v2Weight", () => {
        const notANumber = fc.oneof(
            fc.string().filter((s) => !/^\s*-?\d+\s*$/.test(s)),
            fc.boolean(),
            fc.array(fc.integer({ min: 0, max: 100 }), { minLength: 1 }),
            fc.object(),
        );
        fc.assert(
            fc.property(notANumber, (w) => {
                assert.throws(
                    () => settingsWithWeight(w),
                    /asm-tcp-shift:v2Weight: must be an integer from 0 to 100/,
                );
            }),
            { numRuns: 500 },
        );
    });

    it("splitWeights refuses what the config layer refuses", () => {
        fc.assert(
            fc.property(
                fc.oneof(
                    fc.integer({ max: -1 }),
                    fc.integer({ min: 101 }),
                    fc.double({ noNaN: false }).filter((x) => !Number.isInteger(x)),
                ),
                (w) => {
                    assert.throws(() => splitWeights(w), RangeError);
                },
            ),
        );
    });
});
