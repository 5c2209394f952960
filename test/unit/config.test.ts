import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
    ConfigError,
    DEFAULTS,
    closest,
    editDistance,
    formatDurationMs,
    imagePinProblem,
    parseGoDuration,
    parseSettings,
} from "../../config";
import { ACK_CLUSTER_ID, happyConfig, readerFor, settingsFor } from "../support/settings";

const ASM = { target: "asm", asm: { clusterIds: [ACK_CLUSTER_ID] } };
const REUSE = {
    ...ASM,
    slb: { mode: "reuse", id: "lb-2ze8x7example1234", acknowledgeListenerOverride: true },
};

/** Each row: a config change, the key the error must name, and words the message must contain. */
const BAD_INPUTS: { case: string; config: Record<string, unknown>; key: string; says: RegExp }[] = [
    {
        case: "weight 101",
        config: { v2Weight: 101 },
        key: "v2Weight",
        says: /integer from 0 to 100.*101/,
    },
    {
        case: "weight -1",
        config: { v2Weight: -1 },
        key: "v2Weight",
        says: /integer from 0 to 100.*-1/,
    },
    {
        case: "weight 12.5",
        config: { v2Weight: "12.5" },
        key: "v2Weight",
        says: /integer from 0 to 100.*12\.5/,
    },
    {
        case: "weight abc",
        config: { v2Weight: "abc" },
        key: "v2Weight",
        says: /integer from 0 to 100.*abc/,
    },
    {
        case: "weight empty",
        config: { v2Weight: "" },
        key: "v2Weight",
        says: /integer from 0 to 100/,
    },
    {
        case: "weight missing",
        config: { v2Weight: undefined },
        key: "v2Weight",
        says: /is required.*0 to 100/,
    },
    {
        case: "image latest",
        config: { image: "docker.io/istio/tcp-echo-server:latest" },
        key: "image",
        says: /latest/,
    },
    {
        case: "image untagged",
        config: { image: "docker.io/istio/tcp-echo-server" },
        key: "image",
        says: /no tag or digest/,
    },
    {
        case: "image registry port, no tag",
        config: { imageV2: "localhost:5000/tcp-echo" },
        key: "imageV2",
        says: /no tag or digest/,
    },
    {
        case: "image bad digest",
        config: { imageV1: "istio/tcp-echo-server@sha256:abc" },
        key: "imageV1",
        says: /sha256/,
    },
    { case: "gateway port 0", config: { gatewayPort: 0 }, key: "gatewayPort", says: /1 to 65535/ },
    {
        case: "gateway port 70000",
        config: { gatewayPort: 70000 },
        key: "gatewayPort",
        says: /1 to 65535/,
    },
    { case: "service port 0", config: { servicePort: 0 }, key: "servicePort", says: /1 to 65535/ },
    { case: "replicas 0", config: { replicas: 0 }, key: "replicas", says: /1 to 50/ },
    {
        case: "target unknown",
        config: { target: "aws" },
        key: "target",
        says: /"asm", "local", "render"/,
    },
    {
        case: "namespace not DNS",
        config: { namespace: "Tcp_Echo" },
        key: "namespace",
        says: /DNS-1123/,
    },
    {
        case: "hosts not a list",
        config: { hosts: "tcp.example.com" },
        key: "hosts",
        says: /list of/,
    },
    { case: "hosts empty", config: { hosts: [] }, key: "hosts", says: /at least one host/ },
    {
        case: "slb mode unknown",
        config: { slb: { mode: "share" } },
        key: "slb.mode",
        says: /"create", "reuse", "managed"/,
    },
    { case: "slb not an object", config: { slb: "reuse" }, key: "slb", says: /must be an object/ },
    {
        case: "slb address type",
        config: { slb: { addressType: "public" } },
        key: "slb.addressType",
        says: /"internet", "intranet"/,
    },
    {
        case: "slb spec (retired)",
        config: { slb: { spec: "slb.s1.small" } },
        key: "slb.spec",
        says: /retired.*no longer sold.*PayByCLCU/,
    },
    {
        case: "intranet CLB created without vSwitch",
        config: { ...ASM, slb: { mode: "create", addressType: "intranet" } },
        key: "slb.vswitchId",
        says: /required with slb.mode "create" and slb.addressType "intranet".*vsw-/,
    },
    {
        case: "malformed vSwitch id",
        config: { ...ASM, slb: { mode: "create", addressType: "intranet", vswitchId: "sw-1" } },
        key: "slb.vswitchId",
        says: /vsw- and 8\.\.32/,
    },
    {
        case: "vSwitch on an internet CLB",
        config: { slb: { vswitchId: "vsw-bp1example12345678" } },
        key: "slb.vswitchId",
        says: /only used with slb.addressType "intranet"/,
    },
    {
        case: "vSwitch with a reused CLB",
        config: {
            ...REUSE,
            slb: { ...REUSE.slb, addressType: "intranet", vswitchId: "vsw-bp1example12345678" },
        },
        key: "slb.vswitchId",
        says: /not used with slb.mode "reuse"/,
    },
    {
        case: "gateway name not a DNS label",
        config: { asm: { gatewayName: "Ingress_GW" } },
        key: "asm.gatewayName",
        says: /DNS-1123 label of at most 57/,
    },
    {
        case: "gateway name too long for istio-<name>",
        config: { asm: { gatewayName: "g".repeat(58) } },
        key: "asm.gatewayName",
        says: /at most 57/,
    },
    {
        case: "useExistingGateway not boolean",
        config: { asm: { useExistingGateway: "yes" } },
        key: "asm.useExistingGateway",
        says: /true or false/,
    },
    {
        case: "CLB settings for an existing gateway",
        config: { ...REUSE, asm: { clusterIds: [ACK_CLUSTER_ID], useExistingGateway: true } },
        key: "slb",
        says: /only for a gateway this stack creates.*slb\.mode.*slb\.id/,
    },
    {
        case: "Istio API version unknown",
        config: { istioApiVersion: "v2" },
        key: "istioApiVersion",
        says: /"v1", "v1beta1", "v1alpha3"/,
    },
    {
        case: "reuse without acknowledgment",
        config: { ...REUSE, slb: { mode: "reuse", id: "lb-2ze8x7example1234" } },
        key: "slb.acknowledgeListenerOverride",
        says: /must be true.*listener/,
    },
    {
        case: "reuse acknowledgment not boolean",
        config: { ...REUSE, slb: { ...REUSE.slb, acknowledgeListenerOverride: "yes" } },
        key: "slb.acknowledgeListenerOverride",
        says: /true or false/,
    },
    {
        case: "reuse without id",
        config: { ...REUSE, slb: { mode: "reuse", acknowledgeListenerOverride: true } },
        key: "slb.id",
        says: /lb-/,
    },
    {
        case: "malformed SLB id",
        config: { ...REUSE, slb: { ...REUSE.slb, id: "slb-123" } },
        key: "slb.id",
        says: /lb- and 8\.\.32/,
    },
    {
        case: "id without reuse",
        config: { slb: { mode: "managed", id: "lb-2ze8x7example1234" } },
        key: "slb.id",
        says: /only used with slb.mode "reuse"/,
    },
    {
        case: "gateway port used by another service on the SLB",
        config: { ...REUSE, slb: { ...REUSE.slb, otherListenerPorts: [80, DEFAULTS.gatewayPort] } },
        key: "gatewayPort",
        says: /already a frontend port/,
    },
    {
        case: "other listener port out of range",
        config: { ...REUSE, slb: { ...REUSE.slb, otherListenerPorts: [0] } },
        key: "slb.otherListenerPorts[0]",
        says: /1 to 65535/,
    },
    {
        case: "empty clusterIds",
        config: { ...ASM, asm: { clusterIds: [] } },
        key: "asm.clusterIds",
        says: /at least one/,
    },
    {
        case: "missing clusterIds on asm",
        config: { target: "asm" },
        key: "asm.clusterIds",
        says: /is required when target is "asm"/,
    },
    {
        case: "malformed cluster id",
        config: { ...ASM, asm: { clusterIds: ["cluster-1"] } },
        key: "asm.clusterIds",
        says: /ACK cluster ids/,
    },
    {
        case: "SLB shared across clusters",
        config: { ...REUSE, asm: { clusterIds: ["c0123456789abcdef", "cfedcba9876543210"] } },
        key: "asm.clusterIds",
        says: /cannot be shared across clusters/,
    },
    {
        case: "create mode off the cloud",
        config: { slb: { mode: "create" } },
        key: "slb.mode",
        says: /only allowed with target "asm"/,
    },
    {
        case: "slb field misspelt",
        config: { slb: { mode: "managed", addresstype: "intranet" } },
        key: "slb",
        says: /^unknown field "addresstype"; did you mean "addressType"\? \(known: mode, id, addressType, vswitchId, acknowledgeListenerOverride, otherListenerPorts\)$/,
    },
    {
        case: "asm field misspelt",
        config: { asm: { gatewayname: "tcp-echo-gw" } },
        key: "asm",
        says: /^unknown field "gatewayname"; did you mean "gatewayName"\? \(known: clusterIds, gatewayReplicas, gatewayName, useExistingGateway\)$/,
    },
    {
        case: "image digest after a repository that is no reference",
        config: { image: `bad image!@sha256:${"a".repeat(64)}` },
        key: "image",
        says: /repository name that is not a valid image reference/,
    },
    {
        case: "service port on Istio's outbound capture port",
        config: { servicePort: 15001 },
        key: "servicePort",
        says: /15001 is in 15000\.\.15090.*Istio.*from 1 to 14999 or 15091 to 65535/,
    },
    {
        case: "gateway port on Istio's health-check port",
        config: { gatewayPort: 15021 },
        key: "gatewayPort",
        says: /15021 is in 15000\.\.15090.*from 1 to 14999 or 15091 to 65535/,
    },
    {
        case: "max connection duration without a unit",
        config: { connectionPool: { maxConnectionDuration: "30" } },
        key: "connectionPool.maxConnectionDuration",
        says: /duration such as "30s".*Go's syntax.*"30"/,
    },
    {
        case: "max connection duration in days (Go has no d unit)",
        config: { connectionPool: { maxConnectionDuration: "1d" } },
        key: "connectionPool.maxConnectionDuration",
        says: /duration such as.*"1d"/,
    },
    {
        case: "max connection duration 0s (Istio: at least 1ms; there is no off)",
        config: { connectionPool: { maxConnectionDuration: "0s" } },
        key: "connectionPool.maxConnectionDuration",
        says: /at least 1s; got "0s"/,
    },
    {
        case: "max connection duration negative",
        config: { connectionPool: { maxConnectionDuration: "-5m" } },
        key: "connectionPool.maxConnectionDuration",
        says: /at least 1s; got "-5m"/,
    },
    {
        case: "max connection duration under a second",
        config: { connectionPool: { maxConnectionDuration: "500ms" } },
        key: "connectionPool.maxConnectionDuration",
        says: /at least 1s; got "500ms"/,
    },
    {
        case: "max connection duration finer than a millisecond",
        config: { connectionPool: { maxConnectionDuration: "1.0005s" } },
        key: "connectionPool.maxConnectionDuration",
        says: /whole milliseconds.*ms precision/,
    },
    {
        case: "max connection duration beyond Go's int64 nanoseconds",
        config: { connectionPool: { maxConnectionDuration: "2562048h" } },
        key: "connectionPool.maxConnectionDuration",
        says: /duration such as.*"2562048h"/,
    },
    {
        case: "max connection duration as a number",
        config: { connectionPool: { maxConnectionDuration: 60 } },
        key: "connectionPool.maxConnectionDuration",
        says: /duration such as.*got 60/,
    },
    {
        case: "idle timeout with a space",
        config: { connectionPool: { idleTimeout: "10 m" } },
        key: "connectionPool.idleTimeout",
        says: /or "0s" to disable.*got "10 m"/,
    },
    {
        case: "idle timeout under a second",
        config: { connectionPool: { idleTimeout: "999ms" } },
        key: "connectionPool.idleTimeout",
        says: /at least 1s, or "0s"/,
    },
    {
        case: "connection pool field misspelt",
        config: { connectionPool: { idleTimout: "1h" } },
        key: "connectionPool",
        says: /unknown field "idleTimout"; did you mean "idleTimeout"\?/,
    },
    {
        case: "gateway replicas 0",
        config: { ...ASM, asm: { clusterIds: [ACK_CLUSTER_ID], gatewayReplicas: 0 } },
        key: "asm.gatewayReplicas",
        says: /1 to 20/,
    },
];

