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
// - Both runners register ts-node, with the TypeScript compiler, only when a .ts file is first required: a
//   compiled program or pack (tools/compile-ahead.js) never loads them.
// - The stack trace it gives every promise it tracks is formatted when read, not when the promise is made.
// - In the policy pack, what only its requests use (source maps, @pulumi/pulumi's index and resource runtime) loads
//   after its start, and once the engine has configured it the pack runs its own handlers on a small made-up
//   request, while the engine starts the program (see below).
"use strict";
const Module = require("module");
const load = Module._load;
const CODE_PATHS = /[\\/]@pulumi[\\/]pulumi[\\/]runtime[\\/]closure[\\/]codePaths\.js$/;
const SDK_INDEX = /[\\/]@pulumi[\\/]pulumi[\\/]index\.js$/;
const PARSE_FUNCTION = /[\\/]@pulumi[\\/]pulumi[\\/]runtime[\\/]closure[\\/]parseFunction\.js$/;
const PACK_RUNNER = /[\\/]@pulumi[\\/]pulumi[\\/]cmd[\\/]run-policy-pack[\\/]run\.js$/;
const PACK_INDEX = /[\\/]@pulumi[\\/]pulumi[\\/]cmd[\\/]run-policy-pack[\\/]index\.js$/;
const PROGRAM_INDEX = /[\\/]@pulumi[\\/]pulumi[\\/]cmd[\\/]run[\\/]index\.js$/;
const POLICY_SDK = /[\\/]@pulumi[\\/]policy[\\/][^\\/]+\.js$/;
const POLICY_DESERIALIZE = /[\\/]@pulumi[\\/]policy[\\/]deserialize\.js$/;
const RUNTIME_SETTINGS = /[\\/]@pulumi[\\/]pulumi[\\/]runtime[\\/]settings\.js$/;
/** This process is the policy pack: the engine runs @pulumi/pulumi's pack runner (pulumi-analyzer-policy). */
const IN_PACK = PACK_INDEX.test(process.argv[1] || "");
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
    if (IN_PACK && request === "source-map-support/register" && PACK_INDEX.test(from))
        return sourceMapsOnFirstStackTrace(request, parent, isMain);
    if (
        IN_PACK &&
        ((RUNTIME_SETTINGS.test(from) &&
            (request === "./callbacks" || request.startsWith("../proto/resource_"))) ||
            (request === "../../runtime/stack" && PACK_RUNNER.test(from)) ||
            ((request === "@pulumi/pulumi" || request === "@pulumi/pulumi/runtime/rpc") &&
                POLICY_DESERIALIZE.test(from)))
    )
        return onFirstUse(request, parent, isMain, { esModule: true });
    const exports = load.apply(this, arguments);
    // The engine ends the policy pack with a signal, so Node never writes the pack's compile cache at exit:
    // write it once the runner has loaded the pack (only what was not cached yet is written).
    if (PACK_RUNNER.test(from) && require("path").isAbsolute(request) && Module.flushCompileCache)
        setImmediate(() => Module.flushCompileCache());
    if (request === "./run" && PACK_INDEX.test(from))
        packTypeScriptOnFirstUse(exports, Module._resolveFilename(request, parent, isMain));
    if (request === "./run" && PROGRAM_INDEX.test(from))
        programTypeScriptOnFirstUse(exports, Module._resolveFilename(request, parent, isMain));
    if (typeof request === "string" && /[\\/]debuggable(\.js)?$/.test(request))
        lazyPromiseStacks(exports);
    if (request === "./deserialize" && POLICY_SDK.test(from)) convertPropertiesOnce(exports);
    if (typeof request === "string" && request.endsWith("v8Hooks") && V8_HOOKS.test(from))
        deferInspector(exports);
    if (IN_PACK && request === "@grpc/grpc-js") warmUpAfterConfigure(exports);
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

// Both runners register ts-node with the TypeScript compiler (typescript's 9 MB, and for the pack a language
// service: 80-90 ms with a warm compile cache, far more without) before they load the program or the pack, even one
// whose entry is JavaScript, as this project's are when compiled (main.js, policy/main.js, tools/compile-ahead.js).
// Instead, the runner's own registration, with the same options, is made the first time a .ts or .tsx file is
// required (the entries require index.ts when the compiled copy is not current). An entry that is TypeScript runs
// exactly as before; so do ES module packages and projects with allowJs (where ts-node compiles .js files too).

