/** The cluster name from the environment becomes part of folders `down` deletes: a path is refused, nothing removed. */
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { describe, it } from "node:test";
import { PROJECT_ROOT } from "../../tools/engine/engine";

describe("ASM_TCP_SHIFT_CLUSTER", () => {
    it("is refused unless a plain name, before mesh.sh or cluster.sh removes anything", () => {
        const sentinel = fs.mkdtempSync(path.join(os.tmpdir(), "asm-cluster-name-"));
        const probe = path.join(PROJECT_ROOT, ".local", "mesh-probe");
        fs.mkdirSync(probe, { recursive: true });
        try {
            // A name that, joined into the mesh's folder, walks out of the project to the sentinel.
            const name = `probe/${path.relative(probe, sentinel)}`;
            assert.ok(fs.existsSync(path.join(PROJECT_ROOT, ".local", `mesh-${name}`)));
            for (const script of ["scripts/mesh.sh", "scripts/cluster.sh"]) {
                const r = spawnSync("bash", [path.join(PROJECT_ROOT, script), "down"], {
                    env: { ...process.env, ASM_TCP_SHIFT_CLUSTER: name },
                    encoding: "utf8",
                });
                assert.notEqual(r.status, 0, script);
                assert.match(r.stderr, /ASM_TCP_SHIFT_CLUSTER must be a name/, script);
                assert.ok(
                    fs.existsSync(sentinel),
                    `${script} removed a folder outside the project`,
                );
            }
        } finally {
            fs.rmSync(sentinel, { recursive: true, force: true });
            fs.rmSync(probe, { recursive: true, force: true });
        }
    });
});
