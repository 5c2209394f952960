import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DEFAULTS, ProjectDefaultsError, parseSettings, readProjectDefaults } from "../../config";
import { tempDirs } from "../support/tempDirs";
import { readStackSettings } from "../../tools/engine/stackFiles";
import { PROJECT_ROOT } from "../../tools/engine/engine";
import {
    APP_NAME,
    ECHO_PREFIXES,
    INGRESS_GATEWAY_NAMESPACE,
    OBJECT_NAMES,
    TCP_PORT_NAME,
    deploymentName,
} from "../../components/model";

/** Every default as `key` or `object.key`, the way the README's config table names it. */
function flatten(value: Record<string, unknown>, prefix = ""): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) {
        if (v && typeof v === "object" && !Array.isArray(v))
            Object.assign(out, flatten(v as Record<string, unknown>, `${prefix}${key}.`));
        else out[`${prefix}${key}`] = v;
    }
    return out;
}

/** The README config table: key -> its default column, code spans unwrapped. */
function readmeDefaults(): Record<string, string> {
    const readme = fs.readFileSync(path.join(PROJECT_ROOT, "README.md"), "utf8");
    const rows: Record<string, string> = {};
    for (const line of readme.split("\n")) {
        const cells = line.split(/(?<!\\)\|/).map((c) => c.trim());
        const key = /^`([\w.]+)`$/.exec(cells[1] ?? "")?.[1];
        if (key && cells.length >= 5) rows[key] = cells[3].replace(/`/g, "");
    }
    return rows;
}

describe("each default lives once (Pulumi.yaml) and the program, the tools and the README agree", () => {
    it("Pulumi.yaml holds a default for every optional key the parser reads", () => {
        for (const key of [
            "target",
            "namespace",
            "image",
            "replicas",
            "servicePort",
            "gatewayPort",
            "hosts",
            "istioApiVersion",
            "slb",
            "asm",
            "connectionPool",
            "renderDir",
            "localKubeconfig",
        ]) {
            assert.notEqual((DEFAULTS as any)[key], undefined, key);
        }
    });

    it("the program's parser applies exactly those defaults", () => {
        const s = parseSettings((key) =>
            key === "v2Weight" ? "20" : key === "target" ? "render" : undefined,
        );
        const d = DEFAULTS;
        assert.deepEqual(
            {
                namespace: s.namespace,
                image: s.images.stable,
                replicas: s.replicas,
                servicePort: s.servicePort,
                gatewayPort: s.gatewayPort,
                hosts: s.hosts,
                istioApiVersion: s.istioApiVersion,
                renderDir: s.renderDir,
                localKubeconfig: s.localKubeconfig,
            },
            {
                namespace: d.namespace,
                image: d.image,
                replicas: d.replicas,
                servicePort: d.servicePort,
                gatewayPort: d.gatewayPort,
                hosts: d.hosts,
                istioApiVersion: d.istioApiVersion,
                renderDir: d.renderDir,
                localKubeconfig: d.localKubeconfig,
            },
        );
        assert.deepEqual(
            {
                mode: s.slb.mode,
                addressType: s.slb.addressType,
                acknowledgeListenerOverride: s.slb.acknowledgeListenerOverride,
                otherListenerPorts: s.slb.otherListenerPorts,
            },
            d.slb,
        );
        assert.deepEqual(
            {
                gatewayReplicas: s.asm.gatewayReplicas,
                gatewayName: s.asm.gatewayName,
                useExistingGateway: s.asm.useExistingGateway,
            },
            d.asm,
        );
    });

    it("a stack that sets one nested key keeps the other nested defaults (the engine replaces the whole object)", () => {
        const s = parseSettings(
            (key) =>
                ({
                    v2Weight: "0",
                    target: "render",
                    asm: JSON.stringify({ gatewayName: "gw" }),
                    slb: JSON.stringify({ addressType: "intranet" }),
                })[key],
        );
        assert.equal(s.asm.gatewayReplicas, DEFAULTS.asm.gatewayReplicas);
        assert.equal(s.slb.mode, DEFAULTS.slb.mode);
    });

    it("the tools read a stack file whose image is a secret: the ciphertext is not a value to check", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "asm-tcp-shift-defaults-"));
        try {
            fs.writeFileSync(
                path.join(dir, "Pulumi.t.yaml"),
                "config:\n  asm-tcp-shift:target: render\n  asm-tcp-shift:v2Weight: 5\n  asm-tcp-shift:gatewayPort: 31401\n  asm-tcp-shift:imageV2:\n    secure: v1:abc/def==\n",
            );
            const s = readStackSettings("t", dir);
            assert.equal(s.gatewayPort, 31401);
            assert.equal(s.v2Weight, 5);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("the tools read a stack file with the same defaults", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "asm-tcp-shift-defaults-"));
        try {
            fs.writeFileSync(
                path.join(dir, "Pulumi.t.yaml"),
                "config:\n  asm-tcp-shift:target: render\n  asm-tcp-shift:v2Weight: 5\n",
            );
            const s = readStackSettings("t", dir);
            assert.deepEqual(
                [s.gatewayPort, s.namespace, s.renderDir, s.asm.gatewayName],
                [
                    DEFAULTS.gatewayPort,
                    DEFAULTS.namespace,
                    DEFAULTS.renderDir,
                    DEFAULTS.asm.gatewayName,
                ],
            );
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("the README config table states the same defaults", () => {
        const table = readmeDefaults();
        for (const [key, value] of Object.entries(
            flatten(DEFAULTS as unknown as Record<string, unknown>),
        )) {
            assert.ok(key in table, `README config table has no row for ${key}`);
            assert.equal(
                table[key],
                JSON.stringify(value).replace(/^"|"$/g, ""),
                `README default of ${key}`,
            );
        }
    });
});

describe("the project's defaults are checked as they are read, not cast", () => {
    const dirs = tempDirs();
    const projectFile = path.join(PROJECT_ROOT, "Pulumi.yaml");

    /** A copy of Pulumi.yaml with `edit` applied to its text. */
    function editedProject(edit: (text: string) => string): string {
        const file = path.join(dirs.make("asm-tcp-shift-project-"), "Pulumi.yaml");
        fs.writeFileSync(file, edit(fs.readFileSync(projectFile, "utf8")));
        return file;
    }

    function problemsOf(file: string): { key: string; message: string }[] {
        try {
            readProjectDefaults(file);
        } catch (err) {
            assert.ok(err instanceof ProjectDefaultsError, String(err));
            assert.ok(err.message.startsWith(`${file} does not hold valid config defaults`));
            return err.problems.map((p) => ({ ...p }));
        }
        assert.fail(`${file} was accepted`);
    }

    it("reads the project's own Pulumi.yaml", () => {
        assert.deepEqual(readProjectDefaults(projectFile), DEFAULTS);
    });

    it("names each malformed default, all at once, with the value a stack would be refused for", () => {
        const file = editedProject((text) =>
            text
                .replace("    default: 1\n", "    default: many\n")
                .replace("    default: 9000\n", "    default: 15001\n")
                .replace("      addressType: internet\n", "      addresstype: internet\n")
                .replace("    default: rendered\n", "    default: [rendered]\n")
                .replace(
                    / {2}gatewayPort:\n(.*\n){2} {4}default: 31400\n/,
                    "  gatewayPort:\n    type: integer\n",
                )
                .replace("      gatewayName: ingressgateway\n", "      gatewayName: Ingress_GW\n")
                .replace(
                    "  localKubeconfig:",
                    "  gatewayport:\n    default: 31400\n  localKubeconfig:",
                ),
        );
        const problems = problemsOf(file);
        const byKey = Object.fromEntries(problems.map((p) => [p.key, p.message]));
        assert.match(byKey["config.replicas.default"], /integer from 1 to 50; got "many"/);
        assert.match(byKey["config.servicePort.default"], /15001 is in 15000\.\.15090/);
        assert.match(
            byKey["config.slb.default"],
            /unknown field "addresstype"; did you mean "addressType"\?/,
        );
        assert.match(byKey["config.slb.default.addressType"], /has no default/);
        assert.match(byKey["config.renderDir.default"], /must be a path/);
        assert.match(byKey["config.gatewayPort.default"], /has no default/);
        assert.match(byKey["config.asm.default.gatewayName"], /DNS-1123 label/);
        assert.match(
            byKey["config.gatewayport"],
            /unknown key "gatewayport"; did you mean "gatewayPort"\?/,
        );
        assert.equal(problems.length, 8, JSON.stringify(problems, null, 2));
    });

    it("refuses a default for a field that names one stack's own resources, and a file that is not the project's", () => {
        const file = editedProject((text) =>
            text
                .replace("name: asm-tcp-shift\n", "name: other-project\n")
                .replace(
                    "      mode: managed\n",
                    "      mode: reuse\n      id: lb-2ze8x7example1234\n",
                ),
        );
        assert.deepEqual(
            problemsOf(file).map((p) => p.key),
            ["name", "config.slb.default.id"],
        );
    });

    it("checks a project-wide connection pool default as a stack's value, and lets stacks inherit it", () => {
        const withDefault = (fields: string) =>
            editedProject((text) =>
                text.replace("    default: {}\n", `    default: {${fields}}\n`),
            );
        const problems = problemsOf(withDefault("idleTimeout: 5, maxConnectionDurations: 1h"));
        assert.deepEqual(problems.map((p) => p.key).sort(), [
            "config.connectionPool.default",
            "config.connectionPool.default.idleTimeout",
        ]);
        assert.match(
            problems.find((p) => p.key === "config.connectionPool.default")!.message,
            /did you mean "maxConnectionDuration"\?/,
        );
        assert.deepEqual(readProjectDefaults(withDefault("idleTimeout: 30m")).connectionPool, {
            idleTimeout: "30m",
        });
    });

    it("refuses a file without a config block, or no YAML at all", () => {
        assert.deepEqual(
            problemsOf(editedProject(() => "name: asm-tcp-shift\n")).map((p) => p.key),
            ["config"],
        );
        assert.match(problemsOf(editedProject(() => "config: [\n"))[0].message, /is not YAML/);
    });
});

describe("the program's facts are the seed scenario's", () => {
    // The one place the tests restate the seed (ASM's TCP traffic-shifting guide and Istio's tcp-echo sample):
    // tests that use a fact to reach an object read it from model.ts or Pulumi.yaml; tests of the program's
    // output state the seed's values, so a drifted fact fails here and there, never silently.
    it("names, labels, prefixes and ports", () => {
        assert.equal(APP_NAME, "tcp-echo");
        assert.deepEqual(OBJECT_NAMES, {
            service: "tcp-echo",
            gateway: "tcp-echo-gateway",
            destinationRule: "tcp-echo-destination",
            virtualService: "tcp-echo",
        });
        assert.deepEqual(
            [deploymentName("stable"), deploymentName("canary")],
            ["tcp-echo-v1", "tcp-echo-v2"],
        );
        assert.deepEqual(ECHO_PREFIXES, { v1: "one", v2: "two" });
        assert.equal(TCP_PORT_NAME, "tcp");
        assert.equal(DEFAULTS.servicePort, 9000);
        assert.equal(DEFAULTS.gatewayPort, 31400);
        assert.equal(INGRESS_GATEWAY_NAMESPACE, "istio-system");
    });
});