/** Registers ts-node, through `register`, the first time a .ts or .tsx file is required. */
function onFirstTypeScriptFile(register) {
    const before = { ".ts": Module._extensions[".ts"], ".tsx": Module._extensions[".tsx"] };
    const registerNow = () => {
        for (const [ext, handler] of Object.entries(before)) {
            if (handler) Module._extensions[ext] = handler;
            else delete Module._extensions[ext];
        }
        register();
    };
    for (const ext of Object.keys(before)) {
        Module._extensions[ext] = function (module, filename) {
            registerNow();
            return Module._extensions[ext](module, filename);
        };
    }
}

/**
 * Registers the runner's ts-node with the runner's TypeScript, the tsconfig's compiler options over the runners'
 * common defaults, and the options only one runner gives (`own`, from the tsconfig's compiler options).
 */
function registerTsNode(runnerFile, tsconfig, own) {
    const runnerRequire = Module.createRequire(runnerFile);
    const tsutils = runnerRequire("../../tsutils");
    const compilerOptions = tsutils.loadTypeScriptCompilerOptions(tsconfig);
    const { tsnodeRequire, typescriptRequire } = tsutils.typeScriptRequireStrings();
    runnerRequire(tsnodeRequire).register({
        ...own(compilerOptions),
        compiler: typescriptRequire,
        skipProject: !require("fs").existsSync(tsconfig),
        compilerOptions: {
            target: "ES2020",
            module: "commonjs",
            moduleResolution: "node",
            sourceMap: "true",
            ...compilerOptions,
        },
    });
}

/** Whether tsconfig.json (or the file given) lets ts-node compile JavaScript files. */
function allowsJs(tsconfig) {
    const fs = require("fs");
    return fs.existsSync(tsconfig) && fs.readFileSync(tsconfig, "utf8").includes("allowJs");
}

/** The pack runner (cmd/run-policy-pack/run.js): `run(opts)`, where `opts.typeScript` asks for ts-node. */
function packTypeScriptOnFirstUse(runner, runnerFile) {
    const run = runner && runner.run;
    if (typeof run !== "function" || run.typeScriptOnFirstUse) return;
    runner.run = Object.assign(
        (opts) => {
            const path = require("path");
            let entry;
            try {
                entry = require.resolve(
                    path.resolve(opts.argv.pwd || process.cwd(), opts.argv._[0]),
                );
            } catch {
                return run(opts); // the runner explains a missing entry
            }
            const tsconfig = path.join(opts.argv.pwd || process.cwd(), "tsconfig.json");
            if (opts.typeScript !== true || !/\.c?js$/.test(entry) || allowsJs(tsconfig))
                return run(opts);
            // As cmd/run-policy-pack/run.js registers it (@pulumi/pulumi 3.219), in the same working directory.
            onFirstTypeScriptFile(() =>
                registerTsNode(runnerFile, "tsconfig.json", () => ({ typeCheck: true })),
            );
            return run({ ...opts, typeScript: false });
        },
        { typeScriptOnFirstUse: true },
    );
}

/**
 * The program runner (cmd/run/run.js): `run(argv, ...)` registers ts-node when PULUMI_NODEJS_TYPESCRIPT is "true"
 * (Pulumi.yaml's `typescript` option), reading it before its first `await`. It sees "false" for that moment, and the
 * registration it would have made is made on the first .ts file instead. Were a later SDK to read the variable
 * later, it would see "true" and register at once, as before: slower, never different.
 */
function programTypeScriptOnFirstUse(runner, runnerFile) {
    const run = runner && runner.run;
    if (typeof run !== "function" || run.typeScriptOnFirstUse) return;
    runner.run = Object.assign(
        function (argv, ...rest) {
            const path = require("path");
            const dir = path.resolve((argv && argv.pwd) || process.cwd());
            // Relative to the program's folder, where the runner changes directory before it registers.
            const tsconfig = process.env.PULUMI_NODEJS_TSCONFIG_PATH || "tsconfig.json";
            if (
                process.env.PULUMI_NODEJS_TYPESCRIPT !== "true" ||
                isModulePackage(dir) ||
                allowsJs(path.resolve(dir, tsconfig))
            )
                return run.call(this, argv, ...rest);
            // As cmd/run/run.js registers it for a CommonJS package (@pulumi/pulumi 3.219).
            onFirstTypeScriptFile(() =>
                registerTsNode(runnerFile, tsconfig, (compilerOptions) => {
                    const transpileOnly = process.env.PULUMI_NODEJS_TRANSPILE_ONLY;
                    return {
                        transpileOnly: transpileOnly
                            ? transpileOnly === "true"
                            : compilerOptions.noCheck,
                        project: tsconfig,
                    };
                }),
            );
            process.env.PULUMI_NODEJS_TYPESCRIPT = "false";
            try {
                return run.call(this, argv, ...rest);
            } finally {
                process.env.PULUMI_NODEJS_TYPESCRIPT = "true";
            }
        },
        { typeScriptOnFirstUse: true },
    );
}

