import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { IstioApiVersion } from "../components/model";
import { ConfigProblem, PROJECT, Problems } from "./errors";
import { ObjectFields, unknownNameMessage } from "./fields";
import {
    ASM_FIELDS,
    CHECKS,
    CONNECTION_POOL_FIELDS,
    SETTING_KEYS,
    SLB_FIELDS,
    SlbAddressType,
    SlbMode,
    Target,
} from "./keys";

export interface ProjectDefaults {
    target: Target;
    namespace: string;
    image: string;
    replicas: number;
    servicePort: number;
    gatewayPort: number;
    hosts: string[];
    istioApiVersion: IstioApiVersion;
    slb: {
        mode: SlbMode;
        addressType: SlbAddressType;
        acknowledgeListenerOverride: boolean;
        otherListenerPorts: number[];
    };
    asm: { gatewayReplicas: number; gatewayName: string; useExistingGateway: boolean };
    /** Usually empty: Istio's own defaults (no maximum duration, a 1h idle timeout). */
    connectionPool: { maxConnectionDuration?: string; idleTimeout?: string };
    renderDir: string;
    localKubeconfig: string;
}

/** Nested fields a project default may set: the rest name one stack's own cloud resources. */
const DEFAULTED_FIELDS: Record<"slb" | "asm" | "connectionPool", readonly string[]> = {
    slb: ["mode", "addressType", "acknowledgeListenerOverride", "otherListenerPorts"],
    asm: ["gatewayReplicas", "gatewayName", "useExistingGateway"],
    connectionPool: CONNECTION_POOL_FIELDS.known,
};

/** Pulumi.yaml's config block cannot serve as the project's defaults; every problem is listed. */
export class ProjectDefaultsError extends Error {
    constructor(
        readonly file: string,
        readonly problems: readonly ConfigProblem[],
    ) {
        super(
            `${file} does not hold valid config defaults; fix the project file:\n` +
                problems.map((p) => `  - ${p.key}: ${p.message}`).join("\n"),
        );
        this.name = "ProjectDefaultsError";
    }
}

/**
 * The defaults of the typed config block in Pulumi.yaml: the one place each default lives. The engine applies
 * them to the program; the parser applies the same ones (nested keys of `slb` and `asm` too, which the engine
 * replaces wholesale when a stack sets the object), so the tools and tests that parse stack files agree.
 */
export const DEFAULTS = readProjectDefaults(projectFile(__dirname));

/** The project's Pulumi.yaml: above this folder, also when it runs compiled (bin/<build>/config/defaults.js). */
function projectFile(from: string): string {
    for (let dir = from; ; dir = path.dirname(dir)) {
        const file = path.join(dir, "Pulumi.yaml");
        if (fs.existsSync(file)) return file;
        if (path.dirname(dir) === dir) return path.join(path.dirname(from), "Pulumi.yaml");
    }
}

/**
 * Reads and checks the project's defaults: every key the parser falls back on has one, each passes the same
 * check a stack's value of that key gets, and the block holds no nested field the parser would silently ignore.
 * Throws {@link ProjectDefaultsError} naming each bad `config.<key>.default` of the file.
 */
