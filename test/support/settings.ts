import { RawConfigReader, Settings, parseSettings } from "../../config";

/** Raw config of a valid `render` stack; tests change one key at a time. */
export function happyConfig(overrides: Record<string, unknown> = {}): Record<string, unknown> {
    return { target: "render", v2Weight: 20, ...overrides };
}

/** Serialises values the way the CLI hands them to a program (objects as JSON, the rest as text). */
export function readerFor(config: Record<string, unknown>): RawConfigReader {
    return (key) => {
        const value = config[key];
        if (value === undefined) return undefined;
        return typeof value === "string" ? value : JSON.stringify(value);
    };
}

export function settingsFor(overrides: Record<string, unknown> = {}): Settings {
    return parseSettings(readerFor(happyConfig(overrides)));
}

/** The ACK cluster id every asm-target test uses. */
export const ACK_CLUSTER_ID = "c0123456789abcdef";
/** The config keys that hold kubeconfigs; tests pass them to the mocks as secrets. */
export const KUBECONFIG_KEYS = ["dataPlaneKubeconfig", "controlPlaneKubeconfig"];

/** Raw config of a valid `asm` stack (managed CLB, kubeconfigs to be passed as secrets); tests change one key at a time. */
export function asmConfig(overrides: Record<string, unknown> = {}): Record<string, unknown> {
    return {
        target: "asm",
        v2Weight: 20,
        asm: { clusterIds: [ACK_CLUSTER_ID] },
        dataPlaneKubeconfig: "apiVersion: v1\nkind: Config # ack",
        controlPlaneKubeconfig: "apiVersion: v1\nkind: Config # asm",
        ...overrides,
    };
}
