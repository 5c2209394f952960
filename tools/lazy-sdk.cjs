// Preloaded into the Node.js processes the Pulumi engine starts (the program and the policy pack) through
// NODE_OPTIONS=--require (see engineEnv in tools/engine.ts and scripts/pulumi.sh): what @pulumi/pulumi does at
// start-up only for serializing functions, which neither this program nor its pack does, happens on first use.
// - @pulumi/pulumi loads npm's package manager (@npmcli/arborist, with sigstore, pacote and the rest: a third of
//   a second or more on two cores) as it starts, for finding the packages a serialized function needs: it is
//   loaded on first use instead.
// - The V8 flag it sets as it loads is set first (compile cache), and the inspector session its runners open
//   before anything else is opened on first use (see below).
"use strict";
const Module = require("module");
const load = Module._load;
const CODE_PATHS = /[\\/]@pulumi[\\/]pulumi[\\/]runtime[\\/]closure[\\/]codePaths\.js$/;
const PACK_RUNNER = /[\\/]@pulumi[\\/]pulumi[\\/]cmd[\\/]run-policy-pack[\\/]run\.js$/;
const V8_HOOKS = /[\\/]@pulumi[\\/]pulumi[\\/](runtime[\\/]closure[\\/]v8|cmd[\\/]run(-policy-pack|-plugin)?[\\/]index)\.js$/;

// @pulumi/pulumi sets this V8 flag while it loads (runtime/closure/v8.js), and V8 refuses code cached under
// other flags: the compile cache (NODE_COMPILE_CACHE) then missed for every module loaded after that point,
// typescript's 9 MB included (measured: 200 ms instead of 70 ms). Set first, it is the same for every module
// of every process that has this preload, so cached code is used.
require("v8").setFlagsFromString("--allow-natives-syntax");

Module._load = function (request, parent, isMain) {
    if (request === "@npmcli/arborist" && parent && CODE_PATHS.test(parent.filename || "")) return lazyArborist(request, parent, isMain);
    const exports = load.apply(this, arguments);
    // The engine ends the policy pack with a signal, so Node never writes the pack's compile cache at exit:
    // write it once the runner has loaded the pack (only what was not cached yet is written).
    if (parent && PACK_RUNNER.test(parent.filename || "") && require("path").isAbsolute(request) && Module.flushCompileCache) setImmediate(() => Module.flushCompileCache());
    if (typeof request === "string" && request.endsWith("v8Hooks") && parent && V8_HOOKS.test(parent.filename || "")) deferInspector(exports);
    return exports;
};

function lazyArborist(request, parent, isMain) {
    let real;
    const get = () => (real = real || load.call(Module, request, parent, isMain));
    // `__esModule` answers without loading, so TypeScript's import helper keeps the proxy as the module.
    return new Proxy(
        {},
        {
            get: (_, key) => (key === "__esModule" ? true : get()[key]),
            has: (_, key) => key in get(),
            ownKeys: () => Reflect.ownKeys(get()),
            getOwnPropertyDescriptor: (_, key) => {
                const d = Object.getOwnPropertyDescriptor(get(), key);
                return d && { ...d, configurable: true };
            },
        },
    );
}

// The program and pack runners (cmd/run, cmd/run-policy-pack) open an inspector session with the V8 debugger
// enabled before they load anything else, for one use only: mapping a function to its file when a function is
// serialized. With the debugger on, every module loads two to three times slower (@pulumi/pulumi: 280-380 ms
// instead of 90 ms). The session is opened on first use instead (runtime/closure/v8.js asks for it through
// getSessionAsync), listening before it enables the debugger, which then reports every script loaded so far:
// the map from script to file is the same as with the session opened first.
function deferInspector(v8Hooks) {
    if (!v8Hooks || typeof v8Hooks.isInitializedAsync !== "function" || typeof v8Hooks.getSessionAsync !== "function" || v8Hooks.getSessionAsync.deferred) return;
    const urls = new Map();
    let session;
    v8Hooks.isInitializedAsync = () => Promise.resolve();
    v8Hooks.getSessionAsync = Object.assign(() => (session = session || openSession(urls)), { deferred: true });
    v8Hooks.getScriptUrl = (id) => urls.get(id);
}

async function openSession(urls) {
    const inspector = require("inspector");
    const session = new inspector.Session();
    session.connect();
    session.on("Debugger.scriptParsed", (event) => urls.set(event.params.scriptId, event.params.url));
    await new Promise((resolve, reject) => session.post("Debugger.enable", (err) => (err ? reject(err) : resolve())));
    return session;
}
