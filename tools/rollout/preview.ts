/**
 * preview: the pull-request check. Runs a preview of a stack with the policy pack (with its environment's
 * policy config) and writes a Markdown summary for a PR comment: the verdict, the change counts and
 * policy violations first, then the full diff folded, trimmed from the end so the summary always survives
 * GitHub's 65,536-character comment limit. When the preview changes what the gateway port's filter chain
 * holds (a weight, or the DestinationRule's connection pool durations), it says what that does to the
 * connections open through the gateway, as `shift` does before each step (drain.ts).
 *   npm run preview -- --stack local [--markdown FILE]
 */
import type { EngineEvent, PolicyEvent } from "@pulumi/pulumi/automation";
import { TYPE_TOKENS, VERSIONS, sameResourceType } from "../../components/model";
import { EngineOptions, POLICY_PACK_DIR, PROJECT_ROOT, openStack } from "../engine/engine";
import { withPolicyConfig } from "../engine/policyConfig";
import { readStackSettings } from "../engine/stackFiles";
import { DEFAULTS } from "../../config";
import { DrainInfo, connectionNotice, connectionWatchFor } from "./drain";

/** GitHub rejects comments over 65,536 characters; leave room for the summary and the fence. */
export const MAX_DIFF_CHARS = 60_000;

export interface PreviewSummary {
    stack: string;
    ok: boolean;
    changes: Record<string, number>;
    violations: string[];
    output: string;
    /** What the change does to the connections open through the gateway; absent when it leaves the filter chain alone. */
    connections?: string[];
}

/**
 * A change the preview makes that istiod turns into a new filter chain on the gateway port's listener: the
 * VirtualService's v2 weight (TcpProxy.weighted_clusters), or the DestinationRule's connectionPool.tcp
 * durations (TcpProxy.max_downstream_connection_duration, idle_timeout); docs/envoy.md.
 */
export type FilterChainChange =
    | { kind: "weight"; port: number; from: number; to: number }
    | { kind: "connectionPool"; from: unknown; to: unknown };

const canaryWeight = (spec: any): number | undefined =>
    spec?.tcp?.[0]?.route?.find((r: any) => r?.destination?.subset === VERSIONS.canary.subset)
        ?.weight ?? (spec?.tcp?.[0] ? 0 : undefined);

/** The filter-chain changes among a preview's steps (updates only: a route being created has no connection yet). */
export function filterChainChanges(events: EngineEvent[]): FilterChainChange[] {
    const out: FilterChainChange[] = [];
    for (const e of events) {
        const m = e.resourcePreEvent?.metadata;
        if (!m || m.op !== "update" || !m.old || !m.new) continue;
        const before = m.old.inputs?.spec;
        const after = m.new.inputs?.spec;
        if (sameResourceType(m.type, TYPE_TOKENS.virtualService)) {
            const from = canaryWeight(before);
            const to = canaryWeight(after);
            if (from !== undefined && to !== undefined && from !== to)
                out.push({ kind: "weight", port: after.tcp[0].match?.[0]?.port, from, to });
        } else if (sameResourceType(m.type, TYPE_TOKENS.destinationRule)) {
            const pool = (spec: any) => spec?.trafficPolicy?.connectionPool?.tcp ?? {};
            if (JSON.stringify(pool(before)) !== JSON.stringify(pool(after)))
                out.push({ kind: "connectionPool", from: pool(before), to: pool(after) });
        }
    }
    return out;
}

/**
 * The comment's lines on open connections for these changes: shift's own per-step notice for a weight change,
 * and the same facts for a connection pool change.
 */
export function connectionLines(
    changes: FilterChainChange[],
    info: DrainInfo,
    gatewayPort: number,
): string[] {
    const weight = changes.find((c) => c.kind === "weight");
    const pool = changes.find((c) => c.kind === "connectionPool");
    const lines: string[] = [];
    if (weight) lines.push(connectionNotice(weight.from, weight.to, weight.port, info));
    if (pool) {
        const open =
            info.open === undefined
                ? `the connections open on it cannot be read from here (${info.unreadable})`
                : `${info.open} connection${info.open === 1 ? " is" : "s are"} open on it now`;
        lines.push(
            `DestinationRule trafficPolicy.connectionPool.tcp ${JSON.stringify(pool.from)} -> ${JSON.stringify(pool.to)} also lives in port ${gatewayPort}'s tcp_proxy filter, so it replaces the filter chain too` +
                (weight
                    ? ""
                    : `; ${open}. They are closed when the drain time ends, ${info.drainSeconds} s after the gateway has the change (${info.drainSource})`),
        );
    }
    return lines;
}

/** The drain time and open connections of a stack's gateway, as `shift` reads them; never throws. */
async function probeConnections(stack: string, workDir: string): Promise<DrainInfo> {
    try {
        const info = await connectionWatchFor(stack, workDir).probe();
        // On any other target the comment is written in CI, which cannot reach the gateways' admin ports.
        return info.open === undefined
            ? { ...info, unreadable: `from CI or anywhere outside the cluster: ${info.unreadable}` }
            : info;
    } catch (err) {
        return {
            drainSeconds: 45,
            drainSource: "Istio's default drainDuration",
            unreadable: (err as Error).message,
        };
    }
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
        ...(s.connections?.length
            ? ["**Open connections**", "", ...s.connections.map((c) => `- ${c}`), ""]
            : []),
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
    const events: EngineEvent[] = [];
    const onEvent = (event: EngineEvent) => {
        if (event.policyEvent) violations.push(violationLine(event.policyEvent));
        if (event.resourcePreEvent) events.push(event);
    };
    const connections = async (): Promise<string[] | undefined> => {
        const changes = filterChainChanges(events);
        if (changes.length === 0) return undefined;
        const workDir = engine.workDir ?? PROJECT_ROOT;
        let port: number;
        try {
            port = readStackSettings(stackName, workDir).gatewayPort;
        } catch {
            port = DEFAULTS.gatewayPort;
        }
        return connectionLines(changes, await probeConnections(stackName, workDir), port);
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
            connections: await connections(),
        };
    } catch (err) {
        return {
            stack: stackName,
            ok: false,
            changes: {},
            violations,
            output: (err as Error).message,
            connections: await connections(),
        };
    }
}
