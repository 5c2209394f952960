// Types of compile-ahead.js (plain JavaScript: the entries main.js and policy/main.js use it before any TypeScript
// compiler is loaded).

/** Why the compiled copy of the project in `dir` is not current (a sentence), or undefined when it is. */
export function staleness(dir: string): string | undefined;
/** The compiled entry when it is current, else undefined (then the TypeScript sources are what must run). */
export function currentEntry(dir: string): string | undefined;
/** Compiles the project into a new folder of `dir`/bin/ and records what it was built from; returns the compiler's errors. */
export function build(dir: string): string[];
/** Builds the project unless it is current; returns its errors instead of throwing them. */
export function ensureBuilt(dir: string): { built: boolean; reason?: string; errors: string[] };
/** The command line (`[--check] DIR...`); returns the exit code. */
export function main(args: string[]): number;
