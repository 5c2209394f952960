import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";
import { EngineEvent, Stack } from "@pulumi/pulumi/automation";
import { gatedUp, openStack, scratchProject, toolchainBinary } from "../../tools/engine/engine";
import { renderedVirtualService, routesOf } from "../../tools/rollout/routes";

/**
 * The real Pulumi engine (pinned CLI, language host, kubernetes provider, policy pack) on the render
 * target: every step is a real update against a file backend in a scratch folder.
 */
describe("real engine on the render target", () => {
    let dir: string;
    let stack: Stack;
    const renderDir = () => path.join(dir, "rendered");

    // The objects an update changed, by URN.
    const updatedUrns = (events: EngineEvent[]) =>
        events
            .filter((e) => e.resOutputsEvent && e.resOutputsEvent.metadata.op === "update")
            .map((e) => e.resOutputsEvent!.metadata.urn);

    async function upWithWeight(weight: number) {
        await stack.setConfig("v2Weight", { value: String(weight) });
        const events: EngineEvent[] = [];
        const { result } = await gatedUp(stack, { onEvent: (e) => events.push(e) });
        return { result, events };
    }

    const weightsOnDisk = () =>
        routesOf(renderedVirtualService(renderDir()))[0].destinations.map(
            (d) => `${d.subset}=${d.weight}`,
        );
    // Sorted: a failed update may rewrite the checkpoint in another order without changing any resource.
    const resourcesInState = async () =>
        ((await stack.exportStack()).deployment.resources ?? [])
            .map((r: any) => ({ urn: r.urn, outputs: r.outputs }))
            .sort((a: any, b: any) => a.urn.localeCompare(b.urn));

    before(async () => {
        dir = scratchProject(fs.mkdtempSync(path.join(os.tmpdir(), "asm-tcp-shift-it-")));
        stack = await openStack("itest", {
            workDir: dir,
            backendUrl: `file://${path.join(dir, ".state")}`,
            env: { PULUMI_CONFIG_PASSPHRASE: "integration-test" },
        });
        await stack.setConfig("target", { value: "render" });
    });

    after(async () => {
        fs.rmSync(dir, { recursive: true, force: true });
    });

    it("up at v2Weight 0 sends all traffic to v1, with the policy pack passing", async () => {
        const { result } = await upWithWeight(0);
        assert.equal(result.summary.result, "succeeded");
        // 15 objects and components.
        assert.equal(result.summary.resourceChanges?.create, 15);
        assert.deepEqual(weightsOnDisk(), ["v1=100", "v2=0"]);
        assert.equal(result.outputs.v2Weight.value, 0);
    });

    it("v2Weight 20 updates exactly one resource, the VirtualService, to 80/20", async () => {
        const { result, events } = await upWithWeight(20);
        // The VirtualService alone.
        assert.equal(
            result.summary.resourceChanges?.update,
            1,
            JSON.stringify(result.summary.resourceChanges),
        );
        assert.deepEqual(updatedUrns(events), [
            updatedUrns(events).find((u) =>
                u.endsWith("VirtualService::tcp-echo-routing-virtualservice"),
            ),
        ]);
        assert.deepEqual(weightsOnDisk(), ["v1=80", "v2=20"]);
    });

    it("a second up with the same config changes nothing", async () => {
        const { result } = await upWithWeight(20);
        assert.deepEqual(Object.keys(result.summary.resourceChanges ?? {}), ["same"]);
        await stack.preview({ expectNoChanges: true });
    });

    it("istioctl analyze finds no error in the rendered Istio resources", () => {
        const files = istioFiles(renderDir());
        const out = spawnSync(
            toolchainBinary("istioctl"),
            ["analyze", "--use-kube=false", "--failure-threshold", "Error", ...files],
            { encoding: "utf8" },
        );
        assert.equal(out.status, 0, `${out.stdout}\n${out.stderr}`);
        assert.doesNotMatch(out.stdout + out.stderr, /Error \[IST/);
    });

    it("istioctl analyze catches a route to an undefined subset", () => {
        const broken = fs.mkdtempSync(path.join(os.tmpdir(), "asm-tcp-shift-analyze-"));
        fs.mkdirSync(path.join(broken, "1-manifest"));
        for (const file of istioFiles(renderDir())) {
            const text = fs.readFileSync(file, "utf8");
            fs.writeFileSync(
                path.join(broken, "1-manifest", path.basename(file)),
                /kind: VirtualService/.test(text) ? text.replace("subset: v2", "subset: v3") : text,
            );
        }
        const out = spawnSync(
            toolchainBinary("istioctl"),
            ["analyze", "--use-kube=false", ...istioFiles(broken)],
            { encoding: "utf8" },
        );
        fs.rmSync(broken, { recursive: true, force: true });
        assert.notEqual(out.status, 0);
        assert.match(out.stdout + out.stderr, /tcp-echo\+v3|subset.*v3|v3.*not found/i);
    });

    it("an invalid weight fails at preview naming the key, with state and output unchanged", async () => {
        const before = await resourcesInState();
        await stack.setConfig("v2Weight", { value: "101" });
        await assert.rejects(
            stack.up(),
            /asm-tcp-shift:v2Weight: must be an integer from 0 to 100/,
        );
        await stack.setConfig("v2Weight", { value: "abc" });
        await assert.rejects(stack.preview(), /v2Weight.*integer/);
        assert.deepEqual(await resourcesInState(), before);
        assert.deepEqual(weightsOnDisk(), ["v1=80", "v2=20"]);
    });

    it("a mandatory policy violation blocks the update and changes nothing", async () => {
        const before = await resourcesInState();
        const policyConfig = path.join(dir, "policy-config.json");
        fs.writeFileSync(
            policyConfig,
            JSON.stringify({
                "max-weight-step": {
                    enforcementLevel: "mandatory",
                    maxWeightStep: 10,
                    previousV2Weight: 20,
                },
            }),
        );
        await stack.setConfig("v2Weight", { value: "60" });
        await assert.rejects(
            gatedUp(stack, { policyPackConfigs: [policyConfig] }),
            /max-weight-step[\s\S]*v2 weight moves 20 -> 60/,
        );
        assert.deepEqual(await resourcesInState(), before);
        assert.deepEqual(weightsOnDisk(), ["v1=80", "v2=20"]);
    });

    it("v2Weight 100 sends all traffic to v2", async () => {
        const { events } = await upWithWeight(100);
        assert.equal(updatedUrns(events).length, 1);
        assert.deepEqual(weightsOnDisk(), ["v1=0", "v2=100"]);
    });

    it("destroy leaves an empty stack and no rendered objects", async () => {
        await stack.destroy();
        assert.deepEqual(await resourcesInState(), []);
        assert.deepEqual(fs.readdirSync(path.join(renderDir(), "1-manifest")), []);
        await stack.workspace.removeStack("itest");
    });
});

/**
 * A stack policy runs only after every step of an update, so the gated change previews with the pack first, as
 * `pulumi up --policy-pack` does: a program that routes to a subset no DestinationRule defines is stopped by the
 * preview, before any object is written.
 */
describe("gated change: a stack policy stops the update before the first change", () => {
    let dir: string;
    let stack: Stack;
    const program = `import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
export = async () => {
    const subset = new pulumi.Config().require("subset");
    const provider = new k8s.Provider("render", { renderYamlToDirectory: "rendered" });
    const metadata = { name: "echo", namespace: "default" };
    new k8s.apiextensions.CustomResource("dr", { apiVersion: "networking.istio.io/v1", kind: "DestinationRule", metadata, spec: { host: "echo", subsets: [{ name: "v1", labels: { version: "v1" } }] } }, { provider });
    new k8s.core.v1.ConfigMap("echo-config", { metadata, data: { subset } }, { provider });
    new k8s.apiextensions.CustomResource("vs", { apiVersion: "networking.istio.io/v1", kind: "VirtualService", metadata, spec: { hosts: ["echo"], tcp: [{ route: [{ destination: { host: "echo", subset }, weight: 100 }] }] } }, { provider });
};
`;
    const rendered = () =>
        fs
            .readdirSync(path.join(dir, "rendered", "1-manifest"))
            .sort()
            .map((f) => fs.readFileSync(path.join(dir, "rendered", "1-manifest", f), "utf8"));

    before(async () => {
        dir = scratchProject(fs.mkdtempSync(path.join(os.tmpdir(), "asm-tcp-shift-gated-")));
        fs.rmSync(path.join(dir, "index.ts"));
        fs.writeFileSync(path.join(dir, "index.ts"), program);
        stack = await openStack("gate", {
            workDir: dir,
            backendUrl: `file://${path.join(dir, ".state")}`,
            env: { PULUMI_CONFIG_PASSPHRASE: "integration-test" },
        });
        await stack.setAllConfig({ v2Weight: { value: "0" }, subset: { value: "v1" } });
    });

    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    // Every resource of the state, by URN, so the order the engine wrote them in does not matter.
    const state = async () =>
        ((await stack.exportStack()).deployment.resources ?? []).sort((a: any, b: any) =>
            a.urn.localeCompare(b.urn),
        );

    it("passes a consistent stack, then refuses the broken one with nothing written", async () => {
        const { result } = await gatedUp(stack);
        assert.equal(result.summary.result, "succeeded");
        const before = { state: await state(), files: rendered() };

        await stack.setConfig("subset", { value: "v3" });
        await assert.rejects(
            gatedUp(stack),
            /virtualservice-subsets-defined[\s\S]*VirtualService echo routes to subset "v3"/,
        );
        // Neither the ConfigMap nor the VirtualService (both would change) was written, in the state or on disk.
        assert.deepEqual(rendered(), before.files);
        assert.deepEqual(await state(), before.state);
    });
});

/** Rendered Istio networking objects plus the Service and Deployments they refer to (istioctl knows no IstioGateway). */
function istioFiles(dir: string): string[] {
    const manifests = path.join(dir, "1-manifest");
    return fs
        .readdirSync(manifests)
        .filter((f) => !f.startsWith("istio.alibabacloud.com"))
        .map((f) => path.join(manifests, f));
}
