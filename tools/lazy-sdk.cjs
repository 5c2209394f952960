// Preloaded into the Node.js processes the Pulumi engine starts (the program and the policy pack) through
// NODE_OPTIONS=--require (see engineEnv in tools/engine.ts and scripts/pulumi.sh): what @pulumi/pulumi does at
// start-up only for serializing functions, which neither this program nor its pack does, happens on first use.
// - @pulumi/pulumi loads npm's package manager (@npmcli/arborist, with sigstore, pacote and the rest: a third of
//   a second or more on two cores) as it starts, for finding the packages a serialized function needs: it is
//   loaded on first use instead; so are the other modules it loads only for that (the TypeScript compiler, for
//   parsing a function's text; normalize-package-data) and its Automation API (`pulumi.automation`, with got and
//   js-yaml: 90 ms), which no program or pack uses through the SDK's index.
// - The V8 flag it sets as it loads is set first (compile cache), and the inspector session its runners open
//   before anything else is opened on first use (see below).
"use strict";
const Module = require("module");
const load = Module._load;
const CODE_PATHS = /[\\/]@pulumi[\\/]pulumi[\\/]runtime[\\/]closure[\\/]codePaths\.js$/;
const SDK_INDEX = /[\\/]@pulumi[\\/]pulumi[\\/]index\.js$/;
const PARSE_FUNCTION = /[\\/]@pulumi[\\/]pulumi[\\/]runtime[\\/]closure[\\/]parseFunction\.js$/;
const PACK_RUNNER = /[\\/]@pulumi[\\/]pulumi[\\/]cmd[\\/]run-policy-pack[\\/]run\.js$/;
const PACK_INDEX = /[\\/]@pulumi[\\/]pulumi[\\/]cmd[\\/]run-policy-pack[\\/]index\.js$/;
const V8_HOOKS =
    /[\\/]@pulumi[\\/]pulumi[\\/](runtime[\\/]closure[\\/]v8|cmd[\\/]run(-policy-pack|-plugin)?[\\/]index)\.js$/;

// @pulumi/pulumi sets this V8 flag while it loads (runtime/closure/v8.js), and V8 refuses code cached under
// other flags: the compile cache (NODE_COMPILE_CACHE) then missed for every module loaded after that point,
// typescript's 9 MB included (measured: 200 ms instead of 70 ms). Set first, it is the same for every module
// of every process that has this preload, so cached code is used.
require("v8").setFlagsFromString("--allow-natives-syntax");

Module._load = function (request, parent, isMain) {
    const from = parent ? parent.filename || "" : "";
    if (
        (request === "@npmcli/arborist" && CODE_PATHS.test(from)) ||
        (request === "./automation" && SDK_INDEX.test(from))
    )
        return onFirstUse(request, parent, isMain, { esModule: true });
    if (request === "normalize-package-data" && CODE_PATHS.test(from))
        return onFirstUse(request, parent, isMain, { callable: true });
    if (request === "../../typescript-shim" && PARSE_FUNCTION.test(from))
        return onFirstUse(request, parent, isMain, {});
    const exports = load.apply(this, arguments);
    // The engine ends the policy pack with a signal, so Node never writes the pack's compile cache at exit:
    // write it once the runner has loaded the pack (only what was not cached yet is written).
    if (PACK_RUNNER.test(from) && require("path").isAbsolute(request) && Module.flushCompileCache)
        setImmediate(() => Module.flushCompileCache());
    if (request === "./run" && PACK_INDEX.test(from))
        typeScriptOnFirstUse(exports, Module._resolveFilename(request, parent, isMain));
    if (typeof request === "string" && request.endsWith("v8Hooks") && V8_HOOKS.test(from))
        deferInspector(exports);
    return exports;
};

/**
 * A module loaded when it is first used. `esModule`: `__esModule` answers true without loading, so TypeScript's
 * import helper keeps the proxy as the module (arborist, automation); `callable`: the module is a function
 * (normalize-package-data), and `__esModule` answers false without loading, so the helper wraps it as `default`.
 */
function onFirstUse(request, parent, isMain, { esModule = false, callable = false }) {
    let real;
    const get = () => (real = real || load.call(Module, request, parent, isMain));
    return new Proxy(callable ? () => undefined : {}, {
        apply: (_, self, args) => Reflect.apply(get(), self, args),
        get: (_, key) => (key === "__esModule" && (esModule || callable) ? esModule : get()[key]),
        has: (_, key) => key in get(),
        ownKeys: () => Reflect.ownKeys(get()),
        getOwnPropertyDescriptor: (_, key) => {
            const d = Object.getOwnPropertyDescriptor(get(), key);
            return d && { ...d, configurable: true };
        },
    });
}