describe("stack config", () => {
    it("parses the happy path with documented defaults", () => {
        const s = settingsFor();
        assert.equal(s.v2Weight, 20);
        assert.deepEqual(s.weights, { stable: 80, canary: 20 });
        assert.deepEqual(s.images, { stable: DEFAULTS.image, canary: DEFAULTS.image });
        assert.equal(s.gatewayPort, DEFAULTS.gatewayPort);
        assert.equal(s.servicePort, 9000);
        assert.deepEqual(s.hosts, ["*"]);
        assert.equal(s.slb.mode, "managed");
        assert.equal(s.namespace, "default");
        assert.equal(s.istioApiVersion, "v1");
        assert.deepEqual([s.asm.gatewayName, s.asm.useExistingGateway], ["ingressgateway", false]);
    });

    it("takes a gateway name, an existing gateway and an older Istio API", () => {
        const s = settingsFor({
            istioApiVersion: "v1beta1",
            asm: { gatewayName: "tcp-echo-ingressgateway", useExistingGateway: true },
            slb: { mode: "managed" },
        });
        assert.equal(s.istioApiVersion, "v1beta1");
        assert.deepEqual(
            [s.asm.gatewayName, s.asm.useExistingGateway],
            ["tcp-echo-ingressgateway", true],
        );
    });

    it("accepts a reused SLB only with the acknowledgment, and keeps its id", () => {
        const s = settingsFor(REUSE);
        assert.equal(s.slb.mode, "reuse");
        assert.equal(s.slb.id, "lb-2ze8x7example1234");
        assert.equal(s.slb.acknowledgeListenerOverride, true);
    });

    it("accepts per-version image overrides pinned by tag or digest", () => {
        const digest = `istio/tcp-echo-server@sha256:${"a".repeat(64)}`;
        const s = settingsFor({
            imageV2: digest,
            imageV1: "registry.example.com:5000/tcp-echo:1.2",
        });
        assert.equal(s.images.canary, digest);
        assert.equal(s.images.stable, "registry.example.com:5000/tcp-echo:1.2");
    });

    it(`has a table of at least 20 distinct bad inputs (${BAD_INPUTS.length})`, () => {
        assert.ok(BAD_INPUTS.length >= 20);
        assert.equal(new Set(BAD_INPUTS.map((b) => b.case)).size, BAD_INPUTS.length);
    });

    for (const bad of BAD_INPUTS) {
        it(`rejects ${bad.case}, naming ${bad.key}`, () => {
            const config = happyConfig(bad.config);
            for (const [k, v] of Object.entries(config)) if (v === undefined) delete config[k];
            assert.throws(
                () => parseSettings(readerFor(config)),
                (err: unknown) => {
                    assert.ok(
                        err instanceof ConfigError,
                        `expected ConfigError, got ${String(err)}`,
                    );
                    const problem = err.problems.find((p) => p.key === bad.key);
                    assert.ok(problem, `no problem names ${bad.key}: ${err.message}`);
                    assert.match(problem.message, bad.says);
                    assert.match(
                        err.message,
                        new RegExp(`asm-tcp-shift:${bad.key.replace(/[.[\]]/g, "\\$&")}: `),
                    );
                    return true;
                },
            );
        });
    }

    it("reports every bad key at once", () => {
        assert.throws(
            () =>
                parseSettings(
                    readerFor(happyConfig({ v2Weight: 101, image: "x:latest", gatewayPort: 0 })),
                ),
            (err: unknown) => err instanceof ConfigError && err.problems.length === 3,
        );
    });

    it("tells a registry port from a tag", () => {
        assert.equal(imagePinProblem("localhost:5000/tcp-echo:1.2"), undefined);
        assert.match(imagePinProblem("localhost:5000/tcp-echo") ?? "", /no tag/);
    });
});

