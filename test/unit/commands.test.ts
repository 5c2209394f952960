/**
 * Every command in tools/cli/ on the one CLI skeleton: --help exits 0, usage errors exit 64 with the
 * usage, numeric flags are checked before anything runs, and failures are one line without a stack trace.
 * In-process through the skeleton's `execute`, with the output captured; one real process at the end.
 */
import { strict as assert } from "assert";
import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { describe, it } from "node:test";
import { Command, EXIT_USAGE, Io, execute } from "../../tools/cli/cli";
import { PROJECT_ROOT } from "../../tools/engine/engine";
import { liveVirtualService } from "../../tools/rollout/routes";

const COMMANDS_DIR = path.join(PROJECT_ROOT, "tools/cli");
const COMMAND_NAMES = fs
    .readdirSync(COMMANDS_DIR)
    .filter((f) => f.endsWith(".ts") && f !== "cli.ts")
    .map((f) => f.replace(/\.ts$/, ""));

function load(name: string): Command<any> {
    // Each command module found on disk, so a new command is covered without being listed here.
    return require(path.join(COMMANDS_DIR, name)).command;
}

async function run(
    name: string,
    argv: string[],
): Promise<{ code: number; out: string; err: string }> {
    let out = "";
    let err = "";
    const io: Io = { out: (t) => (out += t), err: (t) => (err += t) };
    const code = await execute(load(name), argv, io);
    return { code, out, err };
}

const STACK_TRACE = /^\s+at /m;

describe("the CLI skeleton, for every command", () => {
    it("finds the commands package.json runs, and package.json runs each directly", () => {
        const scripts = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, "package.json"), "utf8"))
            .scripts as Record<string, string>;
        assert.deepEqual([...COMMAND_NAMES].sort(), [
            "preview",
            "promote",
            "recover",
            "routes",
            "shift",
            "verify",
        ]);
        for (const name of COMMAND_NAMES)
            assert.equal(scripts[name], `bash scripts/with-node.sh tsx tools/cli/${name}.ts`);
    });
    for (const name of COMMAND_NAMES) {
        it(`${name}: --help and -h print the usage and exit 0`, async () => {
            for (const flag of ["--help", "-h"]) {
                const r = await run(name, [flag]);
                assert.equal(r.code, 0);
                assert.match(r.out, new RegExp(`^usage: ${name}`));
                assert.match(r.out, /exit codes: 0 /);
                assert.equal(r.err, "");
            }
        });
        it(`${name}: an unknown flag or a stray argument is a usage error (64) with the usage`, async () => {
            for (const argv of [["--no-such-flag"], ["stray"]]) {
                const r = await run(name, argv);
                assert.equal(r.code, EXIT_USAGE, `${name} ${argv.join(" ")}: ${r.err}`);
                assert.match(r.err, new RegExp(`^${name}: `));
                assert.match(r.err, new RegExp(`usage: ${name}`));
                assert.doesNotMatch(r.err, STACK_TRACE);
            }
        });
    }
});

