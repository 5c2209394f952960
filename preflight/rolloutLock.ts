/**
 * The rollout lock, held for every writer. `shift` keeps a rollout lock in the state backend from its first step to
 * its last, gates and pauses included (tools/state/locks.ts). Every writer of the stack runs this program, so the
 * program is where the lock is honoured: before it registers a single resource it lists the stack's rollout locks and
 * refuses an update while someone else's is there. Only the rollout's own engine runs pass, by the key `shift`
 * hands them in ROLLOUT_LOCK_ENV.
 *
 * Why the backend and not a lock on the cluster (a Kubernetes Lease): the rollout lock already lives in the backend,
 * so one lock is honoured by the tools and the program alike and nothing has to be kept renewed during a pause; the
 * backend is there on every target (render has no cluster); and the program finds it as the CLI does
 * (tools/state/stackState.ts), whatever ran it.
 */
import * as pulumi from "@pulumi/pulumi";
import { StackRefusedError } from "../config";
import { LockInfo, clearLockHint, describeLock, readLocks } from "../tools/state/locks";
import { ROLLOUT_LOCK_ENV, currentBackend } from "../tools/state/stackState";

/** The stack is refused because of the rollout lock; nothing was changed. */
export class RolloutLockError extends StackRefusedError {
    constructor(
        message: string,
        /** The rollout locks of others; none when they could not be read. */
        readonly locks: readonly LockInfo[] = [],
    ) {
        super(message, []);
        this.name = "RolloutLockError";
        // The message stands alone: it is about the stack, not about one config key.
        this.message = message;
    }
}

export interface RolloutLockCheck {
    env?: Record<string, string | undefined>;
    /** A preview changes nothing: it is told about the lock, not refused (a PR preview works during a rollout). */
    dryRun?: boolean;
    /** Where a preview's notice goes. */
    warn?: (message: string) => void;
}

/**
 * Refuses an update of `stack` while a rollout lock other than the caller's own is held. A lock that cannot be read
 * on a backend where `shift` takes them refuses too: an update that cannot tell whether a rollout is under way must
 * not risk landing in one.
 */
export async function checkRolloutLock(stack: string, opts: RolloutLockCheck = {}): Promise<void> {
    const env = opts.env ?? process.env;
    const dryRun = opts.dryRun ?? pulumi.runtime.isDryRun();
    const warn = opts.warn ?? ((message: string) => pulumi.log.warn(message));
    const backend = currentBackend(env);
    // Without a DIY backend `shift` can take no lock, so there is none to honour.
    if (backend.kind !== "diy") return;
    const own = env[ROLLOUT_LOCK_ENV];
    let error: RolloutLockError | undefined;
    try {
        const others = (await readLocks(backend.store, stack)).filter(
            (l) => l.kind === "rollout" && l.key !== own,
        );
        if (others.length > 0) error = lockedError(stack, others);
    } catch (err) {
        error = new RolloutLockError(
            `Stack ${stack}: cannot read its rollout locks at ${backend.url} (nothing was changed): ${(err as Error).message}\n` +
                "An update checks them so that it never moves the weights in the middle of a `shift`. Give this run the backend's " +
                "credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for a bucket), as the project's scripts and workflows do.",
        );
    }
    if (!error) return;
    if (dryRun) warn(`${error.message}\nThis preview goes on; an update would be refused.`);
    else throw error;
}

function lockedError(stack: string, locks: LockInfo[]): RolloutLockError {
    return new RolloutLockError(
        `Stack ${stack} is in the middle of a rollout (nothing was changed):\n` +
            `${locks.map((l) => `  ${describeLock(l)}`).join("\n")}\n` +
            "`shift` holds the stack from its first step to its last, pauses included, so that no other update moves " +
            "v2Weight under it. Wait until that rollout completes, rolls back or is stopped (it then releases the lock), " +
            `and run this update after it. ${clearLockHint(stack)}`,
        locks,
    );
}
