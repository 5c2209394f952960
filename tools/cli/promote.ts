/** npm run promote -- --from STACK --to STACK [--yes]: carries a rollout to the next environment (see tools/rollout/promote.ts). */
import { promote } from "../rollout/promote";
import { UsageError, defineCommand, required, runCommand } from "./cli";

export const command = defineCommand({
    name: "promote",
    usage: `usage: promote --from STACK --to STACK [--yes] [--policy-config FILE]

Copies v2Weight and the image keys from one stack to the next, previews the target with the policy
pack (policy/config/<to>.json sets the environment's enforcement), and applies only with --yes.
exit codes: 0 previewed or applied, 1 blocked by policy or a failed preview, 64 usage`,
    options: {
        from: { type: "string" },
        to: { type: "string" },
        yes: { type: "boolean", default: false },
        "policy-config": { type: "string" },
    },
    async run(flags) {
        const from = required("from", flags.from, "dev");
        const to = required("to", flags.to, "staging");
        if (from === to) throw new UsageError("--from and --to must name different stacks");
        const result = await promote({
            from,
            to,
            yes: flags.yes!,
            policyConfig: flags["policy-config"],
            onOutput: (o) => process.stdout.write(o),
        });
        if (result.outcome === "blocked") process.stderr.write(`${result.error}\n`);
        return result.outcome === "blocked" ? 1 : 0;
    },
});

if (require.main === module) runCommand(command);
