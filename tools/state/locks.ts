/**
 * Who holds a stack. Two kinds of lock object live in the backend, both written the way Pulumi's DIY
 * backend writes its own (one object per holder under the stack's folder; write, then list, and back
 * off when anyone else is there), so they need nothing from the store beyond read-after-write
 * consistent PUT and LIST, which S3, OSS and versitygw give:
 *  - update locks: `.pulumi/locks/organization/<project>/<stack>/<id>.json`, held by the pulumi CLI for
 *    one update (`up`, `refresh`, `destroy`; not `preview`);
 *  - rollout locks: `.asm-tcp-shift/rollout-locks/<project>/<stack>/<id>.json`, held by `shift` for the
 *    whole rollout, gates and pauses included, so two rollouts of one stack never interleave.
 * A lock whose holder ran on this machine and whose process is gone is stale: `recover` removes it.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import { PROJECT } from "../../config";
import { StateStore } from "./stateStore";

export type LockKind = "update" | "rollout";

export interface LockInfo {
    kind: LockKind;
    key: string;
    /** Backend URL of the lock object, for messages. */
    location: string;
    pid?: number;
    username?: string;
    hostname?: string;
    timestamp?: string;
    /** The holder ran on this machine and its process is gone. */
    stale: boolean;
}

export const updateLockPrefix = (stack: string) =>
    `.pulumi/locks/organization/${PROJECT}/${stack}/`;
export const rolloutLockPrefix = (stack: string) =>
    `.asm-tcp-shift/rollout-locks/${PROJECT}/${stack}/`;

/** Is a process of this machine alive (zombies count as gone)? */
function alive(pid: number | undefined): boolean {
    if (!pid) return false;
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
    } catch {
        return false;
    }
}

export async function readLocks(store: StateStore, stack: string): Promise<LockInfo[]> {
    const locks: LockInfo[] = [];
    for (const [kind, prefix] of [
        ["update", updateLockPrefix(stack)],
        ["rollout", rolloutLockPrefix(stack)],
    ] as const) {
        for (const obj of await store.list(prefix)) {
            if (!obj.key.endsWith(".json")) continue;
            let content: any = {};
            try {
                content = JSON.parse((await store.read(obj.key))?.toString() ?? "{}");
            } catch {
                /* unreadable: a lock all the same */
            }
            const lock: LockInfo = {
                kind,
                key: obj.key,
                location: store.describe(obj.key),
                pid: content.pid,
                username: content.username,
                hostname: content.hostname,
                timestamp: content.timestamp,
                stale: false,
            };
            lock.stale = lock.hostname === os.hostname() && !alive(lock.pid);
            locks.push(lock);
        }
    }
    return locks;
}

export function describeLock(lock: LockInfo): string {
    const what = lock.kind === "update" ? "pulumi update" : "shift rollout";
    return `${lock.location}: ${what} by ${lock.username ?? "?"}@${lock.hostname ?? "?"} (pid ${lock.pid ?? "?"}) since ${lock.timestamp ?? "?"}${lock.stale ? " [stale: that process is gone]" : ""}`;
}

/** How to clear a stale lock, for every message that reports one. */
export function clearLockHint(stack: string): string {
    return (
        `If that job is dead (killed, machine lost), clear its lock: \`npm run recover -- --stack ${stack}\` removes locks whose process ` +
        `is gone (add --force for a job that ran on another machine), or \`npm run pulumi -- cancel --stack ${stack}\` removes ` +
        `every update lock, or delete the lock object.`
    );
}

export class StackLockedError extends Error {
    constructor(
        readonly stack: string,
        readonly locks: LockInfo[],
    ) {
        super(
            `stack ${stack} is locked by ${locks.length} lock(s):\n${locks.map((l) => `  ${describeLock(l)}`).join("\n")}\nWait for that job to end. ${clearLockHint(stack)}`,
        );
    }
}

/** Fails with StackLockedError when anyone but `ownLock` holds the stack. */
export async function assertUnlocked(
    store: StateStore,
    stack: string,
    ownLock?: string,
): Promise<void> {
    const others = (await readLocks(store, stack)).filter((l) => l.key !== ownLock);
    if (others.length > 0) throw new StackLockedError(stack, others);
}

export interface HeldLock {
    key: string;
    release(): Promise<void>;
}

/**
 * Takes the rollout lock of a stack: write our own object, then look. Anyone else there (update or rollout
 * lock) and we remove ours and fail; two that start in the same instant may both back off, never both run.
 */
export async function acquireRolloutLock(store: StateStore, stack: string): Promise<HeldLock> {
    await assertUnlocked(store, stack);
    const key = `${rolloutLockPrefix(stack)}${crypto.randomUUID()}.json`;
    const content = {
        pid: process.pid,
        username: os.userInfo().username,
        hostname: os.hostname(),
        timestamp: new Date().toISOString(),
    };
    await store.write(key, JSON.stringify(content));
    const release = () => store.remove(key);
    try {
        await assertUnlocked(store, stack, key);
    } catch (err) {
        await release();
        throw err;
    }
    return { key, release };
}