describe("object keys refuse fields they do not know", () => {
    it("refuses slb: {mode: create, addresstype: intranet} rather than create an internet CLB", () => {
        const config = happyConfig({
            ...ASM,
            slb: { mode: "create", addresstype: "intranet", vswitchId: "vsw-bp1example12345678" },
        });
        assert.throws(
            () => parseSettings(readerFor(config)),
            (err: unknown) =>
                err instanceof ConfigError &&
                /asm-tcp-shift:slb: unknown field "addresstype"; did you mean "addressType"\?/.test(
                    err.message,
                ),
        );
    });

    it("reports unknown fields together with every other problem", () => {
        assert.throws(
            () =>
                parseSettings(
                    readerFor(
                        happyConfig({
                            v2Weight: 101,
                            slb: { mode: "share", adressTpye: "intranet", colour: "red" },
                            asm: { gatewayReplica: 2 },
                        }),
                    ),
                ),
            (err: unknown) => {
                assert.ok(err instanceof ConfigError);
                assert.deepEqual(err.problems.map((p) => p.key).sort(), [
                    "asm",
                    "slb",
                    "slb",
                    "slb.mode",
                    "v2Weight",
                ]);
                const messages = err.problems.map((p) => p.message).join("\n");
                assert.match(messages, /"adressTpye"; did you mean "addressType"\?/);
                assert.match(messages, /"gatewayReplica"; did you mean "gatewayReplicas"\?/);
                // Nothing known is near "colour": no guess, only the known fields.
                assert.match(messages, /unknown field "colour" \(known: mode, id,/);
                return true;
            },
        );
    });

    it("still reports the retired slb.spec as retired, not as unknown", () => {
        assert.throws(
            () => parseSettings(readerFor(happyConfig({ slb: { spec: "slb.s1.small" } }))),
            (err: unknown) =>
                err instanceof ConfigError &&
                err.problems.length === 1 &&
                err.problems[0].key === "slb.spec",
        );
    });
});

describe("connection pool durations (DestinationRule trafficPolicy.connectionPool.tcp)", () => {
    it("are unset by default: Istio's own defaults apply", () => {
        assert.deepEqual(settingsFor().connectionPool, {});
        assert.deepEqual(DEFAULTS.connectionPool, {});
    });

    it("take Go's duration syntax and keep a canonical form of it", () => {
        const s = settingsFor({
            connectionPool: { maxConnectionDuration: "1h30m", idleTimeout: "90s" },
        });
        assert.deepEqual(s.connectionPool, { maxConnectionDuration: "90m", idleTimeout: "90s" });
        for (const [given, canonical] of [
            ["1.5h", "90m"],
            ["3600s", "1h"],
            ["2500ms", "2500ms"],
            ["1s", "1s"],
            ["+10m", "10m"],
            ["1h0m0.5s", "3600500ms"],
            ["1000000us", "1s"],
            ["1000000\u00b5s", "1s"],
            ["2562047h", "2562047h"],
        ])
            assert.equal(
                settingsFor({ connectionPool: { maxConnectionDuration: given } }).connectionPool
                    .maxConnectionDuration,
                canonical,
                given,
            );
    });

    it("let 0s (or 0) disable the idle timeout, as Istio's API does", () => {
        for (const zero of ["0s", "0", "0ms", "0h0m"])
            assert.equal(
                settingsFor({ connectionPool: { idleTimeout: zero } }).connectionPool.idleTimeout,
                "0s",
                zero,
            );
    });

    it("report both fields' problems at once, each under its own key", () => {
        assert.throws(
            () =>
                parseSettings(
                    readerFor(
                        happyConfig({
                            connectionPool: { maxConnectionDuration: "soon", idleTimeout: "-1s" },
                        }),
                    ),
                ),
            (err: unknown) =>
                err instanceof ConfigError &&
                JSON.stringify(err.problems.map((p) => p.key)) ===
                    JSON.stringify([
                        "connectionPool.maxConnectionDuration",
                        "connectionPool.idleTimeout",
                    ]),
        );
    });

    it("parse exactly as Go's time.ParseDuration does", () => {
        // Cases from Go's own time/time_test.go parseDurationTests.
        const ns = (s: string) => parseGoDuration(s);
        assert.equal(ns("0"), 0n);
        assert.equal(ns("5s"), 5_000_000_000n);
        assert.equal(ns("-5s"), -5_000_000_000n);
        assert.equal(ns("1.5s"), 1_500_000_000n);
        assert.equal(ns(".5s"), 500_000_000n);
        assert.equal(ns("5.s"), 5_000_000_000n);
        assert.equal(ns("1h2m3s4ms5us6ns"), 3_723_004_005_006n);
        assert.equal(ns("9223372036854775807ns"), 2n ** 63n - 1n);
        assert.equal(ns("0.100000000000000000000h"), 360_000_000_000n);
        for (const bad of [
            "",
            "3",
            "-",
            "s",
            ".",
            "-.",
            ".s",
            "+.s",
            "1d",
            "3000000h",
            "9223372036854775808ns",
            " 1s",
        ])
            assert.equal(ns(bad), undefined, JSON.stringify(bad));
        assert.equal(formatDurationMs(0n), "0s");
        assert.equal(formatDurationMs(7_200_000n), "2h");
    });
});

describe("edit distance and the closest name", () => {
    it("counts insertions, deletions, substitutions and adjacent swaps as one each", () => {
        for (const [a, b, distance] of [
            ["", "", 0],
            ["mode", "", 4],
            ["", "mode", 4],
            ["mode", "mode", 0],
            ["kitten", "sitting", 3],
            ["addresstype", "addressType", 1],
            ["adressType", "addressType", 1],
            ["addressTpye", "addressType", 1],
            ["adressTpye", "addressType", 2],
            ["ab", "ba", 1],
        ] as const) {
            assert.equal(editDistance(a, b), distance, `${a} -> ${b}`);
            assert.equal(editDistance(b, a), distance, `${b} -> ${a}`);
        }
    });

    it("guesses the nearest name ignoring case, and nothing when none is near", () => {
        const known = ["mode", "id", "addressType", "vswitchId"];
        assert.equal(closest("addresstype", known), "addressType");
        assert.equal(closest("vswitchID", known), "vswitchId");
        assert.equal(closest("mod", known), "mode");
        assert.equal(closest("colour", known), undefined);
        assert.equal(closest("anything", []), undefined);
    });
});

describe("image references", () => {
    const digest = `sha256:${"0123456789abcdef".repeat(4)}`;

    it("accepts pinned references of every documented form", () => {
        for (const image of [
            "istio/tcp-echo-server:1.2",
            "docker.io/istio/tcp-echo-server:1.2",
            "registry.example.com:5000/team/tcp-echo:1.2",
            "localhost:5000/tcp-echo:v1_2-rc.3",
            "Registry.Example.com/a/b_c__d-e.f:1",
            `istio/tcp-echo-server@${digest}`,
            `istio/tcp-echo-server:1.2@${digest}`,
            `registry.example.com:5000/tcp-echo@${digest}`,
        ])
            assert.equal(imagePinProblem(image), undefined, image);
    });

    it("checks the repository before a digest as it does before a tag", () => {
        for (const image of [
            `bad image!@${digest}`,
            `@${digest}`,
            `Istio/Tcp-Echo@${digest}`,
            `istio//tcp-echo@${digest}`,
            `-istio/tcp-echo@${digest}`,
            `istio/tcp-echo-@${digest}`,
            "istio/Tcp-Echo:1.2",
            "istio//tcp-echo:1.2",
        ])
            assert.match(
                imagePinProblem(image) ?? "",
                /repository name that is not a valid/,
                image,
            );
        assert.match(
            imagePinProblem(`istio/tcp-echo:bad tag@${digest}`) ?? "",
            /not a valid image tag/,
        );
        assert.match(imagePinProblem(`istio/tcp-echo@${digest}x`) ?? "", /sha256/);
    });

    it("quotes no part of the image, which may be a secret", () => {
        for (const image of [
            "registry.example.com/SECRET/tcp-echo@sha256:SECRET",
            "registry.example.com/SECRET/tcp-echo:SECRET!",
            "SECRET!/tcp-echo:1.2",
            "registry.example.com/SECRET/tcp-echo",
        ])
            assert.doesNotMatch(imagePinProblem(image) ?? "", /SECRET/, image);
    });
});

describe("Istio's reserved ports", () => {
    it("refuses 15000 to 15090 for the Service and the gateway, and allows the ports around them", () => {
        for (const key of ["servicePort", "gatewayPort"]) {
            for (const port of [14999, 15091, 9000, 31400])
                assert.equal(settingsFor({ [key]: port })[key as "servicePort"], port);
            for (const port of [15000, 15006, 15008, 15020, 15090])
                assert.throws(
                    () => settingsFor({ [key]: port }),
                    (err: unknown) =>
                        err instanceof ConfigError &&
                        err.problems.some(
                            (p) =>
                                p.key === key &&
                                /from 1 to 14999 or 15091 to 65535/.test(p.message),
                        ),
                    `${key} ${port}`,
                );
        }
    });
});
