import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_ROOT } from "../../tools/engine";
import {
    buildCopiedPack,
    copyPolicyPack,
    startPack,
    stopPack,
    writeLoadedModulesReporter,
} from "../support/policyPack";

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

    const loadedFile = path.join(root, "loaded.json");

    before(() => {
        copyPolicyPack(root);
        writeLoadedModulesReporter(path.join(root, "report.cjs"), loadedFile);
        assert.deepEqual(buildCopiedPack(pack), []);
    });
    after(() => fs.rmSync(root, { recursive: true, force: true }));

    /** Starts the pack as the engine does; resolves with its port and the modules it loaded, or its exit and output. */
    async function start(): Promise<{
        port?: number;
        loaded: string[];
        stderr: string;
        code?: number | null;
    }> {
        const preload = path.join(PROJECT_ROOT, "tools/lazy-sdk.cjs");
        const started = await startPack(
            pack,
            `--require ${preload} --require ${path.join(root, "report.cjs")}`,
        );
        if (started.port === undefined)
            return { code: started.code, loaded: [], stderr: started.stderr() };
        await stopPack(started);
        const loaded = JSON.parse(fs.readFileSync(loadedFile, "utf8"));
        return { port: started.port, loaded, stderr: started.stderr() };
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
