/** The project's name: the namespace of its config keys (`asm-tcp-shift:<key>`). */
export const PROJECT = "asm-tcp-shift";

/** One problem with a stack, tied to the config key whose change resolves it. */
export interface ConfigProblem {
    readonly key: string;
    readonly message: string;
}

/**
 * A stack refused before any resource is registered, listing every problem at once, each with its config key.
 * The program prints its message alone (no stack trace): the refusal is the expected answer to bad input.
 */
export class StackRefusedError extends Error {
    constructor(
        headline: string,
        readonly problems: readonly ConfigProblem[],
    ) {
        super(
            `${headline} (nothing was changed):\n` +
                problems.map((p) => `  - ${PROJECT}:${p.key}: ${p.message}`).join("\n"),
        );
    }
}

/** Every problem found in the stack's config, reported together so one edit fixes them all. */
export class ConfigError extends StackRefusedError {
    constructor(problems: readonly ConfigProblem[]) {
        super("Invalid stack configuration", problems);
        this.name = "ConfigError";
    }
}

/**
 * Collects every problem; a parser that finds one returns undefined and the others go on.
 * Values of keys stored as secrets are never quoted back: a refusal's message lands in terminals and CI logs.
 */
export class Problems {
    readonly list: ConfigProblem[] = [];
    constructor(private readonly isSecret: (key: string) => boolean = () => false) {}

    fail(key: string, message: string): undefined {
        this.list.push({ key, message });
        return undefined;
    }

    /** A value as a message quotes it: JSON, or a placeholder when its key (or the object holding it) is secret. */
    show(key: string, value: unknown): string {
        return this.isSecret(rootKey(key)) ? SECRET_PLACEHOLDER : JSON.stringify(value);
    }

    /** The same, unquoted: a name within a sentence. */
    name(key: string, value: unknown): string {
        return this.isSecret(rootKey(key)) ? SECRET_PLACEHOLDER : String(value);
    }
}

const SECRET_PLACEHOLDER = "(a secret value, not shown)";

/** The top-level key a problem's key belongs to: `slb` for `slb.otherListenerPorts[0]`. */
export function rootKey(key: string): string {
    return key.split(/[.[]/, 1)[0];
}
