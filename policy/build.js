// The policy pack, compiled ahead of time, and the check that it is current.
//   node policy/build.js           compile the pack into policy/bin/ unless bin/ is already current
//   node policy/build.js --check   exit 0 when bin/ is current, 1 when not (nothing is written)
//
// Why: the engine starts the pack (through @pulumi/pulumi's run-policy-pack) before every run with it, and waits
// for it before it starts the program. Run from its TypeScript sources, the pack loads the TypeScript compiler
// and ts-node at each start; compiled, it loads neither (see tools/lazy-sdk.cjs). `tsc -p policy` type-checks
// the same sources in `npm test`; this build type-checks them as well and writes nothing when they have errors.
//
// The guarantee: the pack's entry (main.js) runs the compiled pack only when bin/build.json records exactly the
// sources there are now (every file the compiler read, by SHA-256; the file names beside them; this file; the
// TypeScript version). After any edit, or before the first build, main.js runs the TypeScript sources, type-checked
// by the runner's ts-node as the engine always ran them, so an edited policy is never run stale, whether or not
// anything rebuilt it. The project's flows rebuild on their way (scripts/setup.sh, scripts/pulumi.sh with
// --policy-pack, gatedUp and the preview and promote tools in tools/), so they start the compiled pack.
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

const PACK_DIR = __dirname;
/** The pack's TypeScript entry, as the runner would load it without main.js. */
const ENTRY = "index.ts";
const MANIFEST = "build.json";
/** Names whose appearance beside a source could change what an import resolves to. */
const SOURCE_NAME = /\.(ts|tsx|js|jsx|cjs|mjs|json)$/;
/** Compiled builds younger than this are never removed: a pack starting right now may be loading one. */
const KEEP_MS = 10 * 60 * 1000;

const sha256 = (file) => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
const binDir = (packDir) => path.join(packDir, "bin");

function typescriptVersion(packDir) {
    try {
        return JSON.parse(
            fs.readFileSync(
                require.resolve("typescript/package.json", { paths: [packDir] }),
                "utf8",
            ),
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
 * Why the compiled pack is not current (a sentence), or undefined when it is: every recorded input has the same
 * content, no source name appeared or went beside them, and the compiler and this build are the same.
 */
function staleness(packDir = PACK_DIR) {
    let manifest;
    try {
        manifest = JSON.parse(fs.readFileSync(path.join(binDir(packDir), MANIFEST), "utf8"));
    } catch {
        return "not built";
    }
    if (manifest.builder !== sha256(__filename)) return "built by another version of build.js";
    if (manifest.typescript !== typescriptVersion(packDir))
        return `built with TypeScript ${manifest.typescript}`;
    for (const [rel, hash] of Object.entries(manifest.inputs)) {
        const file = path.resolve(packDir, rel);
        let now;
        try {
            now = sha256(file);
        } catch {
            return `${rel} is gone`;
        }
        if (now !== hash) return `${rel} changed`;
    }
    for (const [rel, names] of Object.entries(manifest.listings)) {
        if (JSON.stringify(listing(path.resolve(packDir, rel))) !== JSON.stringify(names))
            return `files were added to or removed from ${rel}`;
    }
    if (!fs.existsSync(path.resolve(binDir(packDir), manifest.entry)))
        return "the compiled entry is missing";
    return undefined;
}

/** The compiled entry when it is current, else undefined (then the TypeScript sources are what must run). */
function currentEntry(packDir = PACK_DIR) {
    if (staleness(packDir) !== undefined) return undefined;
    return path.resolve(
        binDir(packDir),
        JSON.parse(fs.readFileSync(path.join(binDir(packDir), MANIFEST), "utf8")).entry,
    );
}

/**
 * Compiles the pack with its tsconfig.json into a new folder of bin/ and records what it was built from. Returns
 * the compiler's errors (nothing is recorded then, so the sources keep running). Safe to run twice at once: each
 * build has its own folder, and bin/build.json is replaced in one rename.
 */
function build(packDir = PACK_DIR) {
    const ts = require(require.resolve("typescript", { paths: [packDir] }));
    const configFile = path.join(packDir, "tsconfig.json");
    const contents = new Map();
    const host = { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined };
    const config = ts.getParsedCommandLineOfConfigFile(configFile, {}, host);
    if (!config || config.errors.length > 0) return format(ts, config ? config.errors : []);
    const bin = binDir(packDir);
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
    const program = ts.createProgram({ rootNames: config.fileNames, options, host: compilerHost });
    const errors = ts.getPreEmitDiagnostics(program);
    if (errors.length > 0) return format(ts, errors);
    const entrySource = path.resolve(packDir, ENTRY);
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
            : [`${ENTRY} was not compiled (is it in tsconfig.json's "include"?)`];
    }
    // Inputs: the pack's own sources and whatever else of the project they import (components/model.ts), and
    // the config; not the libraries' type declarations, which do not change the JavaScript.
    const inputs = {};
    const listings = {};
    for (const source of program.getSourceFiles()) {
        const file = path.resolve(source.fileName);
        if (
            file.split(path.sep).includes("node_modules") ||
            program.isSourceFileDefaultLibrary(source)
        )
            continue;
        inputs[path.relative(packDir, file)] = crypto
            .createHash("sha256")
            .update(contents.get(file) ?? fs.readFileSync(file))
            .digest("hex");
        const dir = path.relative(packDir, path.dirname(file)) || ".";
        listings[dir] ??= listing(path.dirname(file));
    }
    // The config, and the installed libraries (a new @pulumi/policy is built against, even if it type-checks alike).
    for (const file of [configFile, path.join(packDir, "package-lock.json")]) {
        if (fs.existsSync(file)) inputs[path.relative(packDir, file)] = sha256(file);
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
    // Earlier builds, once old enough that no pack can still be loading one.
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
 * Builds the pack unless it is current. Never throws on the pack's own errors: they are returned, and the pack
 * then runs from its sources, where the engine reports them as it always did.
 */
function ensureBuilt(packDir = PACK_DIR) {
    const reason = staleness(packDir);
    if (reason === undefined) return { built: false, errors: [] };
    try {
        return { built: true, reason, errors: build(packDir) };
    } catch (err) {
        // A folder it cannot write, say: the pack still runs, from its sources.
        return { built: true, reason, errors: [`cannot build: ${err.message}`] };
    }
}

module.exports = { staleness, currentEntry, build, ensureBuilt };

if (require.main === module) {
    if (process.argv.includes("--check")) {
        const reason = staleness();
        if (reason !== undefined)
            console.error(`policy pack: compiled pack not current (${reason})`);
        process.exit(reason === undefined ? 0 : 1);
    }
    const { built, reason, errors } = ensureBuilt();
    if (errors.length > 0) {
        console.error(
            `policy pack: not compiled (${reason}); it runs from its TypeScript sources, which have errors:\n${errors.join("\n")}`,
        );
        process.exit(1);
    }
    if (built) console.error(`policy pack: compiled into policy/bin (${reason})`);
}
