import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import {
    EngineOptions,
    PROJECT_ROOT,
    gatedUp,
    openStack,
    scratchProject,
} from "../../tools/engine/engine";
import { readLocks } from "../../tools/state/locks";
import { runPreview } from "../../tools/rollout/preview";
import { promote } from "../../tools/rollout/promote";
import { recover } from "../../tools/state/recover";
import { renderedVirtualService, routesOf } from "../../tools/rollout/routes";
import { shift } from "../../tools/rollout/shift";
import { StateStore } from "../../tools/state/stateStore";
import { soundCheckpoint } from "../support/backend";
import { TestObjectStore, startObjectStore } from "../support/objectstore";

const PASSPHRASE = "team-backend-passphrase-7c1e";
/** Secret values whose plain text must never reach the bucket. */
const SECRET_IMAGE = "docker.io/istio/tcp-echo-server:1.3-private-b9d4";
const SECRET_KUBECONFIG =
    "apiVersion: v1\nkind: Config\nusers: [{name: x, user: {token: kubeconfig-token-5f02a1}}]\n";

/** The team flows on the object-store backend: dev and staging in one bucket, every tool pointed at it. */
describe("team state in a bucket of the local S3 server", () => {
    let server: TestObjectStore;
    let store: StateStore;
    let dir: string;
    let engine: EngineOptions;
    const weights = (stack: string) =>
        routesOf(renderedVirtualService(path.join(dir, `rendered-${stack}`)))[0].destinations.map(
            (d) => d.weight,
        );
    const stackFile = (stack: string) =>
        parse(fs.readFileSync(path.join(dir, `Pulumi.${stack}.yaml`), "utf8")).config;

    before(async () => {
        server = await startObjectStore("team");
        store = server.store();
        dir = scratchProject(fs.mkdtempSync(path.join(os.tmpdir(), "asm-tcp-shift-team-")));
        engine = {
            workDir: dir,
            backendUrl: server.url,
            env: { ...server.env, PULUMI_CONFIG_PASSPHRASE: PASSPHRASE },
        };
    });

    after(() => {
        server?.destroy();
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it("objectstore.sh up is idempotent and prints the backend settings", () => {
        const pid = server.pid();
        const env = {
            ...process.env,
            ASM_TCP_SHIFT_OBJECTSTORE_DIR: server.dir,
            ASM_TCP_SHIFT_OBJECTSTORE_PORT: new URL(server.url).searchParams
                .get("endpoint")!
                .split(":")[1],
            ASM_TCP_SHIFT_OBJECTSTORE_BUCKET: "team-state",
        };
        const out = execFileSync(
            "bash",
            [path.join(PROJECT_ROOT, "scripts/objectstore.sh"), "up"],
            { env, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] },
        );
        assert.equal(server.pid(), pid, "the running server is reused");
        assert.match(
            out,
            /^export PULUMI_BACKEND_URL='s3:\/\/team-state\?endpoint=127\.0\.0\.1:\d+&disableSSL=true&s3ForcePathStyle=true&region=us-east-1'$/m,
        );
        assert.match(out, /^export AWS_ACCESS_KEY_ID='.+'$/m);
        const status = spawnSync(
            "bash",
            [path.join(PROJECT_ROOT, "scripts/objectstore.sh"), "status"],
            { env, encoding: "utf8" },
        );
        assert.equal(status.status, 0, status.stdout + status.stderr);
        assert.match(status.stdout, /running on 127\.0\.0\.1:\d+/);
        // The server's credentials are in no process's command line, where every user of the machine can read them.
        const secret = out.match(/^export AWS_SECRET_ACCESS_KEY='(.+)'$/m)![1];
        const cmdline = fs.readFileSync(`/proc/${server.pid()}/cmdline`, "utf8");
        assert.ok(cmdline.includes("versitygw") && !cmdline.includes(secret), cmdline);
    });

    it("up, preview and the preview tool run on the bucket; the lock is gone after the update", async () => {
        const dev = await openStack("dev", engine);
        await dev.setAllConfig({
            target: { value: "render" },
            renderDir: { value: "rendered-dev" },
            v2Weight: { value: "0" },
            imageV2: { value: SECRET_IMAGE, secret: true },
            dataPlaneKubeconfig: { value: SECRET_KUBECONFIG, secret: true },
        });
        const { result } = await gatedUp(dev);
        // The 15 objects and components.
        assert.equal(result.summary.resourceChanges?.create, 15);
        assert.deepEqual(weights("dev"), [100, 0]);
        const keys = (await store.list("")).map((o) => o.key);
        assert.ok(keys.includes(".pulumi/meta.yaml"), keys.join(", "));
        assert.ok(keys.includes(".pulumi/stacks/asm-tcp-shift/dev.json"), keys.join(", "));
        assert.ok(
            keys.some((k) => k.startsWith(".pulumi/history/asm-tcp-shift/dev/")),
            keys.join(", "),
        );
        assert.ok(
            soundCheckpoint((await store.read(".pulumi/stacks/asm-tcp-shift/dev.json"))!.toString())
                .length >= 15,
        );
        assert.deepEqual(await readLocks(store, "dev"), []);
        await dev.preview({ expectNoChanges: true });
        const summary = await runPreview("dev", engine);
        assert.ok(summary.ok, summary.output);
        assert.deepEqual(Object.keys(summary.changes), ["same"]);
    });

    it("the pulumi wrapper (npm run pulumi) uses the bucket named by PULUMI_BACKEND_URL", () => {
        const env = { ...process.env, ...engine.env, PULUMI_BACKEND_URL: server.url };
        const out = execFileSync(
            "bash",
            [path.join(PROJECT_ROOT, "scripts/pulumi.sh"), "stack", "ls", "--all", "--json"],
            { env, encoding: "utf8" },
        );
        const stacks = JSON.parse(out).map((s: any) => s.name);
        assert.ok(
            stacks.some((n: string) => n.endsWith("dev")),
            out,
        );
    });

    it("shift walks its steps on the bucket", async () => {
        const result = await shift({
            stack: "dev",
            steps: [20, 40],
            gate: { kind: "command", command: 'test "$V2_WEIGHT" -le 40' },
            pause: false,
            force: false,
            engine,
            workDir: dir,
        });
        assert.equal(result.outcome, "completed", JSON.stringify(result));
        assert.deepEqual(weights("dev"), [60, 40]);
        assert.deepEqual(await readLocks(store, "dev"), []);
    });

    it("promote dev -> staging within one bucket, secrets re-encrypted for staging", async () => {
        const staging = await openStack("staging", engine);
        await staging.setAllConfig({
            target: { value: "render" },
            renderDir: { value: "rendered-staging" },
            v2Weight: { value: "0" },
        });
        await staging.up();
        const result = await promote({ from: "dev", to: "staging", yes: true, engine });
        assert.equal(result.outcome, "applied", result.error);
        assert.deepEqual(weights("staging"), [60, 40]);
        assert.ok(stackFile("staging")["asm-tcp-shift:imageV2"]?.secure);
        assert.notEqual(
            stackFile("staging")["asm-tcp-shift:imageV2"].secure,
            stackFile("dev")["asm-tcp-shift:imageV2"].secure,
        );
        assert.deepEqual(await (await openStack("staging", engine)).getConfig("imageV2"), {
            value: SECRET_IMAGE,
            secret: true,
        });
        const keys = (await store.list(".pulumi/stacks/asm-tcp-shift/")).map((o) => o.key);
        assert.ok(
            keys.includes(".pulumi/stacks/asm-tcp-shift/dev.json") &&
                keys.includes(".pulumi/stacks/asm-tcp-shift/staging.json"),
            keys.join(", "),
        );
    });

    it("recover runs on the bucket (nothing to repair, no lock to clear)", async () => {
        const steps = await recover("staging", engine);
        assert.ok(
            steps.includes(
                "render target: nothing live to refresh; the next up rewrites the manifests",
            ),
            steps.join("; "),
        );
        assert.ok(!steps.some((s) => /restored|lock/.test(s)), steps.join("; "));
    });

    it("no object in the bucket holds a secret or the passphrase in plain text", async () => {
        const objects = await store.list("");
        assert.ok(objects.length >= 10, `${objects.length} objects`);
        let ciphertexts = 0;
        for (const { key } of objects) {
            const text = (await store.read(key))!.toString("utf8");
            for (const secret of [
                SECRET_IMAGE,
                "1.3-private-b9d4",
                "kubeconfig-token-5f02a1",
                PASSPHRASE,
            ]) {
                assert.ok(
                    !text.includes(secret),
                    `${key} holds ${JSON.stringify(secret)} in plain text`,
                );
            }
            ciphertexts += (text.match(/"ciphertext"/g) ?? []).length;
        }
        assert.ok(ciphertexts > 0, "the secrets are in the state, encrypted");
        const checkpoint = JSON.parse(
            (await store.read(".pulumi/stacks/asm-tcp-shift/staging.json"))!.toString(),
        );
        assert.equal(checkpoint.checkpoint.latest.secrets_providers.type, "passphrase");
    });
});
