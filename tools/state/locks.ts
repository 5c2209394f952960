/**
 * Who holds a stack. Two kinds of lock object live in the backend, both written the way Pulumi's DIY
 * backend writes its own (one object per holder under the stack's folder; write, then list, and back
 * off when anyone else is there), so they need nothing from the store beyond read-after-write
 * consistent PUT and LIST, which S3, OSS and versitygw give:
 *  - update locks: `.pulumi/locks/organization/<project>/<stack>/<id>.json`, held by the pulumi CLI for
 *    one update (`up`, `refresh`, `destroy`; not `preview`);
 *  - rollout locks: `.asm-tcp-shift/rollout-locks/<project>/<stack>/<id>.json`, held by `shift` for the
 *    whole rollout, gates and pauses included, so two rollouts of one stack never interleave.
 * A lock is stale only when its holder is provably gone (judgeLock): `recover` removes those, and others only
 * with --force.
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
    /** Written only by this project's own locks (holderIdentity); the pulumi CLI's update locks lack them. */
    bootId?: string;
    pidNamespace?: string;
    startTime?: string;
    /** The holder is provably gone (judgeLock). */
    stale: boolean;
    /** Why the lock is judged stale or not, for messages. */
    reason: string;
}

export const updateLockPrefix = (stack: string) =>
    `.pulumi/locks/organization/${PROJECT}/${stack}/`;
export const rolloutLockPrefix = (stack: string) =>
    `.asm-tcp-shift/rollout-locks/${PROJECT}/${stack}/`;

/**
 * How long a lock may be held before it counts as abandoned whoever holds it. No holder renews its lock, so the
 * lease must outlast the longest legitimate hold: a rollout lock covers every gate and a `--pause` that waits for
 * a person to promote, who may well answer the next working day; an update lock covers one `up`, which even
 * with long custom timeouts ends within hours. A day covers both, and a job silent for longer than that is taken
 * to be dead; a rollout that really is paused past it must not be resumed without checking the stack.
 */
export const LOCK_LEASE_HOURS = 24;

/**
 * What this process can tell about where it runs, to judge whether a lock's holder is gone. A pid means something
 * only within one boot of one machine and one pid namespace: containers of a CI runner with host networking share
 * the hostname, not their pids.
 */
export interface Here {
    hostname: string;
    /** /proc/sys/kernel/random/boot_id: new at each boot, and the same in every container of the machine. */
    bootId?: string;
    /** /proc/self/ns/pid (`pid:[inode]`): the namespace our pids and our /proc belong to. */
    pidNamespace?: string;
    /** Start time (clock ticks since boot) of a live process of our pid namespace; undefined once it is gone. */
    startOf(pid: number): string | undefined;
    now(): number;
}

function readOr(read: () => string): string | undefined {
    try {
        return read().trim() || undefined;
    } catch {
        return undefined;
    }
}

