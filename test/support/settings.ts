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
