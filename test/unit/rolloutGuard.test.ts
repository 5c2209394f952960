import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as zlib from "zlib";
import { StackRefusedError } from "../../config";
import { main } from "../../program";
import { RolloutLockError, checkRolloutLock } from "../../preflight/rolloutLock";
import { acquireRolloutLock, updateLockPrefix } from "../../tools/state/locks";
import {
    ROLLOUT_LOCK_ENV,
    backendUrl,
    checkpointResources,
    currentBackend,
} from "../../tools/state/stackState";
import { openStateStore } from "../../tools/state/stateStore";
import { recordResources } from "../support/mocks";
import { happyConfig } from "../support/settings";
import { tempDirs } from "../support/tempDirs";

const dirs = tempDirs();
const backendDir = () => dirs.make("asm-guard-state-");

describe("the backend, found as the CLI finds it", () => {
    it("takes PULUMI_BACKEND_URL, then Pulumi.yaml's backend.url, then the account `pulumi login` chose", () => {
        const project = dirs.make("asm-guard-project-");
        const home = dirs.make("asm-guard-home-");
        fs.writeFileSync(
            path.join(home, "credentials.json"),
            JSON.stringify({ current: "s3://team-state?region=cn-hangzhou", accounts: {} }),
        );
        const env = { PULUMI_HOME: home };
        assert.equal(backendUrl(env, project), "s3://team-state?region=cn-hangzhou");
        fs.writeFileSync(
            path.join(project, "Pulumi.yaml"),
            "name: p\nruntime: nodejs\nbackend:\n  url: file:///srv/state\n",
        );
        assert.equal(backendUrl(env, project), "file:///srv/state");
        assert.equal(
            backendUrl({ ...env, PULUMI_BACKEND_URL: "file:///tmp/x" }, project),
            "file:///tmp/x",
        );
        assert.equal(
            backendUrl(
                { PULUMI_HOME: dirs.make("asm-guard-empty-") },
                dirs.make("asm-guard-none-"),
            ),
            undefined,
        );
    });

    it("reads file:// and s3:// backends; Pulumi Cloud and other kinds are another kind", () => {
        const none = dirs.make("asm-guard-none-");
        assert.equal(currentBackend({ PULUMI_BACKEND_URL: "file://~" }, none).kind, "diy");
        const home = currentBackend({ PULUMI_BACKEND_URL: "file://~/state" }, none);
        assert.equal(
            home.kind === "diy" && home.store.describe("k"),
            path.join(os.homedir(), "state", "k"),
        );
        assert.equal(currentBackend({ PULUMI_BACKEND_URL: "s3://b?region=r" }, none).kind, "diy");
        assert.equal(
            currentBackend({ PULUMI_BACKEND_URL: "https://api.pulumi.com" }, none).kind,
            "other",
        );
        assert.equal(currentBackend({ PULUMI_BACKEND_URL: "gs://bucket" }, none).kind, "other");
    });
});

describe("checkpointResources", () => {
    const checkpoint = (weight: number) =>
        JSON.stringify({
            version: 3,
            checkpoint: { latest: { resources: [{ urn: "u", type: "t", outputs: { weight } }] } },
        });

    it("reads the plain or gzipped checkpoint, whichever the backend would read", async () => {
        const dir = backendDir();
        const base = path.join(dir, ".pulumi/stacks/asm-tcp-shift/s.json");
        fs.mkdirSync(path.dirname(base), { recursive: true });
        const store = openStateStore(`file://${dir}`);
        fs.writeFileSync(base, checkpoint(1));
        assert.equal(
            (await checkpointResources(store, "asm-tcp-shift", "s"))[0].outputs!.weight,
            1,
        );
        // The backend writes .gz once gzip is on; it wins unless the plain file is newer.
        fs.writeFileSync(`${base}.gz`, zlib.gzipSync(checkpoint(2)));
        fs.utimesSync(base, new Date(1_000), new Date(1_000));
        assert.equal(
            (await checkpointResources(store, "asm-tcp-shift", "s"))[0].outputs!.weight,
            2,
        );
        fs.writeFileSync(base, checkpoint(3));
        fs.utimesSync(`${base}.gz`, new Date(1_000), new Date(1_000));
        assert.equal(
            (await checkpointResources(store, "asm-tcp-shift", "s"))[0].outputs!.weight,
            3,
        );
    });

    it("has no resources for a stack never deployed, and fails for a stack the backend does not know", async () => {
        const dir = backendDir();
        const store = openStateStore(`file://${dir}`);
        const file = path.join(dir, ".pulumi/stacks/asm-tcp-shift/new.json");
        fs.mkdirSync(path.dirname(file), { recursive: true });
        fs.writeFileSync(file, JSON.stringify({ version: 3, checkpoint: { stack: "new" } }));
        assert.deepEqual(await checkpointResources(store, "asm-tcp-shift", "new"), []);
        await assert.rejects(
            checkpointResources(store, "asm-tcp-shift", "other"),
            /stack other has no checkpoint at .*other\.json; is this the backend the update runs against\?/,
        );
    });
});

