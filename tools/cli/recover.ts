/** npm run recover -- --stack NAME [--force]: brings a stack back after a killed update (see tools/state/recover.ts). */
import { log } from "../rollout/log";
import { LOCK_LEASE_HOURS } from "../state/locks";
import { recover } from "../state/recover";
import { defineCommand, required, runCommand } from "./cli";

export const command = defineCommand({
    name: "recover",
    usage: `usage: recover --stack NAME [--force]

First reads the stack's locks: while one is held by a job not provably gone, it changes nothing and names
that job. A lock is stale when its holder recorded this machine's boot and pid namespace and that process
is gone, or when it is older than the lease (${LOCK_LEASE_HOURS} h); the pulumi CLI's own update locks
record neither, so a killed update's lock needs --force (only when you know that job is dead: a live one
would race the next).
Then it stops the plugins this stack's killed update left running (others are reported, not stopped),
restores a cut-short checkpoint from its backup, removes the locks, and refreshes the state from the target
(render: drops the killed update's pending operations).
exit codes: 0 recovered (run up to converge), 1 failed (e.g. a live job holds the stack), 64 usage`,
    options: {
        stack: { type: "string" },
        force: { type: "boolean", default: false },
    },
    async run(flags) {
        for (const step of await recover(required("stack", flags.stack), { force: flags.force }))
            log("recover", step);
        log("recover", "done; run `up` to converge");
        return 0;
    },
});

if (require.main === module) runCommand(command);
