/**
 * preview: the pull-request check. Runs a policy-gated preview of a stack (with its environment's
 * policy config) and writes a Markdown summary for a PR comment: the verdict, the change counts and
 * policy violations first, then the full diff folded, trimmed from the end so the summary always survives
 * GitHub's 65,536-character comment limit.
 *   npm run preview -- --stack local [--markdown FILE]
 */
import { POLICY_GATE } from "../components/model";
import { EngineOptions, POLICY_PACK_DIR, ensurePolicyPackBuilt, openStack } from "./engine";
import { withPolicyConfig } from "./policyConfig";
import { readStackFile } from "./stackFiles";

/** GitHub rejects comments over 65,536 characters; leave room for the summary and the fence. */
export const MAX_DIFF_CHARS = 60_000;

export interface PreviewSummary {
    stack: string;
    ok: boolean;
    changes: Record<string, number>;
    violations: string[];
    output: string;
}

/** Policy violation lines as the CLI prints them under "Policies:" (e.g. "- [mandatory]  name  (type: resource)"). */
export function policyViolations(output: string): string[] {
    const lines = output.split("\n");
    const found: string[] = [];
    for (let i = 0; i < lines.length; i++) {
        const m = lines[i].match(/^\s*- \[(mandatory|advisory|remediate)\]\s+(\S+)\s+\((.*)\)\s*$/);
        if (!m) continue;
        // A preview also checks each resource and the stack, so the policy gate's copy of a violation is a duplicate.
        if (m[3].includes(POLICY_GATE.type)) continue;
        const message = (lines[i + 2] ?? "").trim();
        found.push(`[${m[1]}] ${m[2]} (${m[3]}): ${message}`);
    }
    return found;
}

export function toMarkdown(s: PreviewSummary): string {
    const counts =
        Object.entries(s.changes)
            .map(([op, n]) => `| ${op} | ${n} |`)
            .join("\n") || "| (none) | 0 |";
    const violations = s.violations.length
        ? s.violations.map((v) => `- ${v.replace(/\|/g, "\\|")}`).join("\n")
        : "None.";
    let diff = s.output;
    if (diff.length > MAX_DIFF_CHARS)
        diff = `${diff.slice(0, MAX_DIFF_CHARS)}\n… (${s.output.length - MAX_DIFF_CHARS} more characters trimmed)`;
    return [
        `### Pulumi preview: \`${s.stack}\` ${s.ok ? "✅ passed" : "❌ failed"}`,
        "",
        "| change | resources |",
        "|---|---|",
        counts,
        "",
        "**Policy violations**",
        "",
        violations,
        "",
        "<details><summary>Full preview</summary>",
        "",
        "```",
        diff.replace(/```/g, "ʼʼʼ"),
        "```",
        "</details>",
        "",
    ].join("\n");
}

export async function runPreview(
    stackName: string,
    engine: EngineOptions = {},
): Promise<PreviewSummary> {
    const stack = await openStack(stackName, engine);
    const own = readStackFile(stackName, engine.workDir);
    const previous = await stack
        .outputs()
        .then((o) => (o.v2Weight ? Number(o.v2Weight.value) : undefined))
        .catch(() => undefined);
    const previousWeight =
        previous ?? (own.v2Weight !== undefined ? Number(own.v2Weight) : undefined);
    try {
        ensurePolicyPackBuilt();
        const result = await withPolicyConfig(stackName, previousWeight, {}, (config) =>
            stack.preview({
                policyPacks: [POLICY_PACK_DIR],
                policyPackConfigs: [config],
                diff: true,
            }),
        );
        return {
            stack: stackName,
            ok: true,
            changes: result.changeSummary as Record<string, number>,
            violations: policyViolations(result.stdout),
            output: result.stdout,
        };
    } catch (err) {
        const output = (err as Error).message;
        return {
            stack: stackName,
            ok: false,
            changes: {},
            violations: policyViolations(output),
            output,
        };
    }
}
