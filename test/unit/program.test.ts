import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SLB_ANNOTATIONS, TYPE_TOKENS, PROGRAM_ANNOTATIONS } from "../../components/model";
import * as pulumi from "@pulumi/pulumi";
import * as fs from "fs";
import * as path from "path";
import { ConfigError, DEFAULTS } from "../../config";
import { secureKeysOf, storedSecretKeys } from "../../config/storedSecrets";
import * as os from "os";
import { PROJECT_ROOT } from "../../tools/engine/engine";
import { freePort } from "../support/echoServers";
import { readStackConfig } from "../../config/secrets";
import { makeProviders } from "../../program/providers";
import { checkStackTarget, reusedClbTagProblems } from "../../program/target";
import { PreflightError } from "../../preflight";
import { ACK_CLUSTER_ID, KUBECONFIG_KEYS, asmConfig } from "../support/settings";
import {
    RecordedResource,
    SECRET_SIG,
    SECRET_SIG_VALUE,
    byType,
    mockClbApiFailure,
    mockClbTags,
    mockedProgram as runProgram,
    mockedStackConfig,
    one,
    recordResources,
    unwrap,
} from "../support/mocks";

/** Folders that hold no source of the project: installed packages, local state, outputs. */
const NOT_SOURCE = new Set(["node_modules", ".git", ".local", "rendered", "bin"]);

function providerName(resource: RecordedResource): string | undefined {
    // Provider references are "<urn>::<id>"; the URN ends with the provider's resource name.
    return resource.provider?.split("::")[3];
}

const tcpRoute = (resources: RecordedResource[]) =>
    one(resources, TYPE_TOKENS.virtualService).inputs.spec.tcp[0];

