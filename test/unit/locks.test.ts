import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import {
    Here,
    StackLockedError,
    acquireRolloutLock,
    assertUnlocked,
    describeLock,
    judgeLock,
    readLocks,
    rolloutLockPrefix,
    updateLockPrefix,
} from "../../tools/state/locks";
import { StateStore, openStateStore, parseS3Url, signV4 } from "../../tools/state/stateStore";
import { tempDirs } from "../support/tempDirs";

const stores = tempDirs();
const fileStore = () => openStateStore(`file://${stores.make("asm-locks-")}`);
/** Writes a lock object as a holder did `hours` ago (the object's own time too: the lease counts from the later). */
async function writeAged(store: StateStore, key: string, body: string, hours: number) {
    await store.write(key, body);
    const file = store.describe(key).replace(/^file:\/\//, "");
    const then = new Date(Date.now() - hours * 3_600_000);
    fs.utimesSync(file, then, then);
}
/** A pid that no longer exists: a process that ran and was reaped. */
const deadPid = () => spawnSync("sh", ["-c", "echo $$"], { encoding: "utf8" }).stdout.trim();
const hoursAgo = (hours: number) => new Date(Date.now() - hours * 3_600_000).toISOString();
/** A lock as the pulumi CLI writes its update locks (and this project its rollout locks, before). */
const lockBody = (pid: number | string, hostname = os.hostname(), timestamp = hoursAgo(1)) =>
    JSON.stringify({ pid: Number(pid), username: "ci", hostname, timestamp });
const BOOT_ID = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
const PID_NAMESPACE = fs.readlinkSync("/proc/self/ns/pid");
const startTimeOf = (pid: number) => {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
};
/** A lock as this project writes it now, by default from this boot and pid namespace. */
const ourLockBody = (pid: number | string, over: Record<string, string> = {}) =>
    JSON.stringify({
        ...JSON.parse(lockBody(pid)),
        bootId: BOOT_ID,
        pidNamespace: PID_NAMESPACE,
        ...(Number(pid) === process.pid ? { startTime: startTimeOf(process.pid) } : {}),
        ...over,
    });
const describeLockOf = (lock: { location: string; stale: boolean; reason?: string }) =>
    describeLock(lock as Parameters<typeof describeLock>[0]);

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

    it("a lock of this boot and this pid namespace whose process is gone is stale", async () => {
        const store = fileStore();
        await store.write(`${rolloutLockPrefix("dev")}a.json`, ourLockBody(deadPid()));
        const [lock] = await readLocks(store, "dev");
        assert.equal(lock.stale, true);
        assert.match(describeLockOf(lock), /\[stale: that process is gone\]/);
    });

    it("a lock of a same-named host in another pid namespace is not stale (a CI container with host networking)", async () => {
        const store = fileStore();
        await store.write(
            `${rolloutLockPrefix("dev")}a.json`,
            ourLockBody(deadPid(), { pidNamespace: "pid:[4026532999]" }),
        );
        const [lock] = await readLocks(store, "dev");
        assert.equal(lock.stale, false);
        assert.match(lock.reason, /another pid namespace/);
    });

    it("a lock of another boot id is not stale until the lease is over", async () => {
        const store = fileStore();
        const otherBoot = { bootId: "00000000-0000-4000-8000-000000000000" };
        await store.write(`${rolloutLockPrefix("dev")}a.json`, ourLockBody(deadPid(), otherBoot));
        await writeAged(
            store,
            `${rolloutLockPrefix("dev")}b.json`,
            ourLockBody(deadPid(), { ...otherBoot, timestamp: hoursAgo(25) }),
            25,
        );
        const locks = await readLocks(store, "dev");
        assert.deepEqual(
            locks.map((l) => [l.key.split("/").pop(), l.stale]),
            [
                ["a.json", false],
                ["b.json", true],
            ],
        );
        assert.match(locks[0].reason, /another machine, or before this one rebooted/);
        assert.match(locks[1].reason, /older than the 24 h lease/);
    });

    it("a pulumi update lock (pid, username, hostname, timestamp only) of a dead pid of this hostname is no proof; past the lease it is stale", async () => {
        const store = fileStore();
        await store.write(`${updateLockPrefix("dev")}a.json`, lockBody(deadPid()));
        await writeAged(
            store,
            `${updateLockPrefix("dev")}b.json`,
            lockBody(process.pid, "some-other-ci-runner", hoursAgo(25)),
            25,
        );
        // A rollout lock of this project written before it recorded boot id and namespace: the same.
        await store.write(`${rolloutLockPrefix("dev")}c.json`, lockBody(deadPid()));
        const locks = await readLocks(store, "dev");
        assert.deepEqual(
            locks.map((l) => [l.key.split("/").pop(), l.stale]),
            [
                ["a.json", false],
                ["b.json", true],
                ["c.json", false],
            ],
        );
        assert.match(locks[0].reason, /recorded no boot id and pid namespace/);
    });

    it("a lock whose pid now belongs to a later process is stale", async () => {
        const store = fileStore();
        // Our own pid, alive, but the holder recorded another start time: the pid was reused.
        await store.write(
            `${rolloutLockPrefix("dev")}a.json`,
            ourLockBody(process.pid, { startTime: "1" }),
        );
        await store.write(`${rolloutLockPrefix("dev")}b.json`, ourLockBody(process.pid));
        const locks = await readLocks(store, "dev");
        assert.deepEqual(
            locks.map((l) => [l.stale, l.reason]),
            [
                [true, "that process is gone (its pid now belongs to another)"],
                [false, "that process is alive"],
            ],
        );
    });

    it("a rollout lock records the holder's boot id, pid namespace and start time", async () => {
        const store = fileStore();
        const held = await acquireRolloutLock(store, "dev");
        const content = JSON.parse((await store.read(held.key))!.toString());
        assert.equal(content.pid, process.pid);
        assert.equal(content.hostname, os.hostname());
        assert.equal(content.bootId, BOOT_ID);
        assert.equal(content.pidNamespace, PID_NAMESPACE);
        assert.equal(content.startTime, startTimeOf(process.pid));
        await held.release();
    });

    it("the lease counts from the later of the time a lock records and its object's own", () => {
        const now = Date.parse("2026-03-02T12:00:00Z");
        const where: Here = {
            hostname: "h",
            bootId: "b",
            pidNamespace: "pid:[1]",
            startOf: () => "7",
            now: () => now,
        };
        const day = 24 * 3_600_000;
        const old = { pid: 5, hostname: "h", timestamp: new Date(now - day - 1000).toISOString() };
        assert.equal(judgeLock(old, new Date(now - day - 1000), where).stale, true);
        assert.equal(judgeLock(old, new Date(now - 1000), where).stale, false);
        // Unreadable: only the object's time, and never a pid.
        assert.equal(judgeLock({}, new Date(now - 1000), where).stale, false);
        assert.equal(judgeLock({}, new Date(now - day - 1000), where).stale, true);
        // This machine's view unreadable (no /proc): nothing proves a holder gone.
        const blind = { ...where, bootId: undefined, pidNamespace: undefined };
        const ours = {
            pid: 5,
            hostname: "h",
            bootId: "b",
            pidNamespace: "pid:[1]",
            timestamp: old.timestamp,
        };
        assert.equal(
            judgeLock(ours, new Date(now), { ...where, startOf: () => undefined }).stale,
            true,
        );
        assert.equal(
            judgeLock(ours, new Date(now), { ...blind, startOf: () => undefined }).stale,
            false,
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
