import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { freePort } from "./echoServers";
import { PROJECT_ROOT } from "../../tools/engine/engine";
import { StateStore, openStateStore } from "../../tools/state/stateStore";

/** A test's own object store (versitygw via scripts/objectstore.sh), apart from the project's. */
export interface TestObjectStore {
    /** PULUMI_BACKEND_URL of its bucket. */
    url: string;
    /** PULUMI_BACKEND_URL and the AWS_* credentials, as `objectstore.sh up` prints them. */
    env: Record<string, string>;
    dir: string;
    pid(): number;
    /** SIGKILL, as a crash or an OOM kill would. */
    kill(): void;
    /** Starts it again on the same folder and port (what `up` does for a stopped server). */
    start(): void;
    /** Stops it and deletes its data. */
    destroy(): void;
    store(): StateStore;
}

export async function startObjectStore(name: string): Promise<TestObjectStore> {
    const dir = path.join(PROJECT_ROOT, ".local", `objectstore-${name}`);
    const port = await freePort();
    const scriptEnv = {
        ...process.env,
        ASM_TCP_SHIFT_OBJECTSTORE_DIR: dir,
        ASM_TCP_SHIFT_OBJECTSTORE_PORT: String(port),
        ASM_TCP_SHIFT_OBJECTSTORE_BUCKET: `${name}-state`,
    };
    const script = (action: string) =>
        execFileSync("bash", [path.join(PROJECT_ROOT, "scripts/objectstore.sh"), action], {
            env: scriptEnv,
            encoding: "utf8",
            stdio: ["ignore", "pipe", "inherit"],
        });
    script("down");
    fs.rmSync(dir, { recursive: true, force: true });
    const env: Record<string, string> = {};
    for (const [, key, value] of script("up").matchAll(/^export (\w+)='([^']*)'$/gm))
        env[key] = value;
    const pid = () => Number(fs.readFileSync(path.join(dir, "versitygw.pid"), "utf8"));
    return {
        url: env.PULUMI_BACKEND_URL,
        env,
        dir,
        pid,
        kill: () => process.kill(pid(), "SIGKILL"),
        start: () => void script("up"),
        destroy: () => {
            script("down");
            fs.rmSync(dir, { recursive: true, force: true });
        },
        store: () => openStateStore(env.PULUMI_BACKEND_URL, env),
    };
}
