import { VERSIONS } from "./model";

export const MIN_WEIGHT = 0;
export const MAX_WEIGHT = 100;

/** Traffic share per subset, in percent of new TCP connections. */
export interface WeightSplit {
    readonly stable: number;
    readonly canary: number;
}

export function isValidWeight(value: unknown): value is number {
    return (
        typeof value === "number" &&
        Number.isInteger(value) &&
        value >= MIN_WEIGHT &&
        value <= MAX_WEIGHT
    );
}

/**
 * Splits 100% between the subsets. Istio itself accepts any non-negative weights with a
 * positive total (they are relative), so the 0..100 / sum-100 contract is ours to enforce.
 */
export function splitWeights(canaryWeight: number): WeightSplit {
    if (!isValidWeight(canaryWeight)) {
        throw new RangeError(
            `${VERSIONS.canary.subset} weight must be an integer from ${MIN_WEIGHT} to ${MAX_WEIGHT}; got ${String(canaryWeight)}`,
        );
    }
    return { stable: MAX_WEIGHT - canaryWeight, canary: canaryWeight };
}

/** The same split keyed by subset name (`v1`, `v2`), as the VirtualService routes it and istiod hands it to gateways. */
export function splitBySubset(canaryWeight: number): Record<string, number> {
    const { stable, canary } = splitWeights(canaryWeight);
    return { [VERSIONS.stable.subset]: stable, [VERSIONS.canary.subset]: canary };
}
