// The policy pack's entry (package.json "main"); the pack itself is index.ts and policies/.
// When `node build.js` compiled exactly the sources there are now (see build.js), the compiled pack runs: the
// engine then starts the pack without the TypeScript compiler. Otherwise, after any edit or before any build, the
// TypeScript sources run, type-checked by the ts-node that @pulumi/pulumi's pack runner registers, as before:
// a policy is never run stale, even by a plain `pulumi preview --policy-pack policy` that built nothing.
"use strict";
require(require("./build.js").currentEntry() || "./index.ts");
