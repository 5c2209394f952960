// A TypeScript project compiled ahead of time, and the check that the compiled copy is current. Used for the program
// (entry main.js at the root) and for the policy pack (policy/main.js, policy/build.js).
//   node tools/compile-ahead.js DIR...           compile each project into DIR/bin/ unless it is already current
//   node tools/compile-ahead.js --check DIR...   exit 0 when every DIR/bin/ is current, 1 when not (writes nothing)
//
// Why: the engine starts the program (through @pulumi/pulumi's cmd/run) and the pack (cmd/run-policy-pack) in a new
// Node.js process for every run. From TypeScript sources each start loads the TypeScript compiler and ts-node and
// compiles every file; compiled, neither is loaded (tools/lazy-sdk.cjs registers ts-node only when a .ts file is
// required). `tsc` type-checks the same sources in `npm test`; a build type-checks them too and writes nothing when
// they have errors.
//
// The guarantee: a project's entry (main.js) runs the compiled copy only when DIR/bin/build.json records exactly the
// sources there are now (every file the compiler read, by SHA-256; the file names beside them; the tsconfig, the
// lock file, this file and the TypeScript version). After any edit, or before the first build, main.js runs the
// TypeScript sources, through the ts-node that @pulumi/pulumi's runner registers, as the engine always ran them: an
// edited program or policy is never run stale, whether or not anything rebuilt it. The project's flows rebuild on
// their way (scripts/setup.sh, scripts/pulumi.sh, and openStack/gatedUp and the tools in tools/).
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

/** The TypeScript entry, as the runner would load it without main.js. */
const ENTRY = "index.ts";
const MANIFEST = "build.json";
/**
 * Names whose appearance beside a source could change what an import resolves to. Not dot names: those are tools'
 * settings (.prettierrc.json), which an import reaches only by naming them, and then they are inputs. Counting them
 * made every scratch copy of the project (tools/engine.ts scratchProject, which keeps dot entries its own) run from
 * its sources.
 */
const SOURCE_NAME = /^[^.].*\.(ts|tsx|js|jsx|cjs|mjs|json)$/;
/** Compiled builds younger than this are never removed: a process starting right now may be loading one. */
const KEEP_MS = 10 * 60 * 1000;

const sha256 = (file) => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
const binDir = (dir) => path.join(dir, "bin");

/** The package-lock.json that locks what `dir` installs: its own, or the nearest above it (an npm workspace's root). */
function lockFileOf(dir) {
    for (let d = path.resolve(dir); ; d = path.dirname(d)) {
        const file = path.join(d, "package-lock.json");
        if (fs.existsSync(file)) return file;
        if (path.dirname(d) === d) return undefined;
    }
}

function typescriptVersion(dir) {
    try {
        return JSON.parse(
            fs.readFileSync(require.resolve("typescript/package.json", { paths: [dir] }), "utf8"),
        ).version;
    } catch {
        return undefined;
    }
}

/** The names of a folder that could be sources (sorted), as the manifest records them. */
function listing(dir) {
    try {
        return fs
            .readdirSync(dir)
            .filter((name) => SOURCE_NAME.test(name))
            .sort();
    } catch {
        return undefined;
    }
}

/**
 * Why the compiled copy of the project in `dir` is not current (a sentence), or undefined when it is: every recorded
 * input has the same content, no source name appeared or went beside them, and the compiler and this build are the
 * same.
 */
function staleness(dir) {
    return inspect(dir).reason;
}

/** The compiled entry when it is current, else undefined (then the TypeScript sources are what must run). */
function currentEntry(dir) {
    const { reason, manifest } = inspect(dir);
    return reason === undefined ? path.resolve(binDir(dir), manifest.entry) : undefined;
}

/** The manifest, read once (every start of the program or the pack does this), and why it is not current. */
function inspect(dir) {
    let manifest;
    try {
        manifest = JSON.parse(fs.readFileSync(path.join(binDir(dir), MANIFEST), "utf8"));
    } catch {
        return { reason: "not built" };
    }
    return { reason: reasonNotCurrent(dir, manifest), manifest };
}

function reasonNotCurrent(dir, manifest) {
    if (manifest.builder !== sha256(__filename))
        return "built by another version of compile-ahead.js";
    if (manifest.typescript !== typescriptVersion(dir))
        return `built with TypeScript ${manifest.typescript}`;
    for (const [rel, hash] of Object.entries(manifest.inputs)) {
        let now;
        try {
            now = sha256(path.resolve(dir, rel));
        } catch {
            return `${rel} is gone`;
        }
        if (now !== hash) return `${rel} changed`;
    }
    for (const [rel, names] of Object.entries(manifest.listings)) {
        if (JSON.stringify(listing(path.resolve(dir, rel))) !== JSON.stringify(names))
            return `files were added to or removed from ${rel}`;
    }
    if (!fs.existsSync(path.resolve(binDir(dir), manifest.entry)))
        return "the compiled entry is missing";
    return undefined;
}

/**
 * Compiles the project in `dir` (its tsconfig.json, from its entry index.ts) into a new folder of bin/ and records
 * what it was built from. Returns the compiler's errors (nothing is recorded then, so the sources keep running).
 * Safe to run twice at once: each build has its own folder, and bin/build.json is replaced in one rename.
 */
