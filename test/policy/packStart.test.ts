import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_ROOT } from "../../tools/engine";
import { copyPolicyPack } from "../support/policyPack";

/**
 * How the engine starts the pack: @pulumi/pulumi's pack runner (what `pulumi-analyzer-policy` runs), in the pack's
 * folder, with the start-up preload the engine's environment carries (tools/lazy-sdk.cjs). Compiled and current, the
 * pack starts without the TypeScript compiler; edited since its build, it runs from its sources, type-checked by the
 * ts-node the runner registers, exactly as without a build.
 */
describe("policy pack start: the compiled pack while current, else the sources, type-checked", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "asm-pack-start-"));
    const pack = path.join(root, "policy");
    const build = require(
        path.join(PROJECT_ROOT, "policy/build.js"),
    ) as typeof import("../../policy/build");

    before(() => {
        copyPolicyPack(root);
        // Reports, when the test stops the pack, which modules it had loaded.
        fs.writeFileSync(
            path.join(root, "report.cjs"),
            `process.on("SIGTERM", () => { require("fs").writeFileSync(${JSON.stringify(path.join(root, "loaded.json"))}, JSON.stringify(Object.keys(require.cache))); process.exit(0); });\n`,
        );
        assert.deepEqual(build.build(pack), []);
    });
    after(() => fs.rmSync(root, { recursive: true, force: true }));

    /** Starts the pack as the engine does; resolves with its port and the modules it loaded, or its exit and output. */
    function start(): Promise<{
        port?: number;
        loaded: string[];
        stderr: string;
        code?: number | null;
    }> {
        const runner = path.join(pack, "node_modules/@pulumi/pulumi/cmd/run-policy-pack/index.js");
        const nodeOptions = `--require ${path.join(PROJECT_ROOT, "tools/lazy-sdk.cjs")} --require ${path.join(root, "report.cjs")}`;
        const child = spawn(process.execPath, [runner, "127.0.0.1:1", "."], {
            cwd: pack,
            env: { ...process.env, NODE_OPTIONS: nodeOptions },
            stdio: ["ignore", "pipe", "pipe"],
        });
        let stderr = "";
        child.stderr.on("data", (d) => (stderr += d));
        let port: number | undefined;
        child.stdout.once("data", (d) => {
            port = Number(String(d).trim());
            child.kill("SIGTERM");
        });
        return new Promise((resolve) => {
            child.once("exit", (code) => {
                if (port === undefined) resolve({ code, loaded: [], stderr });
                else
                    resolve({
                        port,
                        loaded: JSON.parse(fs.readFileSync(path.join(root, "loaded.json"), "utf8")),
                        stderr,
                    });
            });
        });
    }
    const loadedTypeScript = (loaded: string[]) =>
        loaded.some((f) => /[\\/]typescript[\\/]lib[\\/]typescript\.js$/.test(f));

    it("starts the compiled pack, without the TypeScript compiler", async () => {
        const { port, loaded, stderr } = await start();
        assert.ok(port && port > 0, stderr);
        assert.ok(loaded.includes(build.currentEntry(pack)!));
        assert.equal(loadedTypeScript(loaded), false);
    });

    it("starts the sources of a pack edited since its build, compiled by the runner's ts-node", async () => {
        fs.appendFileSync(path.join(pack, "policies/routing.ts"), "\n// edited after the build\n");
        const { port, loaded, stderr } = await start();
        assert.ok(port && port > 0, stderr);
        assert.ok(loaded.includes(path.join(pack, "policies/routing.ts")));
        assert.ok(!loaded.some((f) => f.startsWith(path.join(pack, "bin") + path.sep)));
        assert.equal(loadedTypeScript(loaded), true);
    });

    it("refuses to start from sources with a type error, as the runner's ts-node reports it", async () => {
        fs.appendFileSync(
            path.join(pack, "policies/routing.ts"),
            "\nexport const broken: number = 'not a number';\n",
        );
        const { port, code, stderr } = await start();
        assert.equal(port, undefined);
        assert.notEqual(code, 0);
        assert.match(stderr, /TSError|Unable to compile TypeScript/);
        assert.match(stderr, /routing\.ts.*Type 'string' is not assignable to type 'number'/);
    });
});