describe("whole program on the render target", () => {
    for (const [v2Weight, v1Weight] of [
        [0, 100],
        [20, 80],
        [100, 0],
    ]) {
        it(`v2Weight ${v2Weight} routes ${v1Weight}/${v2Weight} to subsets v1/v2 on port 31400`, async () => {
            const { resources, outputs } = await runProgram({ target: "render", v2Weight });
            const route = tcpRoute(resources);
            assert.deepEqual(route.match, [{ port: 31400 }]);
            assert.deepEqual(route.route, [
                {
                    destination: { host: "tcp-echo", port: { number: 9000 }, subset: "v1" },
                    weight: v1Weight,
                },
                {
                    destination: { host: "tcp-echo", port: { number: 9000 }, subset: "v2" },
                    weight: v2Weight,
                },
            ]);
            assert.equal(outputs.v2Weight, v2Weight);
            assert.equal(
                await unwrap(outputs.ingressAddress),
                "127.0.0.1",
                "off the cloud, the local data plane answers on loopback",
            );
            assert.deepEqual(outputs.weights, { v1: v1Weight, v2: v2Weight });
        });
    }

    it("declares exactly the scenario's Kubernetes objects", async () => {
        const { resources } = await runProgram({ target: "render", v2Weight: 20 });
        const kinds = resources.filter(
            (r) => r.type.startsWith("kubernetes:") && r.type !== "pulumi:providers:kubernetes",
        );
        const names = kinds
            .map(
                (r) =>
                    `${r.type.split(":")[2]}/${r.inputs.metadata.namespace}/${r.inputs.metadata.name}`,
            )
            .sort();
        assert.deepEqual(names, [
            "Deployment/default/tcp-echo-v1",
            "Deployment/default/tcp-echo-v2",
            "DestinationRule/default/tcp-echo-destination",
            "Gateway/default/tcp-echo-gateway",
            "IstioGateway/istio-system/ingressgateway",
            "Service/default/tcp-echo",
            "VirtualService/default/tcp-echo",
        ]);
        assert.equal(byType(resources, TYPE_TOKENS.slb).length, 0, "no CLB off the cloud");
    });

    it("gives the two Deployments one labels object for selector and template, and the server args", async () => {
        const { resources } = await runProgram({ target: "render", v2Weight: 20 });
        for (const [subset, prefix] of [
            ["v1", "one"],
            ["v2", "two"],
        ]) {
            const d = byType(resources, TYPE_TOKENS.deployment).find(
                (r) => r.inputs.metadata.name === `tcp-echo-${subset}`,
            )!;
            const labels = { app: "tcp-echo", version: subset };
            assert.deepEqual(d.inputs.metadata.labels, labels);
            assert.deepEqual(d.inputs.spec.selector.matchLabels, labels);
            assert.deepEqual(d.inputs.spec.template.metadata.labels, labels);
            const c = d.inputs.spec.template.spec.containers[0];
            assert.equal(c.image, DEFAULTS.image);
            assert.deepEqual(c.args, ["9000", prefix]);
            assert.deepEqual(c.ports, [{ name: "tcp", containerPort: 9000, protocol: "TCP" }]);
            assert.deepEqual(c.readinessProbe.tcpSocket, { port: "tcp" });
            assert.deepEqual(c.livenessProbe.tcpSocket, { port: "tcp" });
            assert.ok(c.resources.requests.cpu && c.resources.limits.memory);
            assert.equal(d.inputs.spec.replicas, 1);
        }
    });

    it("exposes the Service as tcp 9000/TCP selecting app tcp-echo", async () => {
        const { resources } = await runProgram({ target: "render", v2Weight: 0 });
        const svc = one(resources, TYPE_TOKENS.service);
        assert.deepEqual(svc.inputs.spec.selector, { app: "tcp-echo" });
        assert.deepEqual(svc.inputs.spec.ports, [
            { name: "tcp", port: 9000, targetPort: "tcp", protocol: "TCP" },
        ]);
    });

    it("defines a subset per version in the DestinationRule and a TCP server on the Gateway", async () => {
        const { resources } = await runProgram({ target: "render", v2Weight: 0 });
        const dr = one(resources, TYPE_TOKENS.destinationRule);
        assert.deepEqual(dr.inputs.spec, {
            host: "tcp-echo",
            subsets: [
                { name: "v1", labels: { version: "v1" } },
                { name: "v2", labels: { version: "v2" } },
            ],
        });
        const gw = one(resources, TYPE_TOKENS.gateway);
        assert.deepEqual(gw.inputs.spec, {
            selector: { "asm-tcp-shift.io/gateway": "ingressgateway" },
            servers: [{ port: { number: 31400, name: "tcp", protocol: "TCP" }, hosts: ["*"] }],
        });
        const vs = one(resources, TYPE_TOKENS.virtualService);
        assert.deepEqual(vs.inputs.spec.gateways, ["tcp-echo-gateway"]);
        assert.equal(
            vs.inputs.metadata.annotations["pulumi.com/patchForce"],
            "true",
            "the stack owns the weights over hand edits",
        );
        assert.deepEqual(vs.inputs.spec.hosts, ["*"]);
    });

    it("puts the connection pool durations on the DestinationRule's host-level trafficPolicy, and nothing when unset", async () => {
        const { resources } = await runProgram({
            target: "render",
            v2Weight: 20,
            connectionPool: { maxConnectionDuration: "1.5h", idleTimeout: "0" },
        });
        const dr = one(resources, TYPE_TOKENS.destinationRule);
        assert.deepEqual(dr.inputs.spec.trafficPolicy, {
            connectionPool: { tcp: { maxConnectionDuration: "90m", idleTimeout: "0s" } },
        });
        assert.deepEqual(
            dr.inputs.spec.subsets.map((s: any) => s.trafficPolicy),
            [undefined, undefined],
            "istiod reads a weighted TCP route's tcp_proxy settings from the host level only",
        );
        const only = await runProgram({
            target: "render",
            v2Weight: 20,
            connectionPool: { idleTimeout: "10m" },
        });
        assert.deepEqual(
            one(only.resources, TYPE_TOKENS.destinationRule).inputs.spec.trafficPolicy,
            {
                connectionPool: { tcp: { idleTimeout: "10m" } },
            },
        );
        const none = await runProgram({ target: "render", v2Weight: 20, connectionPool: {} });
        assert.equal(
            one(none.resources, TYPE_TOKENS.destinationRule).inputs.spec.trafficPolicy,
            undefined,
        );
    });

    it("refuses a bad connection pool duration before any resource is registered", async () => {
        await assert.rejects(
            runProgram({
                target: "render",
                v2Weight: 20,
                connectionPool: { maxConnectionDuration: "forever" },
            }),
            (err: unknown) =>
                err instanceof ConfigError &&
                /asm-tcp-shift:connectionPool\.maxConnectionDuration: must be a duration/.test(
                    err.message,
                ),
        );
    });

    it("moves the gateway port everywhere at once", async () => {
        const { resources } = await runProgram({
            target: "render",
            v2Weight: 0,
            gatewayPort: 31500,
        });
        assert.equal(one(resources, TYPE_TOKENS.gateway).inputs.spec.servers[0].port.number, 31500);
        assert.deepEqual(tcpRoute(resources).match, [{ port: 31500 }]);
        assert.deepEqual(one(resources, TYPE_TOKENS.istioGateway).inputs.spec.ports, [
            { name: "tcp", port: 31500, targetPort: 31500, protocol: "TCP" },
        ]);
    });

    it("renders through a single render provider on the render target", async () => {
        const { resources } = await runProgram({ target: "render", v2Weight: 0, renderDir: "out" });
        const providers = byType(resources, "pulumi:providers:kubernetes");
        assert.deepEqual(
            providers.map((p) => [p.name, p.inputs.renderYamlToDirectory]),
            [["render", "out"]],
        );
        for (const r of resources.filter((r) => r.type.startsWith("kubernetes:")))
            assert.equal(providerName(r), "render", r.name);
    });
});

