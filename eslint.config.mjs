// The TypeScript linter of `npm test` (scripts/lint.sh): ESLint's and typescript-eslint's recommended rules for
// the program, the policy pack, the tools, the tests and the benchmarks.
import js from "@eslint/js";
import globals from "globals";
import tseslint from "typescript-eslint";

export default tseslint.config(
    {
        ignores: [
            "**/node_modules/",
            ".local/",
            "rendered/",
            "bench/results/",
            "bin/",
            "policy/bin/",
        ],
    },
    js.configs.recommended,
    ...tseslint.configs.recommended,
    {
        languageOptions: { globals: globals.node },
        rules: {
            // Kubernetes objects read back from an API server, a rendered file or a policy's resource props are
            // untyped JSON; `any` is the honest type at those boundaries.
            "@typescript-eslint/no-explicit-any": "off",
            "@typescript-eslint/no-unused-vars": [
                "error",
                { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" },
            ],
        },
    },
    {
        // CommonJS on purpose: preloaded with `node --require`, or run by `node` before any TypeScript loader exists.
        files: ["**/*.cjs", "policy/*.js", "tools/*.js", "main.js"],
        languageOptions: { sourceType: "commonjs" },
        // A module-scoped `const crypto = require("crypto")` is how CommonJS names a built-in, not a redeclaration.
        rules: {
            "@typescript-eslint/no-require-imports": "off",
            "no-redeclare": ["error", { builtinGlobals: false }],
        },
    },
    {
        // Tests load modules found on disk (each command, a scratch copy of the pack) by computed path.
        files: ["test/**/*.ts"],
        rules: { "@typescript-eslint/no-require-imports": "off" },
    },
);