describe("checkRolloutLock", () => {
    const envFor = (dir: string, extra: Record<string, string> = {}) => ({
        PULUMI_BACKEND_URL: `file://${dir}`,
        ...extra,
    });

    it("lets an update through when no rollout holds the stack, or only the CLI's own update lock", async () => {
        const dir = backendDir();
        await checkRolloutLock("s", { env: envFor(dir), dryRun: false });
        const store = openStateStore(`file://${dir}`);
        await store.write(`${updateLockPrefix("s")}cli.json`, JSON.stringify({ pid: process.pid }));
        await checkRolloutLock("s", { env: envFor(dir), dryRun: false });
    });

    it("refuses an update while a shift holds the stack, naming the holder and how to proceed", async () => {
        const dir = backendDir();
        const lock = await acquireRolloutLock(openStateStore(`file://${dir}`), "s");
        const err: unknown = await checkRolloutLock("s", { env: envFor(dir), dryRun: false }).then(
            () => undefined,
            (e) => e,
        );
        assert.ok(err instanceof RolloutLockError, String(err));
        // The program prints a StackRefusedError's message alone.
        assert.ok(err instanceof StackRefusedError);
        assert.equal(err.locks.length, 1);
        assert.match(
            err.message,
            /^Stack s is in the middle of a rollout \(nothing was changed\):/,
        );
        assert.ok(err.message.includes(lock.key), err.message);
        assert.match(
            err.message,
            new RegExp(
                `shift rollout by ${os.userInfo().username}@${os.hostname()} \\(pid ${process.pid}\\)`,
            ),
        );
        assert.match(err.message, /Wait until that rollout completes, rolls back or is stopped/);
        assert.match(err.message, /npm run recover -- --stack s/);
        await lock.release();
        await checkRolloutLock("s", { env: envFor(dir), dryRun: false });
    });

    it("lets the rollout's own runs through, by the key shift passes", async () => {
        const dir = backendDir();
        const lock = await acquireRolloutLock(openStateStore(`file://${dir}`), "s");
        await checkRolloutLock("s", {
            env: envFor(dir, { [ROLLOUT_LOCK_ENV]: lock.key }),
            dryRun: false,
        });
        await assert.rejects(
            checkRolloutLock("s", {
                env: envFor(dir, { [ROLLOUT_LOCK_ENV]: `${lock.key}.other` }),
                dryRun: false,
            }),
            RolloutLockError,
        );
    });

    it("tells a preview about the lock instead of refusing it", async () => {
        const dir = backendDir();
        await acquireRolloutLock(openStateStore(`file://${dir}`), "s");
        const warned: string[] = [];
        await checkRolloutLock("s", {
            env: envFor(dir),
            dryRun: true,
            warn: (m) => warned.push(m),
        });
        assert.equal(warned.length, 1);
        assert.match(warned[0], /in the middle of a rollout[\s\S]*an update would be refused/);
    });

    it("refuses when the locks of a bucket cannot be read, and passes where shift can take no lock", async () => {
        await assert.rejects(
            checkRolloutLock("s", {
                env: { PULUMI_BACKEND_URL: "s3://team-state?region=cn-hangzhou" },
                dryRun: false,
            }),
            /Stack s: cannot read its rollout locks at s3:\/\/team-state\?region=cn-hangzhou \(nothing was changed\): .*set AWS_ACCESS_KEY_ID/,
        );
        await checkRolloutLock("s", {
            env: { PULUMI_BACKEND_URL: "https://api.pulumi.com" },
            dryRun: false,
        });
    });
});

describe("the program under a rollout lock", () => {
    const saved = process.env.PULUMI_BACKEND_URL;
    afterEach(() => {
        if (saved === undefined) delete process.env.PULUMI_BACKEND_URL;
        else process.env.PULUMI_BACKEND_URL = saved;
    });

    it("refuses before it registers a single resource", async () => {
        const dir = backendDir();
        // The mocked engine runs stack "unit".
        await acquireRolloutLock(openStateStore(`file://${dir}`), "unit");
        process.env.PULUMI_BACKEND_URL = `file://${dir}`;
        const recorded = await recordResources(happyConfig());
        await assert.rejects(main(), RolloutLockError);
        await new Promise((resolve) => setTimeout(resolve, 50));
        assert.deepEqual(recorded, []);
    });

    it("runs as before when no rollout holds the stack", async () => {
        process.env.PULUMI_BACKEND_URL = `file://${backendDir()}`;
        const recorded = await recordResources(happyConfig());
        const outputs = await main();
        assert.equal(outputs.v2Weight, 20);
        await new Promise((resolve) => setTimeout(resolve, 50));
        assert.ok(recorded.length > 0);
    });
});
