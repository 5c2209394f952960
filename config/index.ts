/**
 * The stack's config: what each key may hold (keys.ts, fields.ts), the project's defaults (defaults.ts), each
 * stack's settings and the rules across them (settings.ts, rules.ts), and the refusals (errors.ts).
 * secrets.ts, which reads the config from the engine, is imported by the program on its own: it loads
 * @pulumi/pulumi, which the tools that parse stack files through this barrel do not need.
 */
export * from "./errors";
export {
    closest,
    editDistance,
    formatDurationMs,
    parseGoDuration,
    unknownNameMessage,
} from "./fields";
export {
    ASM_FIELDS,
    CONNECTION_POOL_FIELDS,
    MIN_CONNECTION_DURATION_MS,
    SETTING_KEYS,
    SLB_ADDRESS_TYPES,
    SLB_FIELDS,
    SLB_MODES,
    TARGETS,
} from "./keys";
export type { SlbAddressType, SlbMode, Target } from "./keys";
export * from "./defaults";
export * from "./settings";

// The policy pack checks images with the same rule; it lives in the model so the pack need not load this module.
export { imagePinProblem } from "../components/model";
