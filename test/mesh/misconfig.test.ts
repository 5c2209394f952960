import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { POLICY_PACK_DIR, PROJECT_ROOT, gatedUp, openStack, scratchProject } from "../../tools/engine";
import { gatewayConfigDump, ingressOf, receivedRoutes, waitForReceivedSplit } from "../../tools/mesh";
import { verify } from "../../tools/verify";
import { MESH_KUBECONFIG, apply, env, get, k, meshCluster } from "../support/mesh";

const NAMESPACE = "misconfig";

interface Case {
    name: string;
    kind: string;
    resource: string;
    namespace: string;
    field: string;
    /** JSON patch (replace ops) applied to the live object by kubectl and to the program's resource before preview. */
    patch: { op: "replace"; path: string; value: unknown }[];
}

const CASES: Case[] = [
    { name: "Gateway selector matching no gateway pod", kind: "Gateway", resource: "tcp-echo-gateway", namespace: NAMESPACE, field: "spec.selector", patch: [{ op: "replace", path: "/spec/selector", value: { istio: "no-such-gateway" } }] },
    { name: "route port not served by the Gateway", kind: "VirtualService", resource: "tcp-echo", namespace: NAMESPACE, field: "spec.tcp[0].match[0].port", patch: [{ op: "replace", path: "/spec/tcp/0/match/0/port", value: 31401 }] },
    { name: "port not exposed by the IstioGateway", kind: "IstioGateway", resource: "ingressgateway", namespace: "istio-system", field: "spec.ports", patch: [{ op: "replace", path: "/spec/ports", value: [{ name: "tcp", port: 31401, targetPort: 31401, protocol: "TCP" }] }] },
    { name: "Gateway and VirtualService hosts that do not intersect", kind: "VirtualService", resource: "tcp-echo", namespace: NAMESPACE, field: "spec.hosts", patch: [{ op: "replace", path: "/spec/hosts", value: ["echo.example.com"] }] },
    { name: "subset labels matching no pod", kind: "DestinationRule", resource: "tcp-echo-destination", namespace: NAMESPACE, field: "spec.subsets[1].labels", patch: [{ op: "replace", path: "/spec/subsets/1/labels", value: { version: "v3" } }] },
    { name: "DestinationRule for another host", kind: "DestinationRule", resource: "tcp-echo-destination", namespace: NAMESPACE, field: "spec.host", patch: [{ op: "replace", path: "/spec/host", value: "other-echo" }] },
    { name: "VirtualService naming a missing Gateway", kind: "VirtualService", resource: "tcp-echo", namespace: NAMESPACE, field: "spec.gateways", patch: [{ op: "replace", path: "/spec/gateways", value: ["no-such-gateway"] }] },
];

const RESOURCE = { Gateway: "gateways.networking.istio.io", VirtualService: "virtualservices.networking.istio.io", DestinationRule: "destinationrules.networking.istio.io", IstioGateway: "istiogateways.istio.alibabacloud.com" } as Record<string, string>;

/** Value at a JSON pointer. */
function at(obj: any, pointer: string): unknown {
    return pointer
        .split("/")
        .slice(1)
        .reduce((o, key) => o?.[key], obj);
}

// The preview side: the real program, with one resource's props changed by a stack transformation before
// the policy pack sees them (the same JSON patch the live side applies with kubectl).
const WRAPPER = `import * as pulumi from "@pulumi/pulumi";
const raw = process.env.ASM_TCP_SHIFT_MUTATION;
if (raw) {
    const m = JSON.parse(raw);
    pulumi.runtime.registerStackTransformation((args) => {
        const props: any = args.props;
        if (props?.kind !== m.kind || props?.metadata?.name !== m.resource) return undefined;
        for (const op of m.patch) {
            const keys = op.path.split("/").slice(1);
            const last = keys.pop();
            keys.reduce((o: any, k: string) => o[k], props)[last] = op.value;
        }
        return { props, opts: args.opts };
    });
}
module.exports = require("./index.real");
`;

/**
 * Policy and mesh agree: each misconfiguration applied once to the live mesh by hand (kubectl), with
 * the traffic measured through the gateway, and once through `pulumi preview` with the policy pack.
 * Every case that breaks traffic must be refused by preview with a message naming the resource and field.
 */
