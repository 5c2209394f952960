/**
 * `@pulumi/alicloud`, loaded on first use: only `asm` stacks that create or reuse a CLB touch it, and loading
 * it costs every other program run a quarter of a second. Modules import its types with `import type`.
 */
export function loadAlicloud(): typeof import("@pulumi/alicloud") {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use, see above
    return require("@pulumi/alicloud");
}
