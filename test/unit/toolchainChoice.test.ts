import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_ROOT } from "../../tools/engine/engine";

/**
 * Which pulumi the toolchain takes (scripts/pulumi-cli.sh): the user's, at any supported version, with its own
 * Node.js language host; the build from Go modules only when something is missing. Stand-ins play the CLI and
 * `go` (a stand-in `go` that fails at once shows the build was chosen without running one).
 */
describe("toolchain: the user's pulumi, or the offline build", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "asm-toolchain-choice-"));
    after(() => fs.rmSync(root, { recursive: true, force: true }));

    function standIn(dir: string, name: string, body: string): void {
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(path.join(dir, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    }

    /** Runs `scripts/toolchain.sh pulumi` with a fresh cache and only the given directories before the system's. */
    function toolchain(name: string, bins: string[]) {
        const cache = path.join(root, name, "cache");
        const goLog = path.join(root, name, "go.log");
        const goDir = path.join(root, name, "go");
        standIn(
            goDir,
            "go",
            `echo "go $*" >> '${goLog}'; echo 'stand-in go: no builds in this test' >&2; exit 1`,
        );
        const r = spawnSync("bash", [path.join(PROJECT_ROOT, "scripts/toolchain.sh"), "pulumi"], {
            encoding: "utf8",
            env: {
                HOME: path.join(root, name, "home"),
                ASM_TCP_SHIFT_CACHE: cache,
                PATH: [...bins, goDir, "/usr/bin", "/bin"].join(":"),
            },
        });
        const linked = path.join(
            cache,
            "toolchain",
            fs.existsSync(path.join(cache, "toolchain"))
                ? (fs
                      .readdirSync(path.join(cache, "toolchain"))
                      .find((d) => d.startsWith("pulumi-")) ?? "-")
                : "-",
            "bin",
        );
        const target = (bin: string) =>
            fs.existsSync(path.join(linked, bin))
                ? fs.realpathSync(path.join(linked, bin))
                : undefined;
        return {
            status: r.status,
            stderr: r.stderr,
            built: fs.existsSync(goLog),
            pulumi: target("pulumi"),
            host: target("pulumi-language-nodejs"),
        };
    }

    it("uses a pulumi of another version with its language host as is, and builds nothing", () => {
        const bin = path.join(root, "newer", "pulumi-bin");
        standIn(bin, "pulumi", 'echo "v3.230.1"');
        standIn(bin, "pulumi-language-nodejs", "exit 0");
        const r = toolchain("newer", [bin]);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.built, false, "no Go build was started");
        assert.equal(r.pulumi, fs.realpathSync(path.join(bin, "pulumi")));
        assert.equal(r.host, fs.realpathSync(path.join(bin, "pulumi-language-nodejs")));
        assert.match(
            r.stderr,
            /using the pulumi on PATH: .*\(v3\.230\.1, with its own Node\.js language host\); nothing to build/,
        );
    });

    it("builds from Go modules when there is no pulumi at all", () => {
        const r = toolchain("none", []);
        assert.notEqual(r.status, 0);
        assert.equal(r.built, true, "the offline build was chosen");
    });

    it("builds when the pulumi on PATH lacks its Node.js language host, or is older than the project supports", () => {
        const lonely = path.join(root, "lonely", "pulumi-bin");
        standIn(lonely, "pulumi", 'echo "v3.219.0"');
        const withoutHost = toolchain("lonely", [lonely]);
        assert.equal(withoutHost.built, true);
        assert.match(withoutHost.stderr, /has no Node\.js language host/);

        const old = path.join(root, "old", "pulumi-bin");
        standIn(old, "pulumi", 'echo "v3.40.0"');
        standIn(old, "pulumi-language-nodejs", "exit 0");
        const tooOld = toolchain("old", [old]);
        assert.equal(tooOld.built, true);
        assert.match(tooOld.stderr, /is v3\.40\.0, older than 3\.100\.0; not using it/);
    });
});