describe("secret settings", () => {
    const PRIVATE = "registry.example.com/team/tcp-echo-server:1.3";

    it("keeps images secret in the Deployments and the outputs when an image key is stored as a secret", async () => {
        const { resources, outputs } = await runProgram(
            { target: "render", v2Weight: 20, imageV2: PRIVATE },
            ["imageV2"],
        );
        for (const d of byType(resources, TYPE_TOKENS.deployment)) {
            // Pulumi's secret sentinel on the property that holds the image: the engine stores it encrypted.
            assert.equal(d.inputs.spec[SECRET_SIG], SECRET_SIG_VALUE, d.name);
            assert.match(d.inputs.spec.value.template.spec.containers[0].image, /tcp-echo-server/);
        }
        assert.ok(
            typeof (outputs.images as any).apply === "function",
            "the images output is an Output (a secret)",
        );
        assert.deepEqual(await unwrap(outputs.images), { v1: DEFAULTS.image, v2: PRIVATE });
    });

    it("leaves images plain when no image key is a secret", async () => {
        const { resources } = await runProgram({
            target: "render",
            v2Weight: 20,
            imageV2: PRIVATE,
        });
        const images = byType(resources, TYPE_TOKENS.deployment)
            .map((d) => d.inputs.spec.template.spec.containers[0].image)
            .sort();
        assert.deepEqual(images, [DEFAULTS.image, PRIVATE].sort());
    });

    it("never quotes a secret value in a refusal", async () => {
        await recordResources(
            {
                target: "render",
                v2Weight: 20,
                imageV2: "registry.example.com/zq7team/tcp-echo-server:latest",
                imageV1: "registry.example.com/zq7team/tcp-echo@sha256:zq7digest",
                namespace: "ZQ7_NAMESPACE",
                slb: { mode: "zq7mode", otherListenerPorts: ["zq7port"] },
            },
            ["imageV1", "imageV2", "namespace", "slb"],
        );
        assert.throws(
            () => mockedStackConfig(),
            (err: unknown) => {
                assert.ok(err instanceof ConfigError);
                assert.deepEqual(
                    err.problems.map((p) => p.key),
                    [
                        "namespace",
                        "imageV1",
                        "imageV2",
                        "slb.mode",
                        "slb.otherListenerPorts[0]",
                        "namespace",
                        "slb",
                    ],
                );
                assert.match(
                    err.message,
                    /imageV2: image \(a secret value, not shown\) uses the moving tag "latest"/,
                );
                assert.doesNotMatch(err.message, /zq7/i);
                return true;
            },
        );
    });

    it("refuses any other setting stored as a secret: it would land in the state in plain text", async () => {
        await recordResources({ target: "render", v2Weight: 20, namespace: "team-a" }, [
            "namespace",
            "v2Weight",
        ]);
        assert.throws(
            () => mockedStackConfig(),
            (err: Error) =>
                /namespace: is stored as a secret/.test(err.message) &&
                /v2Weight: is stored as a secret/.test(err.message),
        );
    });
});

