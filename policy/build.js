// The policy pack compiled ahead of time (tools/compile-ahead.js, shared with the program), for this folder.
//   node policy/build.js           compile the pack into policy/bin/ unless bin/ is already current
//   node policy/build.js --check   exit 0 when bin/ is current, 1 when not (nothing is written)
// The pack's entry, main.js, runs bin/ only while it is current, else the TypeScript sources.
"use strict";
const path = require("path");
const ahead = require("../tools/compile-ahead.js");

const PACK_DIR = __dirname;

module.exports = {
    staleness: (packDir = PACK_DIR) => ahead.staleness(packDir),
    currentEntry: (packDir = PACK_DIR) => ahead.currentEntry(packDir),
    build: (packDir = PACK_DIR) => ahead.build(packDir),
    ensureBuilt: (packDir = PACK_DIR) => ahead.ensureBuilt(packDir),
};

if (require.main === module) {
    const check = process.argv.includes("--check");
    process.exit(
        ahead.main([...(check ? ["--check"] : []), path.relative(process.cwd(), PACK_DIR) || "."]),
    );
}