/** Whether the package holding `dir` is an ES module package (the runner then uses ts-node's ESM loader). */
function isModulePackage(dir) {
    const fs = require("fs");
    const path = require("path");
    for (let d = dir; ; d = path.dirname(d)) {
        const file = path.join(d, "package.json");
        if (fs.existsSync(file)) {
            try {
                return JSON.parse(fs.readFileSync(file, "utf8")).type === "module";
            } catch {
                return true; // unreadable: leave the runner as it is
            }
        }
        if (path.dirname(d) === d) return false;
    }
}

// @pulumi/pulumi's debuggablePromise (runtime/debuggable.js) gives every promise the engine's calls make a stack
// trace, read at once (`new Error().stack`), only to print it should the promise still be pending when the process
// exits (its leak report). Reading a stack runs the source-map support both runners install, which maps every
// frame: about 0.1 s of CPU, and its garbage, in a weight change's program run. The trace is still taken when the
// promise is made; it is formatted, to the same text, when the leak report reads it.
function lazyPromiseStacks(debuggable) {
    const make = debuggable && debuggable.debuggablePromise;
    if (
        typeof make !== "function" ||
        typeof debuggable.promiseDebugString !== "function" ||
        make.lazyStacks
    )
        return;
    debuggable.debuggablePromise = Object.assign(
        function (promise, ctx) {
            const format = Error.prepareStackTrace;
            const limit = Error.stackTraceLimit;
            if (typeof format !== "function" || typeof limit !== "number")
                return make.call(this, promise, ctx);
            // This wrapper's own frame is left out, and the limit raised by one for it: the same frames as before.
            Error.prepareStackTrace = (error, frames) => {
                const wrapper = frames.findIndex((f) => f.getFileName() === __filename);
                const own = wrapper < 0 ? frames : frames.filter((_, i) => i !== wrapper);
                let text;
                return { toString: () => (text ??= String(format(error, own))) };
            };
            Error.stackTraceLimit = limit + 1;
            try {
                return make.call(this, promise, ctx);
            } finally {
                Error.prepareStackTrace = format;
                Error.stackTraceLimit = limit;
            }
        },
        { lazyStacks: true },
    );
}