function build(dir) {
    const ts = require(require.resolve("typescript", { paths: [dir] }));
    const configFile = path.join(dir, "tsconfig.json");
    const contents = new Map();
    const host = { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined };
    const config = ts.getParsedCommandLineOfConfigFile(configFile, {}, host);
    if (!config || config.errors.length > 0) return format(ts, config ? config.errors : []);
    const bin = binDir(dir);
    fs.mkdirSync(bin, { recursive: true });
    const id = `${Date.now().toString(36)}-${crypto.randomBytes(4).toString("hex")}`;
    const outDir = path.join(bin, id);
    const options = {
        ...config.options,
        noEmit: false,
        outDir,
        sourceMap: true,
        declaration: false,
        declarationMap: false,
        incremental: false,
        composite: false,
    };
    const compilerHost = ts.createCompilerHost(options);
    const readFile = compilerHost.readFile;
    // The hashes are of what the compiler read, so an edit made during the build makes the build stale, not wrong.
    compilerHost.readFile = (file) => {
        const text = readFile.call(compilerHost, file);
        if (text !== undefined) contents.set(path.resolve(file), text);
        return text;
    };
    // From the entry, not the tsconfig's "include": what runs is what the entry imports (the root tsconfig also
    // includes the tests and tools, which `tsc` checks and the program never loads).
    const entrySource = path.resolve(dir, ENTRY);
    const program = ts.createProgram({ rootNames: [entrySource], options, host: compilerHost });
    const errors = ts.getPreEmitDiagnostics(program);
    if (errors.length > 0) return format(ts, errors);
    let entry;
    const emitted = program.emit(undefined, (file, text, bom, onError, sources) => {
        fs.mkdirSync(path.dirname(file), { recursive: true });
        fs.writeFileSync(file, text);
        if (
            file.endsWith(".js") &&
            sources &&
            sources.some((s) => path.resolve(s.fileName) === entrySource)
        )
            entry = path.relative(bin, file);
    });
    if (emitted.diagnostics.length > 0 || entry === undefined) {
        fs.rmSync(outDir, { recursive: true, force: true });
        return emitted.diagnostics.length > 0
            ? format(ts, emitted.diagnostics)
            : [`${ENTRY} was not compiled`];
    }
    // Inputs: the project's own sources and whatever else they import from outside it (the pack imports
    // components/model.ts), and the config; not the libraries' type declarations, which do not change the JavaScript.
    const inputs = {};
    const listings = {};
    for (const source of program.getSourceFiles()) {
        const file = path.resolve(source.fileName);
        if (
            file.split(path.sep).includes("node_modules") ||
            program.isSourceFileDefaultLibrary(source)
        )
            continue;
        inputs[path.relative(dir, file)] = crypto
            .createHash("sha256")
            .update(contents.get(file) ?? fs.readFileSync(file))
            .digest("hex");
        const folder = path.relative(dir, path.dirname(file)) || ".";
        listings[folder] ??= listing(path.dirname(file));
    }
    // The config, and the installed libraries (a new @pulumi/* is built against, even if it type-checks alike): the
    // lock file of the folder or of the nearest one above it (an npm workspace's packages are locked at its root).
    for (const file of [configFile, lockFileOf(dir)]) {
        if (file && fs.existsSync(file)) inputs[path.relative(dir, file)] = sha256(file);
    }
    const manifest = {
        builder: sha256(__filename),
        typescript: ts.version,
        entry,
        inputs,
        listings,
    };
    const tmp = path.join(bin, `.${MANIFEST}.${id}`);
    fs.writeFileSync(tmp, JSON.stringify(manifest, null, 2) + "\n");
    fs.renameSync(tmp, path.join(bin, MANIFEST));
    // Earlier builds, once old enough that no process can still be loading one.
    for (const name of fs.readdirSync(bin)) {
        const old = path.join(bin, name);
        if (name === id || name === MANIFEST) continue;
        try {
            if (Date.now() - fs.statSync(old).mtimeMs > KEEP_MS)
                fs.rmSync(old, { recursive: true, force: true });
        } catch {
            // Removed by a build beside this one.
        }
    }
    return [];
}

function format(ts, diagnostics) {
    const host = {
        getCanonicalFileName: (f) => f,
        getCurrentDirectory: () => process.cwd(),
        getNewLine: () => "\n",
    };
    return diagnostics.map((d) => ts.formatDiagnostic(d, host).trim());
}

/**
 * Builds the project unless it is current. Never throws on the project's own errors: they are returned, and the
 * project then runs from its sources, where the engine reports them as it always did.
 */
function ensureBuilt(dir) {
    const reason = staleness(dir);
    if (reason === undefined) return { built: false, errors: [] };
    try {
        return { built: true, reason, errors: build(dir) };
    } catch (err) {
        // A folder it cannot write, say: the project still runs, from its sources.
        return { built: true, reason, errors: [`cannot build: ${err.message}`] };
    }
}

/** The command line of this file and of policy/build.js; returns the exit code. */
function main(args) {
    const check = args.includes("--check");
    const dirs = args.filter((a) => a !== "--check").map((d) => path.resolve(d));
    let code = 0;
    for (const dir of dirs) {
        const where = path.relative(process.cwd(), dir);
        const label = fs.existsSync(path.join(dir, "PulumiPolicy.yaml"))
            ? "policy pack"
            : "program";
        if (check) {
            const reason = staleness(dir);
            if (reason !== undefined) {
                console.error(`${label}: compiled copy not current (${reason})`);
                code = 1;
            }
            continue;
        }
        const { built, reason, errors } = ensureBuilt(dir);
        if (errors.length > 0) {
            console.error(
                `${label}: not compiled (${reason}); it runs from its TypeScript sources, which have errors:\n${errors.join("\n")}`,
            );
            code = 1;
        } else if (built)
            console.error(`${label}: compiled into ${path.join(where, "bin")}/ (${reason})`);
    }
    return code;
}

module.exports = { staleness, currentEntry, build, ensureBuilt, main };

if (require.main === module) process.exit(main(process.argv.slice(2)));
