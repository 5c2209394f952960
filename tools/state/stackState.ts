/**
 * The state backend of the stack being deployed, found as the pulumi CLI finds it, and what the stack's last
 * checkpoint holds. The program reads the rollout locks through it and the policy pack the weight the stack serves
 * now, so both guards hold for every writer (the tools, `npm run pulumi`, the workflows, a plain `pulumi up`)
 * without any of them passing a value: the engine hands its environment to the program and to the pack.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as zlib from "zlib";
import { parse } from "yaml";
import { StateStore, openStateStore } from "./stateStore";

/**
 * Set by `shift` for the engine runs of its own rollout: the key of the rollout lock it holds, so the program tells
 * its holder's updates from everyone else's.
 */
export const ROLLOUT_LOCK_ENV = "ASM_TCP_SHIFT_ROLLOUT_LOCK";

/** Holds Pulumi.yaml; a `backend.url` there is where the CLI looks after PULUMI_BACKEND_URL. */
const PROJECT_DIR = path.resolve(__dirname, "../..");

export type Backend =
    /** A DIY backend the tools read (a folder or an S3-compatible bucket). */
    | { kind: "diy"; url: string; store: StateStore }
    /** Pulumi Cloud or a bucket kind the tools do not read: `shift` cannot hold a lock there either. */
    | { kind: "other"; url: string }
    /** No backend is configured: the CLI would not have started. */
    | { kind: "none" };

/**
 * The backend URL as the CLI resolves it: PULUMI_BACKEND_URL, then Pulumi.yaml's `backend.url`, then the account
 * `pulumi login` chose (`current` in $PULUMI_HOME/credentials.json).
 */
export function backendUrl(
    env: Record<string, string | undefined> = process.env,
    projectDir = PROJECT_DIR,
): string | undefined {
    if (env.PULUMI_BACKEND_URL) return env.PULUMI_BACKEND_URL;
    try {
        const project = parse(fs.readFileSync(path.join(projectDir, "Pulumi.yaml"), "utf8"));
        if (typeof project?.backend?.url === "string" && project.backend.url)
            return project.backend.url;
    } catch {
        /* no Pulumi.yaml here: the login decides */
    }
    const home = env.PULUMI_HOME || path.join(os.homedir(), ".pulumi");
    try {
        const current = JSON.parse(
            fs.readFileSync(path.join(home, "credentials.json"), "utf8"),
        ).current;
        return typeof current === "string" && current ? current : undefined;
    } catch {
        return undefined;
    }
}

/** The backend of this environment, opened with its credentials (S3 keys from the environment, as the tools use). */
export function currentBackend(
    env: Record<string, string | undefined> = process.env,
    projectDir = PROJECT_DIR,
): Backend {
    const url = backendUrl(env, projectDir);
    if (!url) return { kind: "none" };
    // `pulumi login --local` and `file://~/...` name the home folder, which the CLI expands.
    const expanded = url.replace(/^file:\/\/~(?=\/|$|\?)/, `file://${os.homedir()}`);
    if (!/^(file|s3):\/\//.test(expanded)) return { kind: "other", url };
    return { kind: "diy", url, store: openStateStore(expanded, env) };
}

/** A resource as the checkpoint records it. */
export interface StateResource {
    urn: string;
    type: string;
    inputs?: Record<string, any>;
    outputs?: Record<string, any>;
    /** Marked for deletion (a replaced resource's old copy): no longer what the stack serves. */
    delete?: boolean;
}

/**
 * The resources of a stack's last checkpoint, as the DIY backend keeps it (`.pulumi/stacks/<project>/<stack>.json`,
 * or `.json.gz`, whichever the backend would read). A stack that was never updated, or was destroyed, has none.
 * Throws when the stack has no checkpoint at all: every stack the CLI knows has one, so this is the wrong backend.
 */
export async function checkpointResources(
    store: StateStore,
    project: string,
    stack: string,
): Promise<StateResource[]> {
    const plain = `.pulumi/stacks/${project}/${stack}.json`;
    const gzipped = `${plain}.gz`;
    let lastError: Error | undefined;
    // A checkpoint is replaced whole on both kinds of store; a read that still fails to parse is tried again in case
    // it met a writer that does not.
    for (let attempt = 0; attempt < 3; attempt++) {
        const found = (await store.list(plain)).filter((o) => o.key === plain || o.key === gzipped);
        const p = found.find((o) => o.key === plain);
        const g = found.find((o) => o.key === gzipped);
        // The backend's own choice: the gzipped file unless the plain one was written after it.
        const key = g && !(p && p.modified > g.modified) ? gzipped : p ? plain : undefined;
        if (!key)
            throw new Error(
                `stack ${stack} has no checkpoint at ${store.describe(plain)}; is this the backend the update runs against?`,
            );
        const data = await store.read(key);
        try {
            if (!data) throw new Error("it was removed while being read");
            const text = (key === gzipped ? zlib.gunzipSync(data) : data).toString("utf8");
            const resources = JSON.parse(text)?.checkpoint?.latest?.resources;
            return Array.isArray(resources) ? resources : [];
        } catch (err) {
            lastError = new Error(
                `cannot read the checkpoint ${store.describe(key)}: ${(err as Error).message}`,
            );
            await new Promise((resolve) => setTimeout(resolve, 200));
        }
    }
    throw lastError!;
}
