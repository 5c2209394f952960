/**
 * preview: the pull-request check. Runs a preview of a stack with the policy pack (with its environment's
 * policy config) and writes a Markdown summary for a PR comment: the verdict, the change counts and
 * policy violations first, then the full diff folded, trimmed from the end so the summary always survives
 * GitHub's 65,536-character comment limit.
 *   npm run preview -- --stack local [--markdown FILE]
 */
import type { EngineEvent, PolicyEvent } from "@pulumi/pulumi/automation";
import { EngineOptions, POLICY_PACK_DIR, openStack } from "../engine/engine";
import { withPolicyConfig } from "../engine/policyConfig";

/** GitHub rejects comments over 65,536 characters; leave room for the summary and the fence. */
export const MAX_DIFF_CHARS = 60_000;

export interface PreviewSummary {
    stack: string;
    ok: boolean;
    changes: Record<string, number>;
    violations: string[];
    output: string;
}

/** A policy event's message on one line, without the engine's colour tags (`<{%reset%}>`). */
export function policyMessage(e: PolicyEvent): string {
    return e.message
        .replace(/<\{%[^%]*%\}>/g, "")
        .split("\n")
        .map((line) => line.trim())
        .filter(Boolean)
        .join(" ");
}

/** One line per policy violation, from the engine's own policy events (never scraped from its text output). */
export function violationLine(e: PolicyEvent): string {
    const level = e.enforcementLevel === "mandatory" ? "mandatory" : "advisory";
    const where = e.resourceUrn ? e.resourceUrn.split("::").slice(-2).join(" ") : "stack";
    return `[${level}] ${e.policyName} (${where}): ${policyMessage(e)}`;
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
    // The pack judges the weight step against what the stack's own state says it serves; nothing to pass here.
    const violations: string[] = [];
    const onEvent = (event: EngineEvent) => {
        if (event.policyEvent) violations.push(violationLine(event.policyEvent));
    };
    try {
        const result = await withPolicyConfig(stackName, {}, (config) =>
            stack.preview({
                policyPacks: [POLICY_PACK_DIR],
                policyPackConfigs: [config],
                diff: true,
                onEvent,
            }),
        );
        return {
            stack: stackName,
            ok: true,
            changes: result.changeSummary as Record<string, number>,
            violations,
            output: result.stdout,
        };
    } catch (err) {
        return {
            stack: stackName,
            ok: false,
            changes: {},
            violations,
            output: (err as Error).message,
        };
    }
}
