import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_ROOT } from "../../tools/engine";

/**
 * The start-up preload of the Node.js processes the engine runs (tools/lazy-sdk.cjs): what @pulumi/pulumi loads or
 * opens only for serializing functions is deferred to first use, and serializing a function still works as before.
 */
describe("start-up preload: @pulumi/pulumi's serialization support on first use", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "asm-startup-"));
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    /** Runs a script in a process with the preload (or without it), as the engine starts the program and the pack. */
    function withPreload(script: string, preload = true): Record<string, unknown> {
        const file = path.join(dir, `script-${Math.random().toString(36).slice(2)}.js`);
        fs.writeFileSync(file, script);
        const r = spawnSync(
            process.execPath,
            [
                ...(preload ? ["--require", path.join(PROJECT_ROOT, "tools/lazy-sdk.cjs")] : []),
                file,
            ],
            { cwd: PROJECT_ROOT, encoding: "utf8", env: { ...process.env, NODE_OPTIONS: "" } },
        );
        assert.equal(r.status, 0, r.stderr);
        return JSON.parse(r.stdout.trim().split("\n").pop()!);
    }

    it("loads neither npm's package manager, the TypeScript compiler nor the Automation API with the SDK", () => {
        const loaded = withPreload(`
            const pulumi = require(${JSON.stringify(path.join(PROJECT_ROOT, "node_modules/@pulumi/pulumi"))});
            const has = (re) => Object.keys(require.cache).some((f) => re.test(f));
            const before = { arborist: has(/@npmcli[\\\\/]arborist/), typescript: has(/typescript[\\\\/]lib[\\\\/]typescript\\.js$/), automation: has(/@pulumi[\\\\/]pulumi[\\\\/]automation[\\\\/]index\\.js$/) };
            // On first use, each is the real module.
            const workspace = typeof pulumi.automation.LocalWorkspace;
            console.log(JSON.stringify({ ...before, workspace, automationNow: has(/@pulumi[\\\\/]pulumi[\\\\/]automation[\\\\/]index\\.js$/) }));
        `);
        assert.deepEqual(loaded, {
            arborist: false,
            typescript: false,
            automation: false,
            workspace: "function",
            automationNow: true,
        });
    });

    it("formats a tracked promise's stack trace when its leak report reads it, to the text it had before", () => {
        // A formatter standing in for the source-map support the runners install; it names each frame.
        const script = `
            const debuggable = require(${JSON.stringify(path.join(PROJECT_ROOT, "node_modules/@pulumi/pulumi/runtime/debuggable.js"))});
            let formatted = 0;
            Error.prepareStackTrace = (error, frames) => { formatted++; return "frames: " + frames.map((f) => f.getFunctionName() + ":" + f.getLineNumber()).join(" "); };
            // The leak report reads the promise it was given (it returns a chained one). Made outside any module
            // load, so the stack holds no frame of the preload's module loader in one of the two runs.
            const p = Promise.resolve(1);
            function makeTrackedPromise() { return debuggable.debuggablePromise(p, "a context"); }
            setImmediate(() => {
                makeTrackedPromise();
                const whenMade = formatted;
                const report = debuggable.promiseDebugString(p);
                const again = debuggable.promiseDebugString(p);
                console.log(JSON.stringify({ whenMade, report, sameAgain: report === again, formatted }));
            });
        `;
        const lazy = withPreload(script);
        const eager = withPreload(script, false);
        assert.equal(
            eager.whenMade,
            1,
            "without the preload the trace is formatted when the promise is made",
        );
        assert.equal(lazy.whenMade, 0, "with it, not then");
        assert.equal(lazy.formatted, 1, "but once, when read");
        assert.equal(lazy.sameAgain, true);
        assert.match(
            lazy.report as string,
            /STACK_TRACE:\nframes: debuggablePromise:\d+ makeTrackedPromise:\d+/,
        );
        assert.equal(lazy.report, eager.report);
    });

    it("converts a policy request's properties from protobuf once, and still gives each policy its own copy", () => {
        // The pack's packages: it is an npm workspace of the root, so they are the root's.
        const packModules = path.join(PROJECT_ROOT, "node_modules");
        const result = withPreload(`
            require(${JSON.stringify(path.join(packModules, "@pulumi/policy"))});
            const { deserializeProperties } = require(${JSON.stringify(path.join(packModules, "@pulumi/policy/deserialize.js"))});
            const { Struct } = require(${JSON.stringify(path.join(packModules, "google-protobuf/google/protobuf/struct_pb.js"))});
            const struct = Struct.fromJavaScript({ spec: { tcp: [{ route: [{ weight: 80 }, { weight: 20 }] }] } });
            let converted = 0;
            const toJavaScript = struct.toJavaScript;
            struct.toJavaScript = function () { converted++; return toJavaScript.call(this); };
            const first = deserializeProperties(struct, false);
            const second = deserializeProperties(struct, false);
            first.spec.tcp[0].route[0].weight = 0;
            console.log(JSON.stringify({ converted, distinct: first !== second, second, other: deserializeProperties(Struct.fromJavaScript({ a: 1 }), false) }));
        `);
        assert.deepEqual(result, {
            converted: 1,
            distinct: true,
            second: { spec: { tcp: [{ route: [{ weight: 80 }, { weight: 20 }] }] } },
            other: { a: 1 },
        });
    });

    it("serializes a function as before: its captured values, and its file from the inspector session opened then", () => {
        fs.writeFileSync(
            path.join(dir, "mod.js"),
            `const captured = { greeting: "hello" };\nexports.fn = (x) => captured.greeting + x;\n`,
        );
        const result = withPreload(`
            const sdk = ${JSON.stringify(path.join(PROJECT_ROOT, "node_modules/@pulumi/pulumi"))};
            const pulumi = require(sdk);
            const v8 = require(sdk + "/runtime/closure/v8.js");
            const { fn } = require(${JSON.stringify(path.join(dir, "mod.js"))});
            (async () => {
                const location = await v8.getFunctionLocationAsync(fn);
                const serialized = await pulumi.runtime.serializeFunction(fn);
                const paths = await pulumi.runtime.computeCodePaths({ extraIncludePackages: ["yaml"] });
                console.log(JSON.stringify({ file: location.file, captured: serialized.text.includes('"hello"'), yaml: paths.has("node_modules/yaml") }));
            })();
        `);
        assert.deepEqual(result, {
            file: `file://${path.join(dir, "mod.js")}`,
            captured: true,
            yaml: true,
        });
    });
});
