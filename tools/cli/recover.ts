/** npm run recover -- --stack NAME [--force]: brings a stack back after a killed update (see tools/state/recover.ts). */
import { log } from "../rollout/log";
import { recover } from "../state/recover";
import { defineCommand, required, runCommand } from "./cli";

export const command = defineCommand({
    name: "recover",
    usage: `usage: recover --stack NAME [--force]

Stops plugins a killed update left running, restores a cut-short checkpoint from its backup, removes
stale locks (--force: also locks of live processes or other machines, only when you know that job is
dead), then refreshes the state from the target (render: drops the killed update's pending operations).
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
