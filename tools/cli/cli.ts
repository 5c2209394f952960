/**
 * The skeleton every command in tools/cli/ is built on, so they all behave alike:
 *  - `--help`/`-h` prints the usage on stdout and exits 0;
 *  - an unknown flag, a positional argument, a missing or malformed value: the message and the usage on
 *    stderr, exit 64 (EX_USAGE of sysexits.h);
 *  - numeric flags are integers (or numbers) checked against their range before anything runs;
 *  - a failure is one line `<command>: <message>` on stderr, exit 1 (or the command's own code), never a
 *    stack trace; ASM_TCP_SHIFT_DEBUG=1 adds the stack for a maintainer.
 * A command module ends with `if (require.main === module) runCommand(command)`, so tests can import it.
 */
import { ParseArgsConfig, parseArgs } from "util";

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 64;

/** Wrong use of the command: reported with the usage, exit 64. */
export class UsageError extends Error {}

/** An expected failure with its own exit code (a blocked rollout, an unreachable cluster): its message is the report. */
export class CommandFailure extends Error {
    constructor(
        message: string,
        readonly exitCode: number = EXIT_FAILED,
    ) {
        super(message);
    }
}

type Options = NonNullable<ParseArgsConfig["options"]>;
type Flags<O extends Options> = ReturnType<
    typeof parseArgs<{ options: O; strict: true; allowPositionals: false }>
>["values"];

export interface Command<O extends Options> {
    name: string;
    /** Synopsis, what it does, and its exit codes: printed by --help, and after a usage error. */
    usage: string;
    options: O;
    /** Runs with the parsed flags; returns the exit code. */
    run(flags: Flags<O>): Promise<number>;
}

export function defineCommand<O extends Options>(command: Command<O>): Command<O> {
    return command;
}

/** Where the skeleton writes its own messages (help, usage errors, failures); tests pass their own. */
export interface Io {
    out(text: string): void;
    err(text: string): void;
}
const processIo: Io = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

/** Runs a command line and returns its exit code; never throws. */
export async function execute<O extends Options>(
    command: Command<O>,
    argv: string[],
    io: Io = processIo,
): Promise<number> {
    let flags: Flags<O>;
    try {
        const options = { ...command.options, help: { type: "boolean", short: "h" } } as O;
        flags = parseArgs({ args: argv, options, strict: true, allowPositionals: false })
            .values as Flags<O>;
    } catch (err) {
        return usageFailure(command, (err as Error).message, io);
    }
    if ((flags as Record<string, unknown>).help) {
        io.out(`${command.usage}\n`);
        return EXIT_OK;
    }
    try {
        return await command.run(flags);
    } catch (err) {
        if (err instanceof UsageError) return usageFailure(command, err.message, io);
        const debug =
            process.env.ASM_TCP_SHIFT_DEBUG === "1" && err instanceof Error ? `\n${err.stack}` : "";
        io.err(`${command.name}: ${err instanceof Error ? err.message : String(err)}${debug}\n`);
        return err instanceof CommandFailure ? err.exitCode : EXIT_FAILED;
    }
}

function usageFailure(command: Command<Options>, message: string, io: Io): number {
    io.err(`${command.name}: ${message}\n${command.usage}\n`);
    return EXIT_USAGE;
}

/** The process entry point: sets the exit code and lets the event loop drain, so piped output is never cut short. */
export function runCommand<O extends Options>(command: Command<O>): void {
    void execute(command, process.argv.slice(2)).then((code) => {
        process.exitCode = code;
    });
}

/** A required flag's value, or a usage error naming it. */
export function required(flag: string, value: string | undefined, example = ""): string {
    if (value === undefined || value === "")
        throw new UsageError(
            `--${flag} is required${example ? `, e.g. --${flag} ${example}` : ""}`,
        );
    return value;
}

/** An integer flag within [min, max]: anything else (NaN, 1.5, 1e3, -1, "") is a usage error naming the flag. */
export function intFlag(flag: string, raw: string | undefined, min: number, max: number): number {
    const n = Number(raw);
    if (raw === undefined || !/^\d+$/.test(raw.trim()) || n < min || n > max) {
        throw new UsageError(
            `--${flag} must be an integer from ${min} to ${max}; got ${JSON.stringify(raw ?? "")}`,
        );
    }
    return n;
}

/** A decimal flag within [min, max]. */
export function numberFlag(
    flag: string,
    raw: string | undefined,
    min: number,
    max: number,
): number {
    const n = Number(raw);
    if (raw === undefined || raw.trim() === "" || !Number.isFinite(n) || n < min || n > max) {
        throw new UsageError(
            `--${flag} must be a number from ${min} to ${max}; got ${JSON.stringify(raw ?? "")}`,
        );
    }
    return n;
}

/** A v2 weight: an integer percentage. */
export function weightFlag(flag: string, raw: string | undefined): number {
    return intFlag(flag, raw, 0, 100);
}

/** One of a fixed set of values. */
export function choiceFlag<T extends string>(
    flag: string,
    raw: string | undefined,
    allowed: readonly T[],
): T {
    if (!allowed.includes(raw as T))
        throw new UsageError(
            `--${flag} must be ${allowed.join(", ").replace(/, ([^,]*)$/, " or $1")}; got ${JSON.stringify(raw ?? "")}`,
        );
    return raw as T;
}
