import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { spawnSync } from "child_process";
import * as os from "os";
import {
    StackLockedError,
    acquireRolloutLock,
    assertUnlocked,
    readLocks,
    rolloutLockPrefix,
    updateLockPrefix,
} from "../../tools/state/locks";
import { openStateStore, parseS3Url, signV4 } from "../../tools/state/stateStore";
import { tempDirs } from "../support/tempDirs";

const stores = tempDirs();
const fileStore = () => openStateStore(`file://${stores.make("asm-locks-")}`);
/** A pid that no longer exists: a process that ran and was reaped. */
const deadPid = () => spawnSync("sh", ["-c", "echo $$"], { encoding: "utf8" }).stdout.trim();
const lockBody = (pid: number | string, hostname = os.hostname()) =>
    JSON.stringify({
        pid: Number(pid),
        username: "ci",
        hostname,
        timestamp: "2026-01-01T00:00:00Z",
    });

describe("parseS3Url", () => {
    it("reads the local server's URL as Pulumi's s3 backend does (path style, plain HTTP)", () => {
        const loc = parseS3Url(
            "s3://asm-tcp-shift-state?endpoint=127.0.0.1:7070&disableSSL=true&s3ForcePathStyle=true&region=us-east-1",
        );
        assert.deepEqual(loc, {
            bucket: "asm-tcp-shift-state",
            prefix: "",
            region: "us-east-1",
            endpoint: "http://127.0.0.1:7070",
            pathStyle: true,
            url: "s3://asm-tcp-shift-state",
        });
    });
    it("reads an OSS URL (virtual-hosted style over HTTPS, a key prefix)", () => {
        const loc = parseS3Url(
            "s3://team-state/asm?endpoint=oss-cn-hangzhou.aliyuncs.com&region=cn-hangzhou",
        );
        assert.equal(loc.endpoint, "https://oss-cn-hangzhou.aliyuncs.com");
        assert.equal(loc.pathStyle, false);
        assert.equal(loc.prefix, "asm");
        assert.equal(loc.region, "cn-hangzhou");
    });
    it("refuses a query parameter Pulumi's backend would refuse", () => {
        assert.throws(
            () => parseS3Url("s3://b?endpoint=x&usePathStyle=true"),
            /unknown query parameter "usePathStyle"/,
        );
    });
});

describe("locks", () => {
    it("an update lock of a live process blocks, naming the object, the holder and how to clear it", async () => {
        const store = fileStore();
        await store.write(`${updateLockPrefix("dev")}abc.json`, lockBody(process.pid));
        const err = await assertUnlocked(store, "dev").then(
            () => undefined,
            (e) => e,
        );
        assert.ok(err instanceof StackLockedError);
        assert.match(err.message, /stack dev is locked by 1 lock\(s\)/);
        assert.match(
            err.message,
            /\.pulumi\/locks\/organization\/asm-tcp-shift\/dev\/abc\.json: pulumi update by ci@/,
        );
        assert.match(err.message, /npm run recover -- --stack dev/);
        assert.match(err.message, /pulumi -- cancel --stack dev/);
        assert.equal((await readLocks(store, "dev"))[0].stale, false);
    });

    it("a lock of a process of this machine that is gone is stale; one of another machine never is", async () => {
        const store = fileStore();
        await store.write(`${updateLockPrefix("dev")}a.json`, lockBody(deadPid()));
        await store.write(
            `${updateLockPrefix("dev")}b.json`,
            lockBody(deadPid(), "some-other-ci-runner"),
        );
        assert.deepEqual(
            (await readLocks(store, "dev")).map((l) => [l.key.split("/").pop(), l.stale]),
            [
                ["a.json", true],
                ["b.json", false],
            ],
        );
    });

    it("a rollout lock excludes a second rollout and is gone once released", async () => {
        const store = fileStore();
        const first = await acquireRolloutLock(store, "dev");
        assert.ok(first.key.startsWith(rolloutLockPrefix("dev")));
        await assert.rejects(acquireRolloutLock(store, "dev"), /shift rollout by/);
        assert.deepEqual(
            (await store.list(rolloutLockPrefix("dev"))).length,
            1,
            "the refused one left no object behind",
        );
        await assertUnlocked(store, "dev", first.key);
        await assertUnlocked(store, "staging");
        await first.release();
        await assertUnlocked(store, "dev");
        (await acquireRolloutLock(store, "dev")).release();
    });

    it("a rollout is refused while an update holds the stack", async () => {
        const store = fileStore();
        await store.write(`${updateLockPrefix("dev")}x.json`, lockBody(process.pid));
        await assert.rejects(acquireRolloutLock(store, "dev"), StackLockedError);
        assert.deepEqual(await store.list(rolloutLockPrefix("dev")), []);
    });
});

describe("signV4", () => {
    it("signs AWS's documented example (GET Bucket, virtual-hosted style)", () => {
        const { headers } = signV4({
            method: "GET",
            host: "examplebucket.s3.amazonaws.com",
            path: "/",
            query: { "max-keys": "2", prefix: "J" },
            payload: "",
            accessKey: "AKIAIOSFODNN7EXAMPLE",
            secretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            region: "us-east-1",
            now: new Date("2013-05-24T00:00:00Z"),
        });
        assert.equal(
            headers.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
        );
    });
});
