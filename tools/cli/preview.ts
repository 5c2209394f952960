/** npm run preview -- --stack NAME [--markdown FILE]: the pull-request check (see tools/rollout/preview.ts). */
import * as fs from "fs";
import * as path from "path";
import { PROJECT_ROOT } from "../engine/engine";
import { log } from "../rollout/log";
import { runPreview, toMarkdown } from "../rollout/preview";
import { defineCommand, required, runCommand } from "./cli";

export const command = defineCommand({
    name: "preview",
    usage: `usage: preview --stack NAME [--markdown FILE]

Policy-gated preview with a Markdown summary (default .local/preview-<stack>.md).
exit codes: 0 preview passed, 1 preview failed (policy or program), 64 usage`,
    options: {
        stack: { type: "string" },
        markdown: { type: "string" },
    },
    async run(flags) {
        const stack = required("stack", flags.stack);
        const summary = await runPreview(stack);
        const file = path.resolve(
            flags.markdown ?? path.join(PROJECT_ROOT, ".local", `preview-${stack}.md`),
        );
        fs.mkdirSync(path.dirname(file), { recursive: true });
        fs.writeFileSync(file, toMarkdown(summary));
        process.stdout.write(
            summary.output.endsWith("\n") ? summary.output : `${summary.output}\n`,
        );
        log("preview", `${summary.ok ? "passed" : "FAILED"}; summary written to ${file}`);
        return summary.ok ? 0 : 1;
    },
});

if (require.main === module) runCommand(command);