/** This process's view, from /proc (nothing there off Linux, so no lock is then judged by its pid). */
export function here(): Here {
    // /proc may be mounted for another pid namespace than ours (a container sharing the host's): its pids
    // would then not be ours, so none of them is judged.
    const procIsOurs = readOr(() => fs.readlinkSync("/proc/self")) === String(process.pid);
    return {
        hostname: os.hostname(),
        bootId: readOr(() => fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8")),
        pidNamespace: procIsOurs ? readOr(() => fs.readlinkSync("/proc/self/ns/pid")) : undefined,
        startOf: (pid) => {
            const stat = readOr(() => fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
            if (!stat) return undefined;
            // Fields after the command name (which may itself hold spaces or parentheses), from the state on;
            // starttime is field 22 of proc(5).
            const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
            return fields[0] === "Z" ? undefined : fields[19];
        },
        now: () => Date.now(),
    };
}

/** Who holds a lock, as this project writes it into its own lock objects. */
export function holderIdentity(where: Here = here()): Record<string, string | number> {
    const startTime = where.pidNamespace ? where.startOf(process.pid) : undefined;
    return {
        pid: process.pid,
        username: os.userInfo().username,
        hostname: where.hostname,
        timestamp: new Date(where.now()).toISOString(),
        ...(where.bootId ? { bootId: where.bootId } : {}),
        ...(where.pidNamespace ? { pidNamespace: where.pidNamespace } : {}),
        ...(startTime ? { startTime } : {}),
    };
}

/**
 * Is the holder of a lock provably gone? Only when
 *  - the lock is older than the lease (by the later of the time it records and the object's own), or
 *  - it was written in this boot of this machine and in our pid namespace, and that pid is not alive (or is
 *    alive but started at another time than the holder did: the pid was reused).
 * A dead pid of a same-named host proves nothing otherwise: the holder may be alive in another container. The
 * pulumi CLI writes its update locks itself with only pid, username, hostname and timestamp (Pulumi 3.219
 * pkg/backend/diy/lock.go), as did this project's rollout locks before they recorded boot and namespace, so
 * those are stale only past the lease, or by --force.
 */
export function judgeLock(
    content: Partial<Omit<LockInfo, "kind" | "key" | "location" | "stale" | "reason">>,
    modified: Date | undefined,
    where: Here,
): { stale: boolean; reason: string } {
    const times = [Date.parse(content.timestamp ?? ""), modified?.getTime() ?? NaN].filter(
        (t) => !Number.isNaN(t),
    );
    if (times.length > 0 && where.now() - Math.max(...times) > LOCK_LEASE_HOURS * 3_600_000)
        return { stale: true, reason: `older than the ${LOCK_LEASE_HOURS} h lease` };
    if (!content.bootId || !content.pidNamespace)
        return {
            stale: false,
            reason: "its holder recorded no boot id and pid namespace (the pulumi CLI never does), so a dead pid here does not prove it gone",
        };
    if (!where.bootId || !where.pidNamespace)
        return { stale: false, reason: "this machine's boot id or pid namespace cannot be read" };
    if (content.bootId !== where.bootId)
        return { stale: false, reason: "written on another machine, or before this one rebooted" };
    if (content.pidNamespace !== where.pidNamespace)
        return {
            stale: false,
            reason: `written in another pid namespace (${content.pidNamespace})`,
        };
    if (!Number.isInteger(content.pid) || content.pid! <= 0)
        return { stale: false, reason: "it records no pid" };
    const started = where.startOf(content.pid!);
    if (started === undefined) return { stale: true, reason: "that process is gone" };
    if (content.startTime && started !== content.startTime)
        return { stale: true, reason: "that process is gone (its pid now belongs to another)" };
    return { stale: false, reason: "that process is alive" };
}

export async function readLocks(
    store: StateStore,
    stack: string,
    where: Here = here(),
): Promise<LockInfo[]> {
    const locks: LockInfo[] = [];
    for (const [kind, prefix] of [
        ["update", updateLockPrefix(stack)],
        ["rollout", rolloutLockPrefix(stack)],
    ] as const) {
        for (const obj of await store.list(prefix)) {
            if (!obj.key.endsWith(".json")) continue;
            let content: any = {};
            try {
                content = JSON.parse((await store.read(obj.key))?.toString() ?? "{}") ?? {};
            } catch {
                /* unreadable: a lock all the same */
            }
            const text = (v: unknown) => (typeof v === "string" ? v : undefined);
            const fields = {
                pid: typeof content.pid === "number" ? content.pid : undefined,
                username: text(content.username),
                hostname: text(content.hostname),
                timestamp: text(content.timestamp),
                bootId: text(content.bootId),
                pidNamespace: text(content.pidNamespace),
                startTime: text(content.startTime),
            };
            locks.push({
                kind,
                key: obj.key,
                location: store.describe(obj.key),
                ...fields,
                ...judgeLock(fields, obj.modified, where),
            });
        }
    }
    return locks;
}

export function describeLock(lock: LockInfo): string {
    const what = lock.kind === "update" ? "pulumi update" : "shift rollout";
    return `${lock.location}: ${what} by ${lock.username ?? "?"}@${lock.hostname ?? "?"} (pid ${lock.pid ?? "?"}) since ${lock.timestamp ?? "?"}${lock.stale ? ` [stale: ${lock.reason}]` : ""}`;
}

/** How to clear a stale lock, for every message that reports one. */
export function clearLockHint(stack: string): string {
    return (
        `If that job is dead (killed, machine lost), clear its lock: \`npm run recover -- --stack ${stack}\` removes locks whose holder ` +
        `is provably gone or older than the ${LOCK_LEASE_HOURS} h lease (add --force for any other, only when you know that job is dead), ` +
        `or \`npm run pulumi -- cancel --stack ${stack}\` removes every update lock, or delete the lock object.`
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
    await store.write(key, JSON.stringify(holderIdentity()));
    const release = () => store.remove(key);
    try {
        await assertUnlocked(store, stack, key);
    } catch (err) {
        await release();
        throw err;
    }
    return { key, release };
}