// The pack runner (cmd/run-policy-pack) registers ts-node with the TypeScript compiler (typescript's 9 MB and a
// language service: about 90 ms with a warm compile cache, far more without) before it loads any pack, even one
// whose entry is JavaScript, as this project's is when compiled (policy/main.js, policy/build.js). For such a
// pack the runner now registers nothing up front; the runner's own registration, with the same options, is made
// the first time a .ts or .tsx file is required (policy/main.js requires index.ts when the compiled pack is not
// current). A pack whose entry is TypeScript is run exactly as before.
function typeScriptOnFirstUse(runner, runnerFile) {
    const run = runner && runner.run;
    if (typeof run !== "function" || run.typeScriptOnFirstUse) return;
    runner.run = Object.assign(
        (opts) => {
            const fs = require("fs");
            const path = require("path");
            let entry;
            try {
                entry = require.resolve(
                    path.resolve(opts.argv.pwd || process.cwd(), opts.argv._[0]),
                );
            } catch {
                return run(opts); // the runner explains a missing entry
            }
            // allowJs would have ts-node compile the entry itself.
            const tsconfig = path.join(opts.argv.pwd || process.cwd(), "tsconfig.json");
            if (
                opts.typeScript !== true ||
                !/\.c?js$/.test(entry) ||
                (fs.existsSync(tsconfig) && fs.readFileSync(tsconfig, "utf8").includes("allowJs"))
            )
                return run(opts);
            const runnerRequire = Module.createRequire(runnerFile);
            const before = { ".ts": Module._extensions[".ts"], ".tsx": Module._extensions[".tsx"] };
            const register = () => {
                for (const [ext, handler] of Object.entries(before)) {
                    if (handler) Module._extensions[ext] = handler;
                    else delete Module._extensions[ext];
                }
                // As cmd/run-policy-pack/run.js registers it (@pulumi/pulumi 3.219), in the same working directory.
                const tsutils = runnerRequire("../../tsutils");
                const { tsnodeRequire, typescriptRequire } = tsutils.typeScriptRequireStrings();
                const skipProject = !fs.existsSync("tsconfig.json");
                const compilerOptions = tsutils.loadTypeScriptCompilerOptions("tsconfig.json");
                runnerRequire(tsnodeRequire).register({
                    typeCheck: true,
                    skipProject,
                    compiler: typescriptRequire,
                    compilerOptions: {
                        target: "ES2020",
                        module: "commonjs",
                        moduleResolution: "node",
                        sourceMap: "true",
                        ...compilerOptions,
                    },
                });
            };
            for (const ext of Object.keys(before)) {
                Module._extensions[ext] = function (module, filename) {
                    register();
                    return Module._extensions[ext](module, filename);
                };
            }
            return run({ ...opts, typeScript: false });
        },
        { typeScriptOnFirstUse: true },
    );
}

// The program and pack runners (cmd/run, cmd/run-policy-pack) open an inspector session with the V8 debugger
// enabled before they load anything else, for one use only: mapping a function to its file when a function is
// serialized. With the debugger on, every module loads two to three times slower (@pulumi/pulumi: 280-380 ms
// instead of 90 ms). The session is opened on first use instead (runtime/closure/v8.js asks for it through
// getSessionAsync), listening before it enables the debugger, which then reports every script loaded so far:
// the map from script to file is the same as with the session opened first.
function deferInspector(v8Hooks) {
    if (
        !v8Hooks ||
        typeof v8Hooks.isInitializedAsync !== "function" ||
        typeof v8Hooks.getSessionAsync !== "function" ||
        v8Hooks.getSessionAsync.deferred
    )
        return;
    const urls = new Map();
    let session;
    v8Hooks.isInitializedAsync = () => Promise.resolve();
    v8Hooks.getSessionAsync = Object.assign(() => (session = session || openSession(urls)), {
        deferred: true,
    });
    v8Hooks.getScriptUrl = (id) => urls.get(id);
}

async function openSession(urls) {
    const inspector = require("inspector");
    const session = new inspector.Session();
    session.connect();
    session.on("Debugger.scriptParsed", (event) =>
        urls.set(event.params.scriptId, event.params.url),
    );
    await new Promise((resolve, reject) =>
        session.post("Debugger.enable", (err) => (err ? reject(err) : resolve())),
    );
    return session;
}