describe("the program's config keys", () => {
    it("refuses a key of the project it does not know, naming the closest known one", async () => {
        await recordResources({
            target: "render",
            v2Weight: 20,
            gatewayport: 31500,
            colour: "red",
        });
        assert.throws(
            () => mockedStackConfig(),
            (err: unknown) => {
                assert.ok(err instanceof ConfigError);
                assert.deepEqual(
                    err.problems.map((p) => p.key),
                    ["gatewayport", "colour"],
                );
                assert.match(
                    err.message,
                    /asm-tcp-shift:gatewayport: unknown key "gatewayport"; did you mean "gatewayPort"\? \(known: v2Weight, target, .*, dataPlaneKubeconfig, controlPlaneKubeconfig\)/,
                );
                assert.doesNotMatch(err.problems[1].message, /did you mean/);
                return true;
            },
        );
    });

    it("reads other namespaces' keys (the providers') without judging them", async () => {
        await recordResources({ target: "render", v2Weight: 20 });
        pulumi.runtime.setConfig("alicloud:region", "cn-hangzhou");
        assert.equal(mockedStackConfig().settings.target, "render");
    });
});

describe("secret handling uses only the SDK's public entry points", () => {
    it("imports no @pulumi module by an internal path", () => {
        const sources = (dir: string): string[] =>
            fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
                if (NOT_SOURCE.has(e.name)) return [];
                const file = path.join(dir, e.name);
                return e.isDirectory()
                    ? sources(file)
                    : /\.(ts|js|cjs|mjs)$/.test(e.name)
                      ? [file]
                      : [];
            });
        // Public entry points: a package's index and the Automation API.
        const deep =
            /(?:from\s+|require\(\s*|import\(\s*)["'](@pulumi\/[^/"']+\/(?!automation["'])[^"']+)["']/g;
        const found = sources(PROJECT_ROOT).flatMap((file) =>
            [...fs.readFileSync(file, "utf8").matchAll(deep)].map(
                (m) => `${path.relative(PROJECT_ROOT, file)}: ${m[1]}`,
            ),
        );
        assert.deepEqual(found, []);
    });

    it("learns which keys are secrets from the stack settings file, as `config set --secret` writes it", () => {
        const file = [
            "config:",
            '  asm-tcp-shift:v2Weight: "20"',
            "  asm-tcp-shift:imageV2:",
            "    secure: v1:abc",
            "  asm-tcp-shift:slb:",
            "    mode: reuse",
            "    id:",
            "      secure: v1:def",
            "  other-project:image:",
            "    secure: v1:ghi",
        ].join("\n");
        assert.deepEqual([...secureKeysOf(file)].sort(), ["imageV2", "slb"]);
        assert.deepEqual([...secureKeysOf("encryptionsalt: x\n")], []);
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "asm-stack-file-"));
        try {
            assert.deepEqual(
                [...storedSecretKeys("dev", dir)],
                [],
                "no settings file: no stored secrets",
            );
            fs.writeFileSync(path.join(dir, "Pulumi.dev.yaml"), file);
            assert.deepEqual([...storedSecretKeys("dev", dir)].sort(), ["imageV2", "slb"]);
            // A broken file is reported by position, never by its text.
            fs.writeFileSync(
                path.join(dir, "Pulumi.dev.yaml"),
                "config:\n  a: [SUPERSECRETTOKEN123\n",
            );
            assert.throws(
                () => storedSecretKeys("dev", dir),
                (err: Error) =>
                    /Pulumi\.dev\.yaml is not valid YAML/.test(err.message) &&
                    !err.message.includes("SUPERSECRET"),
            );
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("keeps the images secret exactly when an image key is stored as a secret", async () => {
        await recordResources({ target: "render", v2Weight: 20, imageV2: "x/y:1" });
        assert.equal(readStackConfig(new Set(["imageV2"])).settings.secretImages, true);
        assert.equal(readStackConfig(new Set()).settings.secretImages, false);
    });
});

describe("whole program on the asm target", () => {
    const asm = asmConfig();
    const secretKeys = KUBECONFIG_KEYS;

    it("rejects a kubeconfig stored in plain text", async () => {
        await recordResources(asm, []);
        assert.throws(
            () => mockedStackConfig(),
            /dataPlaneKubeconfig: holds a kubeconfig in plain text/,
        );
    });

    it("reports bad settings and missing secrets together", async () => {
        await recordResources(
            asmConfig({
                v2Weight: 101,
                dataPlaneKubeconfig: undefined,
                controlPlaneKubeconfig: undefined,
            }),
        );
        assert.throws(
            () => mockedStackConfig(),
            (err: any) => {
                assert.deepEqual(
                    err.problems.map((p: any) => p.key),
                    ["v2Weight", "dataPlaneKubeconfig", "controlPlaneKubeconfig"],
                );
                return true;
            },
        );
    });

    it("requires the kubeconfigs on asm", async () => {
        await recordResources(
            asmConfig({ dataPlaneKubeconfig: undefined, controlPlaneKubeconfig: undefined }),
        );
        assert.throws(
            () => mockedStackConfig(),
            /controlPlaneKubeconfig: is required when target is "asm"/,
        );
    });

    it("declares the IstioGateway for ASM with a managed CLB by default", async () => {
        const { resources } = await runProgram(asm, secretKeys);
        const ig = one(resources, TYPE_TOKENS.istioGateway);
        assert.equal(ig.inputs.apiVersion, "istio.alibabacloud.com/v1beta1");
        assert.equal(ig.inputs.metadata.namespace, "istio-system");
        assert.equal(ig.inputs.metadata.annotations[PROGRAM_ANNOTATIONS.slbMode], "managed");
        assert.deepEqual(ig.inputs.spec.clusterIds, ["c0123456789abcdef"]);
        assert.equal(ig.inputs.spec.gatewayType, "ingress");
        assert.equal(ig.inputs.spec.serviceType, "LoadBalancer");
        assert.equal(ig.inputs.spec.replicaCount, 2);
        assert.deepEqual(ig.inputs.spec.serviceAnnotations, {
            [SLB_ANNOTATIONS.addressType]: "internet",
            [SLB_ANNOTATIONS.chargeType]: "PayByCLCU",
        });
    });

    it("leaves ingressAddress absent until ASM reports it, with the way to find it in its own output", async () => {
        const { outputs } = await runProgram(asm, secretKeys);
        assert.equal(await unwrap(outputs.ingressAddress), undefined);
        assert.equal(await unwrap(outputs.ncCommand), undefined);
        const hint = outputs.ingressAddressHint;
        assert.match(hint ?? "", /IstioGateway istio-system\/ingressgateway/);
        assert.match(hint ?? "", /svc istio-ingressgateway/);
        assert.doesNotMatch(
            JSON.stringify(await unwrap(outputs.ingressAddress)) ?? "",
            /\$\(/,
            "an output holds a value, not shell",
        );
    });

    it("routes through an existing gateway without declaring it, selecting the pods the preflight read", async () => {
        const { resources, outputs } = await runProgram(
            { ...asm, asm: { clusterIds: [ACK_CLUSTER_ID], useExistingGateway: true } },
            secretKeys,
            {
                existingGateway: {
                    podSelector: { istio: "ingressgateway" },
                    address: "198.51.100.7",
                },
            },
        );
        assert.equal(
            byType(resources, TYPE_TOKENS.istioGateway).length,
            0,
            "the stack declares nothing of a gateway it does not own",
        );
        assert.deepEqual(one(resources, TYPE_TOKENS.gateway).inputs.spec.selector, {
            istio: "ingressgateway",
        });
        assert.equal(await unwrap(outputs.ingressAddress), "198.51.100.7");
        assert.equal(outputs.slbMode, "existing-gateway");
    });

    it("uses the configured gateway name for the CR, its pod label and the address hint", async () => {
        const { resources, outputs } = await runProgram(
            { ...asm, asm: { clusterIds: [ACK_CLUSTER_ID], gatewayName: "tcp-echo-gw" } },
            secretKeys,
        );
        const ig = one(resources, TYPE_TOKENS.istioGateway);
        assert.equal(ig.inputs.metadata.name, "tcp-echo-gw");
        assert.deepEqual(
            one(resources, TYPE_TOKENS.gateway).inputs.spec.selector,
            ig.inputs.spec.podLabels,
        );
        assert.match(outputs.ingressAddressHint ?? "", /svc istio-tcp-echo-gw/);
    });

    it("stamps every object with this stack's owner and force-owns it", async () => {
        const { resources } = await runProgram(asm, secretKeys);
        const objects = resources.filter(
            (r) => r.type.startsWith("kubernetes:") && !r.type.startsWith("pulumi:"),
        );
        assert.equal(objects.length, 7);
        for (const r of objects) {
            assert.match(
                r.inputs.metadata.annotations["asm-tcp-shift.io/stack"],
                /^.+\/asm-tcp-shift\/unit$/,
                r.name,
            );
            assert.equal(r.inputs.metadata.annotations["pulumi.com/patchForce"], "true", r.name);
        }
    });

    it("creates a CLB with the alicloud provider and binds it by id in create mode", async () => {
        const { resources, outputs } = await runProgram(
            {
                ...asm,
                slb: {
                    mode: "create",
                    addressType: "intranet",
                    vswitchId: "vsw-bp1example12345678",
                },
            },
            secretKeys,
        );
        const slb = one(resources, TYPE_TOKENS.slb);
        assert.equal(slb.inputs.addressType, "intranet");
        assert.equal(slb.inputs.instanceChargeType, "PayByCLCU");
        assert.equal(
            slb.inputs.loadBalancerSpec,
            undefined,
            "pay-by-specification is no longer sold",
        );
        assert.equal(slb.inputs.vswitchId, "vsw-bp1example12345678");
        assert.equal(providerName(slb), "alicloud");
        const ig = one(resources, TYPE_TOKENS.istioGateway);
        assert.deepEqual(ig.inputs.spec.serviceAnnotations, {
            [SLB_ANNOTATIONS.id]: "lb-mockcreated0001",
            [SLB_ANNOTATIONS.forceOverrideListeners]: "true",
        });
        assert.equal(await unwrap(outputs.ingressAddress), "203.0.113.10");
        assert.match((await unwrap(outputs.ncCommand)) ?? "", /nc 203\.0\.113\.10 31400/);
    });

    it("reuses a CLB by id with the acknowledgment recorded", async () => {
        const { resources, outputs } = await runProgram(
            {
                ...asm,
                slb: {
                    mode: "reuse",
                    id: "lb-2ze8x7example1234",
                    acknowledgeListenerOverride: true,
                    otherListenerPorts: [80],
                },
            },
            secretKeys,
        );
        assert.equal(byType(resources, TYPE_TOKENS.slb).length, 0);
        const ig = one(resources, TYPE_TOKENS.istioGateway);
        assert.equal(ig.inputs.spec.serviceAnnotations[SLB_ANNOTATIONS.id], "lb-2ze8x7example1234");
        assert.equal(
            ig.inputs.spec.serviceAnnotations[SLB_ANNOTATIONS.forceOverrideListeners],
            "true",
        );
        assert.equal(
            ig.inputs.metadata.annotations[PROGRAM_ANNOTATIONS.listenerOverrideAcknowledged],
            "true",
        );
        assert.equal(ig.inputs.metadata.annotations[PROGRAM_ANNOTATIONS.otherListenerPorts], "80");
        assert.equal(await unwrap(outputs.slbId), "lb-2ze8x7example1234");
        assert.equal(
            byType(resources, "pulumi:providers:alicloud").length,
            1,
            "reuse reads the CLB's tags through the alicloud API",
        );
    });

    it("refuses, at preview time, a reused CLB that a cluster created (its tags), as the cloud controller would", async () => {
        const reuse = {
            ...asm,
            slb: { mode: "reuse", id: "lb-2ze8x7clustermade1", acknowledgeListenerOverride: true },
        };
        for (const tag of ["kubernetes.do.not.delete", "ack.aliyun.com"]) {
            mockClbTags({ "lb-2ze8x7clustermade1": { [tag]: "x" } });
            await recordResources(reuse, secretKeys);
            const { settings, secrets } = mockedStackConfig();
            const problems = await reusedClbTagProblems(settings, makeProviders(settings, secrets));
            assert.equal(problems.length, 1, tag);
            assert.equal(problems[0].key, "slb.id");
            assert.match(
                problems[0].message,
                new RegExp(
                    `carries tag ${tag.replace(/\./g, "\\.")}.*can not reuse loadbalancer created by kubernetes`,
                ),
            );
        }
        mockClbTags({ "lb-2ze8x7clustermade1": { owner: "platform" } });
        await recordResources(reuse, secretKeys);
        let { settings, secrets } = mockedStackConfig();
        assert.deepEqual(
            await reusedClbTagProblems(settings, makeProviders(settings, secrets)),
            [],
            "a CLB made in the console or by API is reusable",
        );
        mockClbTags({});
        await recordResources(reuse, secretKeys);
        ({ settings, secrets } = mockedStackConfig());
        assert.match(
            (await reusedClbTagProblems(settings, makeProviders(settings, secrets)))[0].message,
            /no CLB lb-2ze8x7clustermade1 exists/,
        );
        mockClbApiFailure("InvalidAccessKeyId.NotFound: Specified access key is not found.");
        await recordResources(reuse, secretKeys);
        ({ settings, secrets } = mockedStackConfig());
        await assert.rejects(
            reusedClbTagProblems(settings, makeProviders(settings, secrets)),
            (err: any) => {
                assert.ok(err instanceof ConfigError);
                assert.equal(err.problems[0].key, "slb.id");
                // The mock monitor drops an invoke's own message; the real one passes the API's reason after the colon.
                assert.match(
                    err.message,
                    /slb\.id: cannot read CLB lb-2ze8x7clustermade1 through the Alibaba Cloud API \(credentials/,
                );
                return true;
            },
        );
        mockClbTags({});
    });
});

describe("a target that cannot be read is a problem of the key that points at it", () => {
    it("local: no kubeconfig where localKubeconfig says", async () => {
        await recordResources({
            target: "local",
            v2Weight: 20,
            localKubeconfig: "/nonexistent/asm-tcp-shift/kubeconfig",
        });
        const { settings, secrets } = mockedStackConfig();
        await assert.rejects(
            async () => checkStackTarget(settings, makeProviders(settings, secrets)),
            (err: any) => {
                assert.ok(err instanceof ConfigError);
                assert.deepEqual(
                    err.problems.map((p: any) => p.key),
                    ["localKubeconfig"],
                );
                assert.match(
                    err.message,
                    /no kubeconfig at \/nonexistent\/asm-tcp-shift\/kubeconfig; start the local cluster with `npm run cluster:up`/,
                );
                return true;
            },
        );
    });

    it("asm: an API server that does not answer", async () => {
        const port = await freePort();
        const unreachable = [
            "apiVersion: v1",
            "kind: Config",
            "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:" + port + "'}}]",
            "users: [{name: u, user: {token: t}}]",
            "contexts: [{name: x, context: {cluster: c, user: u}}]",
            "current-context: x",
        ].join("\n");
        await recordResources(
            asmConfig({ dataPlaneKubeconfig: unreachable, controlPlaneKubeconfig: unreachable }),
            KUBECONFIG_KEYS,
        );
        const { settings, secrets } = mockedStackConfig();
        await assert.rejects(
            checkStackTarget(settings, makeProviders(settings, secrets)),
            (err: any) => {
                // Both servers are asked at once, so both keys are reported in one refusal.
                assert.ok(err instanceof PreflightError, String(err));
                assert.deepEqual(
                    err.problems.map((p: any) => p.key),
                    ["dataPlaneKubeconfig", "controlPlaneKubeconfig"],
                );
                assert.match(
                    err.message,
                    new RegExp(
                        `cannot reach the API server https://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`,
                    ),
                );
                return true;
            },
        );
    });
});