export function readProjectDefaults(file: string): ProjectDefaults {
    let source: string;
    try {
        source = fs.readFileSync(file, "utf8");
    } catch (err) {
        throw new ProjectDefaultsError(file, [
            { key: "(file)", message: `cannot be read: ${(err as Error).message}` },
        ]);
    }
    let doc: any;
    try {
        doc = parse(source);
    } catch (err) {
        throw new ProjectDefaultsError(file, [
            { key: "(file)", message: `is not YAML: ${(err as Error).message}` },
        ]);
    }
    const p = new Problems();
    if (doc?.name !== PROJECT)
        p.fail(
            "name",
            `must be ${JSON.stringify(PROJECT)}, the namespace of every config key; got ${JSON.stringify(doc?.name)}`,
        );
    const config: unknown = doc?.config;
    if (!isMapping(config)) {
        p.fail("config", "must be a mapping of the project's config keys");
        throw new ProjectDefaultsError(file, p.list.map(asFileKey));
    }
    for (const key of Object.keys(config).filter((k) => !isSettingKey(k)))
        p.fail(`config.${key}`, unknownNameMessage("key", key, SETTING_KEYS));

    /** A key's default through `check`; a missing one is reported once, as missing. */
    const fromFile = <T>(key: string, check: (p: Problems, key: string, raw: unknown) => T) => {
        const entry = config[key];
        if (!isMapping(entry) || !("default" in entry))
            return p.fail(key, "has no default; every stack would have to set it");
        return check(p, key, entry.default);
    };
    /** The fields of an object key's default, each through its check. */
    const fieldsOf = (key: "slb" | "asm" | "connectionPool", fields: ObjectFields) => {
        const raw = fromFile(key, (p, key, raw) =>
            isMapping(raw) ? raw : p.fail(key, `must be an object; got ${JSON.stringify(raw)}`),
        );
        for (const field of Object.keys(raw ?? {})) {
            if (!fields.known.includes(field))
                p.fail(key, unknownNameMessage("field", field, fields.known));
            else if (!DEFAULTED_FIELDS[key].includes(field))
                p.fail(
                    `${key}.${field}`,
                    "must not have a project default: it differs from stack to stack",
                );
        }
        /** A field's default through `check`; an optional field may have none. */
        return <T>(
            field: string,
            check: (p: Problems, key: string, raw: unknown) => T,
            optional = false,
        ) => {
            if (raw === undefined) return undefined;
            if (!(field in raw))
                return optional ? undefined : p.fail(`${key}.${field}`, "has no default");
            return check(p, `${key}.${field}`, raw[field]);
        };
    };
    const slb = fieldsOf("slb", SLB_FIELDS);
    const asm = fieldsOf("asm", ASM_FIELDS);
    const pool = fieldsOf("connectionPool", CONNECTION_POOL_FIELDS);
    const poolDefaults = Object.fromEntries(
        (["maxConnectionDuration", "idleTimeout"] as const)
            .map((field) => [field, pool(field, CHECKS[field], true)] as const)
            .filter(([, value]) => value !== undefined),
    );
    const defaults = {
        target: fromFile("target", CHECKS.target),
        namespace: fromFile("namespace", CHECKS.namespace),
        image: fromFile("image", CHECKS.image),
        replicas: fromFile("replicas", CHECKS.replicas),
        servicePort: fromFile("servicePort", CHECKS.port),
        gatewayPort: fromFile("gatewayPort", CHECKS.port),
        hosts: fromFile("hosts", CHECKS.hosts),
        istioApiVersion: fromFile("istioApiVersion", CHECKS.istioApiVersion),
        slb: {
            mode: slb("mode", CHECKS.slbMode),
            addressType: slb("addressType", CHECKS.slbAddressType),
            acknowledgeListenerOverride: slb("acknowledgeListenerOverride", CHECKS.flag),
            otherListenerPorts: slb("otherListenerPorts", CHECKS.otherListenerPorts),
        },
        asm: {
            gatewayReplicas: asm("gatewayReplicas", CHECKS.gatewayReplicas),
            gatewayName: asm("gatewayName", CHECKS.gatewayName),
            useExistingGateway: asm("useExistingGateway", CHECKS.flag),
        },
        connectionPool: poolDefaults,
        renderDir: fromFile("renderDir", CHECKS.path),
        localKubeconfig: fromFile("localKubeconfig", CHECKS.path),
    };
    if (p.list.length > 0) throw new ProjectDefaultsError(file, p.list.map(asFileKey));
    // Every value passed its check above (no problem was found), so none is undefined.
    return defaults as ProjectDefaults;
}

function isSettingKey(key: string): boolean {
    return (SETTING_KEYS as readonly string[]).includes(key);
}

function isMapping(value: unknown): value is Record<string, unknown> {
    return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `slb.mode` as the file spells it: `config.slb.default.mode`. */
function asFileKey(problem: ConfigProblem): ConfigProblem {
    if (["name", "config", "(file)"].includes(problem.key) || problem.key.startsWith("config."))
        return problem;
    const [key, ...rest] = problem.key.split(".");
    const field = rest.length > 0 ? `.${rest.join(".")}` : "";
    return { ...problem, key: `config.${key}.default${field}` };
}
