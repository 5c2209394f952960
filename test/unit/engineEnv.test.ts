/**
 * The offline engine environment (scripts/engine-env.sh) as the tools get it and as `npm run pulumi` gets it:
 * user settings always win, and the local stack's passphrase reaches exactly the commands that target `local`,
 * however a Pulumi user names the stack. The CLI here is a stand-in in a scratch toolchain folder that prints
 * the environment it was started with.
 */
import { strict as assert } from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { describe, it } from "node:test";
import { PROJECT_ROOT, engineEnv, scratchProject } from "../../tools/engine/engine";
import { tempDirs } from "../support/tempDirs";

const LOCAL_PASSPHRASE = fs
    .readFileSync(path.join(PROJECT_ROOT, "scripts/lib.sh"), "utf8")
    .match(/^LOCAL_STACK_PASSPHRASE=(\S+)$/m)![1];

/** A cache folder whose toolchain has a stand-in `pulumi`: it prints its env as JSON, and `stack --show-name` prints $SELECTED. */
function standInCache(): string {
    const cache = fs.mkdtempSync(path.join(os.tmpdir(), "asm-engine-env-"));
    const versions = fs.readFileSync(path.join(PROJECT_ROOT, "toolchain.versions"), "utf8");
    const pin = (name: string) => versions.match(new RegExp(`^${name}=(\\S+)$`, "m"))![1];
    const bin = path.join(
        cache,
        "toolchain",
        `pulumi-${pin("PULUMI_VERSION")}-nodejs-${pin("PULUMI_LANGUAGE_NODEJS_SDK_VERSION")}`,
        "bin",
    );
    fs.mkdirSync(bin, { recursive: true });
    const script = [
        "#!/usr/bin/env bash",
        'if [[ "$1 $2" == "stack --show-name" ]]; then [[ -n "${SELECTED:-}" ]] && echo "$SELECTED" && exit 0; echo "no stack selected" >&2; exit 255; fi',
        "node -e 'process.stdout.write(JSON.stringify(process.env))'",
    ].join("\n");
    fs.writeFileSync(path.join(bin, "pulumi"), script, { mode: 0o755 });
    return cache;
}

function cliEnv(args: string[], extra: Record<string, string> = {}): Record<string, string> {
    // This Node first, so the scratch cache never fetches one.
    const PATH = `${path.dirname(process.execPath)}:${process.env.PATH}`;
    const cache = standInCache();
    const env: Record<string, string | undefined> = {
        ...process.env,
        PATH,
        ASM_TCP_SHIFT_CACHE: cache,
    };
    delete env.PULUMI_CONFIG_PASSPHRASE;
    delete env.PULUMI_CONFIG_PASSPHRASE_FILE;
    Object.assign(env, extra);
    try {
        return JSON.parse(
            execFileSync("bash", [path.join(PROJECT_ROOT, "scripts/pulumi.sh"), ...args], {
                env: env as NodeJS.ProcessEnv,
                encoding: "utf8",
            }),
        );
    } finally {
        fs.rmSync(cache, { recursive: true, force: true });
    }
}

describe("npm run pulumi: the local passphrase follows the stack the command targets", () => {
    const cases: [string, string[], Record<string, string>, string | undefined][] = [
        ["stack select local", ["stack", "select", "local"], {}, LOCAL_PASSPHRASE],
        [
            "stack select --create local",
            ["stack", "select", "--create", "local"],
            {},
            LOCAL_PASSPHRASE,
        ],
        [
            "stack init --secrets-provider passphrase local",
            ["stack", "init", "--secrets-provider", "passphrase", "local"],
            {},
            LOCAL_PASSPHRASE,
        ],
        ["stack select dev", ["stack", "select", "dev"], {}, undefined],
        ["up --stack local", ["up", "--stack", "local"], {}, LOCAL_PASSPHRASE],
        ["up -s=local", ["up", "-s=local"], {}, LOCAL_PASSPHRASE],
        [
            "up --stack dev while local is selected",
            ["up", "--stack", "dev"],
            { SELECTED: "local" },
            undefined,
        ],
        ["up with local selected", ["up", "--yes"], { SELECTED: "local" }, LOCAL_PASSPHRASE],
        ["up with dev selected", ["up", "--yes"], { SELECTED: "dev" }, undefined],
        ["up with no stack selected", ["up"], {}, undefined],
        [
            "the user's passphrase on local",
            ["up", "--stack", "local"],
            { PULUMI_CONFIG_PASSPHRASE: "mine" },
            "mine",
        ],
    ];
    for (const [name, args, extra, expected] of cases) {
        it(name, () => assert.equal(cliEnv(args, extra).PULUMI_CONFIG_PASSPHRASE, expected));
    }

    it("the user's settings win over every offline default", () => {
        const env = cliEnv(["version"], {
            PULUMI_BACKEND_URL: "file:///tmp/asm-engine-env-mine",
            NODE_COMPILE_CACHE: "/tmp/asm-engine-env-compile-cache",
            NODE_OPTIONS: "--max-old-space-size=512",
        });
        assert.equal(env.PULUMI_BACKEND_URL, "file:///tmp/asm-engine-env-mine");
        assert.equal(env.NODE_COMPILE_CACHE, "/tmp/asm-engine-env-compile-cache");
        // Nothing is preloaded into the engine's Node.js processes: the user's NODE_OPTIONS pass through as given.
        assert.equal(env.NODE_OPTIONS, "--max-old-space-size=512");
        assert.equal(env.PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION, "true");
    });
});

