// Types of build.js (plain JavaScript: the pack's entry, main.js, uses it before any TypeScript compiler is loaded).

/** Why the compiled pack is not current (a sentence), or undefined when it is. */
export function staleness(packDir?: string): string | undefined;
/** The compiled entry when it is current, else undefined (then the TypeScript sources are what must run). */
export function currentEntry(packDir?: string): string | undefined;
/** Compiles the pack into a new folder of bin/ and records what it was built from; returns the compiler's errors. */
export function build(packDir?: string): string[];
/** Builds the pack unless it is current; returns the pack's errors instead of throwing them. */
export function ensureBuilt(packDir?: string): {
    built: boolean;
    reason?: string;
    errors: string[];
};
