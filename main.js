// The program's entry (package.json "main"); the program itself is index.ts.
// When tools/compile-ahead.js compiled exactly the sources there are now, the compiled program (bin/) runs, and the
// engine starts it without the TypeScript compiler. Otherwise, after any edit or before any build, the TypeScript
// sources run, through the ts-node that @pulumi/pulumi's runner registers, as before: the program is never run
// stale, even by a plain `pulumi up` that built nothing.
"use strict";
const fs = require("fs");
const path = require("path");

// The project folder as the engine sees it: the runner works in it. Node names this file by its real path, so a
// copy of the project whose main.js is a link here (tests, benchmarks) would otherwise run this folder's program
// instead of its own index.ts.
const cwd = process.cwd();
const dir = same(path.join(cwd, "main.js"), __filename) ? cwd : __dirname;

module.exports = require(
    require("./tools/compile-ahead.js").currentEntry(dir) || path.join(dir, "index.ts"),
);

function same(a, b) {
    try {
        return fs.realpathSync(a) === b;
    } catch {
        return false;
    }
}