describe("engineEnv: the same definition for the Automation API", () => {
    it("gives the local passphrase to the local stack only, and options win", () => {
        const saved = process.env.PULUMI_CONFIG_PASSPHRASE;
        delete process.env.PULUMI_CONFIG_PASSPHRASE;
        try {
            assert.equal(
                engineEnv("local", { backendUrl: "file:///tmp/asm-engine-env-a" })
                    .PULUMI_CONFIG_PASSPHRASE,
                LOCAL_PASSPHRASE,
            );
            assert.equal(
                engineEnv("dev", { backendUrl: "file:///tmp/asm-engine-env-a" })
                    .PULUMI_CONFIG_PASSPHRASE,
                undefined,
            );
            const own = engineEnv("local", {
                backendUrl: "file:///tmp/asm-engine-env-b",
                env: { PULUMI_CONFIG_PASSPHRASE: "bench" },
            });
            assert.equal(own.PULUMI_CONFIG_PASSPHRASE, "bench");
            assert.equal(own.PULUMI_BACKEND_URL, "file:///tmp/asm-engine-env-b");
            assert.ok(fs.existsSync("/tmp/asm-engine-env-b"), "a file backend's folder is created");
        } finally {
            if (saved !== undefined) process.env.PULUMI_CONFIG_PASSPHRASE = saved;
        }
    });
});

describe("engineEnv: one passphrase per stack", () => {
    it("takes PULUMI_CONFIG_PASSPHRASE_<STACK> for that stack, over the general one", () => {
        const env = {
            PULUMI_CONFIG_PASSPHRASE: "general",
            PULUMI_CONFIG_PASSPHRASE_DEV: "dev-own",
            PULUMI_CONFIG_PASSPHRASE_STAGING_EU: "staging-eu-own",
        };
        const passphrase = (stack: string) =>
            engineEnv(stack, { backendUrl: "file:///tmp/asm-engine-env-c", env })
                .PULUMI_CONFIG_PASSPHRASE;
        assert.equal(passphrase("dev"), "dev-own");
        assert.equal(passphrase("staging-eu"), "staging-eu-own");
        assert.equal(passphrase("prod"), "general");
        // The wrapper resolves it the same way for the CLI.
        assert.equal(cliEnv(["up", "--stack", "dev"], env).PULUMI_CONFIG_PASSPHRASE, "dev-own");
    });
});

describe("scratchProject: a scratch copy runs the real program", () => {
    const scratches = tempDirs();
    const scratch = () => scratchProject(scratches.make("asm-scratch-"));
    /** Every project file the program loads, following relative imports from index.ts. */
    function programFiles(
        file = path.join(PROJECT_ROOT, "index.ts"),
        seen = new Set<string>(),
    ): Set<string> {
        if (seen.has(file)) return seen;
        seen.add(file);
        for (const [, spec] of fs
            .readFileSync(file, "utf8")
            .matchAll(/from "(\.{1,2}\/[^"]+)"|require\("(\.{1,2}\/[^"]+)"\)/g)) {
            const base = path.resolve(path.dirname(file), spec);
            const found = [`${base}.ts`, path.join(base, "index.ts"), base].find(
                (f) => fs.existsSync(f) && fs.statSync(f).isFile(),
            );
            if (found) programFiles(found, seen);
        }
        return seen;
    }

    it("holds every module the program imports and none of the project's stacks or state", () => {
        const dir = scratch();
        const files = programFiles();
        assert.ok(files.size > 10, `the program's import graph has ${files.size} files`);
        for (const file of [
            ...files,
            path.join(PROJECT_ROOT, "Pulumi.yaml"),
            path.join(PROJECT_ROOT, "package.json"),
        ]) {
            const inScratch = path.join(dir, path.relative(PROJECT_ROOT, file));
            assert.ok(
                fs.existsSync(inScratch),
                `${path.relative(PROJECT_ROOT, file)} is missing from the scratch project`,
            );
        }
        const entries = fs.readdirSync(dir);
        assert.deepEqual(
            entries.filter(
                (e) => /^Pulumi\..+\.yaml$/.test(e) || e.startsWith(".") || e === "rendered",
            ),
            [],
        );
    });
});