describe("misconfigurations: the live mesh and the policy pack", () => {
    let dir: string;
    let stack: Stack;
    const rows: string[] = ["| misconfiguration | live mesh (400 connections through the gateway) | gateway received | preview with the policy pack |", "|---|---|---|---|"];
    const results: { c: Case; broken: boolean; refused: boolean; message: string }[] = [];

    before(async () => {
        meshCluster("up");
        apply(`apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${NAMESPACE}\n`);
        dir = scratchProject(fs.mkdtempSync(path.join(os.tmpdir(), "asm-tcp-shift-misconfig-")));
        fs.rmSync(path.join(dir, "index.ts"));
        fs.symlinkSync(path.join(PROJECT_ROOT, "index.ts"), path.join(dir, "index.real.ts"));
        fs.writeFileSync(path.join(dir, "index.ts"), WRAPPER);
        stack = await openStack("misconfig", { workDir: dir, backendUrl: `file://${path.join(dir, ".state")}`, env: { PULUMI_CONFIG_PASSPHRASE: "misconfig-test" } });
        await stack.setAllConfig({ target: { value: "local" }, namespace: { value: NAMESPACE }, localKubeconfig: { value: MESH_KUBECONFIG }, v2Weight: { value: "20" } });
        await gatedUp(stack);
        await waitForReceivedSplit(env(), 31400, { v1: 80, v2: 20 });
    });

    after(async () => {
        console.log(`\n${rows.join("\n")}\n`);
        await stack?.destroy().catch(() => undefined);
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    for (const c of CASES) {
        it(c.name, async () => {
            // Live: patch by hand, let istiod push, measure through the gateway as the seed's commands find it.
            const resource = RESOURCE[c.kind];
            const original = get("-n", c.namespace, "get", resource, c.resource);
            const undo = c.patch.map((op) => ({ op: "replace", path: op.path, value: at(original, op.path) }));
            const versions = async () => JSON.stringify((await gatewayConfigDump(env())).map((p) => p.versions));
            const before = await versions();
            k("-n", c.namespace, "patch", resource, c.resource, "--type=json", "-p", JSON.stringify(c.patch));
            let live: string;
            let received: string;
            let broken: boolean;
            try {
                // A push follows the change (any version moves), or nothing changes for the gateway within 3 s.
                const deadline = Date.now() + 3000;
                while (Date.now() < deadline && (await versions()) === before) await new Promise((r) => setTimeout(r, 50));
                await new Promise((r) => setTimeout(r, 500));
                const { host, port } = ingressOf(MESH_KUBECONFIG);
                const report = await verify({ host, port, connections: 400, concurrency: 20, timeoutMs: 2000, expectedWeight: 20, prefixes: { v1: "one", v2: "two" }, maxErrorRate: 0.01 });
                broken = report.verdict !== "consistent";
                const r = report.counts;
                live = `${broken ? "**breaks**" : "serves 80/20"}: v1 ${r.v1}, v2 ${r.v2}, failed ${400 - r.v1 - r.v2} (port ${port})`;
                const routes = receivedRoutes(await gatewayConfigDump(env()));
                received = routes.length === 0 ? "no TCP listener" : routes.map((x) => `${x.listener}: ${Object.entries(x.split).map(([s, w]) => `${s} ${w} (${x.endpoints[s]?.length ?? 0} endpoints)`).join(", ")}`).filter((v, i, a) => a.indexOf(v) === i).join("; ");
            } finally {
                k("-n", c.namespace, "patch", resource, c.resource, "--type=json", "-p", JSON.stringify(undo));
            }
            await waitForReceivedSplit(env(), 31400, { v1: 80, v2: 20 });

            // Preview: the same change made by the program, judged by the pack.
            stack.workspace.envVars.ASM_TCP_SHIFT_MUTATION = JSON.stringify(c);
            let refused = false;
            let message = "preview passed";
            try {
                await stack.preview({ policyPacks: [POLICY_PACK_DIR] });
            } catch (err) {
                refused = true;
                const text = (err as Error).message;
                message = text.split("\n").filter((l) => /\[mandatory\]|VirtualService |Gateway |DestinationRule |IstioGateway /.test(l)).map((l) => l.trim()).slice(0, 3).join(" / ") || text.slice(0, 300);
            } finally {
                delete stack.workspace.envVars.ASM_TCP_SHIFT_MUTATION;
            }
            rows.push(`| ${c.name} (\`${c.kind} ${c.resource}\` \`${c.field}\`) | ${live} | ${received} | ${refused ? `refused: ${message.replace(/\|/g, "\\|")}` : "**passes**"} |`);
            results.push({ c, broken, refused, message });
            if (broken) {
                assert.ok(refused, `${c.name} breaks traffic on the live mesh (${live}) but preview with the policy pack passes`);
                assert.ok(message.includes(c.resource), `the refusal names the resource ${c.resource}: ${message}`);
            }
        });
    }
});
