import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as fs from "fs";
import * as path from "path";
import { isPulumiPlugin, repairCheckpoint } from "../../tools/state/recover";
import { openStateStore } from "../../tools/state/stateStore";
import { tempDirs } from "../support/tempDirs";

const backends = tempDirs();

function backend(files: Record<string, string>): string {
    const dir = backends.make("asm-recover-");
    for (const [name, content] of Object.entries(files)) {
        const file = path.join(dir, ".pulumi", name);
        fs.mkdirSync(path.dirname(file), { recursive: true });
        fs.writeFileSync(file, content);
    }
    return dir;
}
const GOOD = JSON.stringify({ version: 3, checkpoint: { stack: "s", latest: { resources: [] } } });
const stackFile = (dir: string) => path.join(dir, ".pulumi/stacks/asm-tcp-shift/s.json");

describe("repairCheckpoint", () => {
    it("leaves a readable checkpoint alone", async () => {
        const dir = backend({ "stacks/asm-tcp-shift/s.json": GOOD });
        assert.equal(await repairCheckpoint(openStateStore(`file://${dir}`), "s"), undefined);
    });

    it("restores a checkpoint cut short mid-write from <stack>.json.bak, keeping the broken one aside", async () => {
        const dir = backend({
            "stacks/asm-tcp-shift/s.json": GOOD.slice(0, 20),
            "stacks/asm-tcp-shift/s.json.bak": GOOD,
        });
        assert.match(
            (await repairCheckpoint(openStateStore(`file://${dir}`), "s")) ?? "",
            /restored .* from .*s\.json\.bak/,
        );
        assert.equal(fs.readFileSync(stackFile(dir), "utf8"), GOOD);
        assert.equal(
            fs.readdirSync(path.dirname(stackFile(dir))).filter((f) => f.includes(".corrupt-"))
                .length,
            1,
        );
    });

    it("falls back to the newest readable file in .pulumi/backups", async () => {
        const dir = backend({
            "stacks/asm-tcp-shift/s.json": "",
            "stacks/asm-tcp-shift/s.json.bak": "{",
            "backups/asm-tcp-shift/s/s.1.json": GOOD,
        });
        assert.match(
            (await repairCheckpoint(openStateStore(`file://${dir}`), "s")) ?? "",
            /backups/,
        );
        assert.equal(fs.readFileSync(stackFile(dir), "utf8"), GOOD);
    });

    it("says so when nothing readable is left", async () => {
        const dir = backend({ "stacks/asm-tcp-shift/s.json": "" });
        await assert.rejects(
            repairCheckpoint(openStateStore(`file://${dir}`), "s"),
            /no readable backup/,
        );
    });
});

describe("isPulumiPlugin", () => {
    it("recognises plugins by what they execute", () => {
        assert.ok(
            isPulumiPlugin([
                "/root/.pulumi/plugins/resource-kubernetes-v4.25.0/pulumi-resource-kubernetes",
                "127.0.0.1:1234",
            ]),
        );
        assert.ok(isPulumiPlugin(["/opt/bin/pulumi-language-nodejs", "127.0.0.1:1234"]));
        assert.ok(
            isPulumiPlugin([
                "/usr/bin/node",
                "/p/node_modules/@pulumi/pulumi/cmd/run/index.js",
                "--monitor",
                "x",
            ]),
        );
        assert.ok(
            isPulumiPlugin(["node", "/p/node_modules/@pulumi/pulumi/cmd/run-policy-pack/index.js"]),
        );
    });
    it("leaves alone processes that merely mention a plugin", () => {
        assert.ok(
            !isPulumiPlugin([
                "go",
                "build",
                "-o",
                "/tmp/x/pulumi-resource-kubernetes",
                "./cmd/pulumi-resource-kubernetes",
            ]),
        );
        assert.ok(!isPulumiPlugin(["/usr/bin/node", "/p/tools/verify.ts"]));
        assert.ok(!isPulumiPlugin(["/usr/bin/pulumi", "up"]));
    });
});