// @pulumi/policy's analyzer (server.js, 1.21) deserializes a resource's properties once for every policy that
// checks it: each time it turns the request's protobuf Struct into JavaScript (google-protobuf's toJavaScript, the
// costly part: this pack has twenty policies, and the policy gate's properties are the whole desired state), then
// copies that into the fresh objects each policy gets. The Struct of a request is turned into JavaScript once;
// every policy still gets its own fresh copy, as before.
function convertPropertiesOnce(deserialize) {
    const convert = deserialize && deserialize.deserializeProperties;
    if (typeof convert !== "function" || convert.convertsOnce) return;
    const converted = new WeakMap();
    deserialize.deserializeProperties = Object.assign(
        function (struct, ...rest) {
            if (!struct || typeof struct !== "object" || typeof struct.toJavaScript !== "function")
                return convert.call(this, struct, ...rest);
            let plain = converted.get(struct);
            if (plain === undefined) {
                plain = struct.toJavaScript();
                converted.set(struct, plain);
            }
            return convert.call(this, { toJavaScript: () => plain }, ...rest);
        },
        { convertsOnce: true },
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

// The policy pack's start is on the critical path of every run with a pack: the engine starts the program only once
// the pack has printed its port and answered its configuration calls. What the pack loaded before its port and uses
// only later, if at all (measured on two cores, of 130-150 ms to its port): source-map-support (~18 ms, mapping
// stack traces to TypeScript), and @pulumi/pulumi's index with its resource runtime (~25 ms), which @pulumi/policy
// uses only once a request comes in (to deserialize its properties) and which the runner loads for what only a
// program uses: the stack resource a program runs in (the pack runner passes `runInStack: false`), and the callback
// server and resource monitor client that runtime/settings makes for a program.
// Each loads on first use instead: source maps on the first stack trace prepared, the rest on the first request.

/** Installs source-map-support when the first stack trace is prepared, instead of as the pack runner starts. */
function sourceMapsOnFirstStackTrace(request, parent, isMain) {
    const before = Error.prepareStackTrace;
    let format;
    function firstStackTrace(error, frames) {
        if (format === undefined) {
            if (Error.prepareStackTrace === firstStackTrace) Error.prepareStackTrace = before;
            load.call(Module, request, parent, isMain); // source-map-support's install() sets its formatter
            format = Error.prepareStackTrace === firstStackTrace ? before : Error.prepareStackTrace;
        }
        // Without a formatter V8 writes the message and the frames, as here.
        if (typeof format !== "function")
            return [String(error), ...frames.map((f) => `    at ${f}`)].join("\n");
        return format(error, frames);
    }
    Error.prepareStackTrace = firstStackTrace;
    return {};
}

// Once configured, the engine starts the program and sends the pack nothing until the program registers its stack,
// some hundreds of milliseconds later; then it asks for a remediation and an analysis of every resource in turn,
// each call waiting for the last. On two cores most of a call's time in the pack was first-call cost: modules
// loaded on first use (above), functions compiled on their first call. So right after answering the configuration,
// the pack runs its own handlers on a small made-up resource, a few times, decoding and encoding as for a real call:
// that work moves into the wait. Its answers are discarded, and any error is ignored; a real call that comes in the
// meantime waits at most for one of these handler runs.

const WARM_UP_ROUNDS = 2;
/** A small made-up resource: nested maps and lists, as the requests' properties have. */
const WARM_UP_RESOURCE = {
    type: "kubernetes:core/v1:Service",
    name: "warm-up",
    props: {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "warm-up", labels: { app: "warm-up" } },
        spec: { ports: [{ name: "tcp", port: 1, protocol: "TCP" }], selector: { app: "warm-up" } },
    },
};

/** Wraps the analyzer service's `configure` handler so the pack warms up its request path once it has answered. */
function warmUpAfterConfigure(grpc) {
    const Server = grpc && grpc.Server;
    const addService = Server && Server.prototype.addService;
    if (typeof addService !== "function" || addService.warmsUp) return;
    Server.prototype.addService = Object.assign(
        function (service, implementation) {
            const methods = ["configure", "remediate", "analyze", "analyzeStack"];
            const isAnalyzer =
                service &&
                implementation &&
                methods.every((m) => service[m] && typeof implementation[m] === "function") &&
                typeof service.analyze.requestType === "function" &&
                typeof service.analyzeStack.requestType === "function";
            if (!isAnalyzer) return addService.call(this, service, implementation);
            const configure = implementation.configure;
            let warmed = false;
            const wrapped = {
                ...implementation,
                configure(call, callback) {
                    return configure.call(this, call, (err, response) => {
                        callback(err, response);
                        if (err || warmed) return;
                        warmed = true;
                        // After the answer has gone out: the engine is waiting for it.
                        setTimeout(() => warmUp(service, wrapped).catch(() => undefined), 20);
                    });
                },
            };
            return addService.call(this, service, wrapped);
        },
        { warmsUp: true },
    );
}

/** Runs the remediate, analyze and analyzeStack handlers on WARM_UP_RESOURCE, WARM_UP_ROUNDS times. */
async function warmUp(service, implementation) {
    const Request = service.analyze.requestType;
    const StackRequest = service.analyzeStack.requestType;
    // The message types of the service's own generated module (@pulumi/pulumi's proto/analyzer_pb), and its Struct.
    const generated = Object.values(require.cache).find(
        (m) => m && m.exports && m.exports.AnalyzeRequest === Request,
    );
    if (!generated) return;
    const analyzer = generated.exports;
    const { Struct } = Module.createRequire(generated.filename)(
        "google-protobuf/google/protobuf/struct_pb",
    );
    const { type, name, props } = WARM_UP_RESOURCE;
    const urn = `urn:pulumi:warm-up::warm-up::${type}::${name}`;
    const fill = (message) => {
        message.setType(type);
        message.setName(name);
        message.setUrn(urn);
        message.setProperties(Struct.fromJavaScript(props));
        message.setOptions(new analyzer.AnalyzerResourceOptions());
        return message;
    };
    const request = fill(new Request());
    const stackRequest = new StackRequest();
    stackRequest.setResourcesList([fill(new analyzer.AnalyzerResource())]);
    const calls = [
        ["remediate", request],
        ["analyze", request],
        ["analyzeStack", stackRequest],
    ];
    for (let round = 0; round < WARM_UP_ROUNDS; round++) {
        for (const [method, message] of calls) {
            const definition = service[method];
            const decoded = definition.requestDeserialize(definition.requestSerialize(message));
            await new Promise((resolve) => {
                try {
                    implementation[method]({ request: decoded }, (err, response) => {
                        try {
                            if (!err && response) definition.responseSerialize(response);
                        } finally {
                            resolve();
                        }
                    });
                } catch {
                    resolve();
                }
            });
            // One handler run at a time: a real call waits for this one at most.
            await new Promise((resolve) => setImmediate(resolve));
        }
    }
    // What loaded since the start-up flush (see Module._load above) is compiled now: cache it for the next start.
    if (Module.flushCompileCache) Module.flushCompileCache();
}
