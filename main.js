// The program's entry (package.json "main"); the program itself is index.ts.
// When tools/compile-ahead.js compiled exactly the sources there are now, the compiled program (bin/) runs, and the
// engine starts it without the TypeScript compiler. Otherwise, after any edit or before any build, the TypeScript
// sources run, through the ts-node that @pulumi/pulumi's runner registers, as before: the program is never run
// stale, even by a plain `pulumi up` that built nothing.
"use strict";
module.exports = require(
    require("./tools/compile-ahead.js").currentEntry(__dirname) || "./index.ts",
);
