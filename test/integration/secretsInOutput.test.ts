/**
 * A broken kubeconfig never reaches the engine's output or the pull-request summary: each one goes through a real
 * preview (the `preview` tool, as the PR workflow runs it) and its Markdown, and neither holds the marker the
 * kubeconfig carries. The preflight's own tests cover every shape; these are the ones whose parser errors quote text.
 */
import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { after, before, describe, it } from "node:test";
import { openStack, scratchProject } from "../../tools/engine/engine";
import { runPreview, toMarkdown } from "../../tools/rollout/preview";

const MARKER = "SUPERSECRETTOKEN123";

const BROKEN: { case: string; kubeconfig: string }[] = [
    {
        case: "a malformed token line",
        kubeconfig: `users:\n- name: u\n  user:\n    token: ${MARKER}: x\n`,
    },
    { case: "an unclosed flow mapping", kubeconfig: `users: [{name: u, user: {token: ${MARKER}}` },
    { case: "YAML, but a string", kubeconfig: MARKER },
    {
        case: "a token to an http:// server",
        kubeconfig: [
            "current-context: x",
            "contexts: [{name: x, context: {cluster: c, user: u}}]",
            "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]",
            `users: [{name: u, user: {token: ${MARKER}}}]`,
            "",
        ].join("\n"),
    },
];

describe("a broken kubeconfig in the preview's output and the PR summary", () => {
    let dir: string;
    const engine = () => ({
        workDir: dir,
        backendUrl: `file://${path.join(dir, ".state")}`,
        env: { PULUMI_CONFIG_PASSPHRASE: "integration-test" },
    });

    before(() => {
        dir = scratchProject(fs.mkdtempSync(path.join(os.tmpdir(), "asm-tcp-shift-secrets-")));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    for (const [i, c] of BROKEN.entries()) {
        it(`${c.case}: refused by key, and the marker appears nowhere`, async () => {
            const name = `secrets-${i}`;
            const stack = await openStack(name, engine());
            await stack.setAllConfig({
                target: { value: "asm" },
                v2Weight: { value: "20" },
                asm: {
                    value: JSON.stringify({ clusterIds: ["c0123456789abcdef0123456789abcdef"] }),
                },
                dataPlaneKubeconfig: { value: c.kubeconfig, secret: true },
                controlPlaneKubeconfig: { value: c.kubeconfig, secret: true },
            });
            const summary = await runPreview(name, engine());
            assert.equal(summary.ok, false);
            assert.match(summary.output, /dataPlaneKubeconfig/);
            const markdown = toMarkdown(summary);
            for (const text of [summary.output, markdown, ...summary.violations])
                assert.ok(!text.includes(MARKER), `the marker leaked:\n${text}`);
        });
    }
});