describe("flags are checked before anything runs", () => {
    const usageErrors: [string, string[], RegExp][] = [
        ["shift", ["--steps", "10"], /--stack is required/],
        ["shift", ["--stack", "s"], /--steps is required, e\.g\. --steps 10,20,50,100/],
        [
            "shift",
            ["--stack", "s", "--steps", "10,abc", "--gate", "none"],
            /--steps must be an integer from 0 to 100; got "abc"/,
        ],
        [
            "shift",
            ["--stack", "s", "--steps", "10,101", "--gate", "none"],
            /--steps must be an integer from 0 to 100; got "101"/,
        ],
        [
            "shift",
            ["--stack", "s", "--steps", "10", "--verify-port", "NaN"],
            /--verify-port must be an integer from 1 to 65535; got "NaN"/,
        ],
        [
            "shift",
            ["--stack", "s", "--steps", "10", "--verify-port", "31400", "--connections", "1e3"],
            /--connections must be an integer/,
        ],
        [
            "shift",
            ["--stack", "s", "--steps", "10", "--verify-port", "31400", "--concurrency", "0"],
            /--concurrency must be an integer from 1/,
        ],
        [
            "shift",
            ["--stack", "s", "--steps", "10", "--gate", "none", "--settle-seconds", "2.5"],
            /--settle-seconds must be an integer from 0 to 3600/,
        ],
        [
            "shift",
            ["--stack", "s", "--steps", "10", "--gate", "none", "--max-step", "0"],
            /--max-step must be an integer from 1 to 100/,
        ],
        [
            "shift",
            ["--stack", "s", "--steps", "10", "--gate", "bogus"],
            /--gate must be verify, command or none; got "bogus"/,
        ],
        [
            "shift",
            ["--stack", "s", "--steps", "10", "--gate", "command"],
            /--gate command needs --gate-command/,
        ],
        ["shift", ["--stack", "s", "--steps", "10"], /--gate verify needs --verify-port/],
        ["verify", ["--port", "31400"], /--expect-weight, or --stack/],
        [
            "verify",
            ["--port", "99999", "--expect-weight", "20"],
            /--port must be an integer from 1 to 65535; got "99999"/,
        ],
        [
            "verify",
            ["--port", "31400", "--expect-weight", "20.5"],
            /--expect-weight must be an integer from 0 to 100/,
        ],
        [
            "verify",
            ["--port", "31400", "--expect-weight", "20", "--max-error-rate", "2"],
            /--max-error-rate must be a number from 0 to 1; got "2"/,
        ],
        [
            "verify",
            ["--port", "31400", "--expect-weight", "20", "--timeout-ms", "abc"],
            /--timeout-ms must be an integer/,
        ],
        ["verify", ["--expect-weight", "20"], /--port must be an integer from 1 to 65535; got ""/],
        ["promote", ["--from", "dev"], /--to is required/],
        ["promote", ["--from", "dev", "--to", "dev"], /--from and --to must name different stacks/],
        ["preview", [], /--stack is required/],
        ["recover", [], /--stack is required/],
        ["routes", ["--stack"], /argument missing/],
    ];
    for (const [name, argv, message] of usageErrors) {
        it(`${name} ${argv.join(" ")}`, async () => {
            const r = await run(name, argv);
            assert.equal(r.code, EXIT_USAGE, r.err);
            assert.match(r.err, message);
            assert.doesNotMatch(r.err, STACK_TRACE);
        });
    }
});

describe("expected failures are one line, without a stack trace", () => {
    it("routes of a stack without a stack file says so", async () => {
        const r = await run("routes", ["--stack", "no-such-stack"]);
        assert.equal(r.code, 1);
        assert.match(
            r.err,
            /^routes: stack no-such-stack has no stack file Pulumi\.no-such-stack\.yaml in /,
        );
        assert.doesNotMatch(r.err, STACK_TRACE);
    });
    it("a local cluster without its kubeconfig says what to start", () => {
        assert.throws(
            () => liveVirtualService("/nonexistent/kubeconfig", "default"),
            /no kubeconfig at \/nonexistent\/kubeconfig: is the local cluster up\? \(npm run cluster:up/,
        );
    });
    it("as a process: exit code and stderr of a real run", async () => {
        const result = await new Promise<{ code: number; stderr: string }>((resolve) =>
            execFile(
                process.execPath,
                [
                    "--import",
                    "tsx",
                    path.join(COMMANDS_DIR, "routes.ts"),
                    "--stack",
                    "no-such-stack",
                ],
                { cwd: PROJECT_ROOT },
                (err, _out, stderr) => resolve({ code: err ? Number(err.code) : 0, stderr }),
            ),
        );
        assert.equal(result.code, 1);
        assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
        assert.doesNotMatch(result.stderr, STACK_TRACE);
    });
});
