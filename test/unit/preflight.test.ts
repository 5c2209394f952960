import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as http from "http";
import { AddressInfo } from "net";
import { OWNER_ANNOTATION } from "../../components/model";
import {
    KubeApi,
    KubeconfigError,
    PreflightError,
    PreflightInput,
    checkTarget,
    kubeApiFromKubeconfig,
    plannedObjects,
} from "../../preflight";

const OWNER = "organization/asm-tcp-shift/dev";
const INPUT: PreflightInput = {
    namespace: "tcp-echo",
    gatewayName: "ingressgateway",
    useExistingGateway: false,
    gatewayPort: 31400,
    istioApiVersion: "v1",
    owner: OWNER,
};
const DISCOVERY = "/apis/networking.istio.io";
const SERVED_V1 = {
    versions: [
        { groupVersion: "networking.istio.io/v1", version: "v1" },
        { groupVersion: "networking.istio.io/v1beta1", version: "v1beta1" },
    ],
};
const IG_PATH =
    "/apis/istio.alibabacloud.com/v1beta1/namespaces/istio-system/istiogateways/ingressgateway";

/** An API server that knows only the given objects (path -> body); everything else is 404. */
function fakeApi(
    objects: Record<string, unknown>,
    server = "https://fake:6443",
): KubeApi & { asked: string[] } {
    const asked: string[] = [];
    return {
        server,
        asked,
        async get(path: string) {
            asked.push(path);
            return path in objects
                ? { status: 200, body: objects[path] }
                : { status: 404, body: { message: "not found" } };
        },
    };
}

const stamped = (owner: string | undefined) => ({
    metadata: { annotations: owner ? { [OWNER_ANNOTATION]: owner } : {} },
});

async function problemsOf(
    input: PreflightInput,
    data: KubeApi,
    control: KubeApi,
): Promise<{ key: string; message: string }[]> {
    try {
        await checkTarget(input, { dataPlane: data, controlPlane: control });
        return [];
    } catch (err) {
        assert.ok(err instanceof PreflightError, String(err));
        assert.match(err.message, /^The target refuses this stack \(nothing was changed\):/);
        return err.problems.map((p) => ({ ...p }));
    }
}

describe("preflight: objects the stack would create", () => {
    it("plans every object of the stack, on the plane it belongs to", () => {
        assert.deepEqual(
            plannedObjects(INPUT).map((o) => `${o.plane} ${o.path}`),
            [
                "dataPlane /apis/apps/v1/namespaces/tcp-echo/deployments/tcp-echo-v1",
                "dataPlane /apis/apps/v1/namespaces/tcp-echo/deployments/tcp-echo-v2",
                "dataPlane /api/v1/namespaces/tcp-echo/services/tcp-echo",
                "controlPlane /apis/networking.istio.io/v1/namespaces/tcp-echo/gateways/tcp-echo-gateway",
                "controlPlane /apis/networking.istio.io/v1/namespaces/tcp-echo/destinationrules/tcp-echo-destination",
                "controlPlane /apis/networking.istio.io/v1/namespaces/tcp-echo/virtualservices/tcp-echo",
                `controlPlane ${IG_PATH}`,
            ],
        );
    });

    it("passes when nothing exists yet, or everything that exists is this stack's", async () => {
        assert.deepEqual(
            await problemsOf(INPUT, fakeApi({}), fakeApi({ [DISCOVERY]: SERVED_V1 })),
            [],
        );
        const ours = Object.fromEntries(plannedObjects(INPUT).map((o) => [o.path, stamped(OWNER)]));
        assert.deepEqual(
            await problemsOf(INPUT, fakeApi(ours), fakeApi({ ...ours, [DISCOVERY]: SERVED_V1 })),
            [],
        );
    });

    it("refuses to take over the mesh's own ingressgateway, naming both ways out", async () => {
        const problems = await problemsOf(
            INPUT,
            fakeApi({}),
            fakeApi({ [DISCOVERY]: SERVED_V1, [IG_PATH]: stamped(undefined) }),
        );
        assert.equal(problems.length, 1);
        assert.equal(problems[0].key, "asm.gatewayName");
        assert.match(
            problems[0].message,
            /IstioGateway istio-system\/ingressgateway already exists on https:\/\/fake:6443 and this stack did not create it/,
        );
        assert.match(problems[0].message, /annotation asm-tcp-shift\.io\/stack is absent/);
        assert.match(problems[0].message, /asm\.gatewayName.*asm\.useExistingGateway/);
    });

    it("refuses another stack's objects, and reports every clash at once", async () => {
        const other = "organization/asm-tcp-shift/prod";
        const problems = await problemsOf(
            INPUT,
            fakeApi({
                "/apis/apps/v1/namespaces/tcp-echo/deployments/tcp-echo-v2": stamped(other),
            }),
            fakeApi({
                [DISCOVERY]: SERVED_V1,
                "/apis/networking.istio.io/v1/namespaces/tcp-echo/virtualservices/tcp-echo":
                    stamped(other),
            }),
        );
        assert.deepEqual(
            problems.map((p) => p.key),
            ["namespace", "namespace"],
        );
        assert.match(
            problems[0].message,
            /Deployment tcp-echo\/tcp-echo-v2 .* is "organization\/asm-tcp-shift\/prod"/,
        );
        assert.match(problems[1].message, /VirtualService tcp-echo\/tcp-echo/);
    });
});

describe("preflight: an existing gateway the stack does not own", () => {
    const existing = { ...INPUT, useExistingGateway: true };

    it("reads its pod labels and address, and never plans to create it", async () => {
        const gateway = {
            spec: { ports: [{ port: 80 }, { port: 31400 }], podLabels: { team: "edge" } },
            status: { GatewayAddress: ["198.51.100.7"] },
        };
        const control = fakeApi({ [DISCOVERY]: SERVED_V1, [IG_PATH]: gateway });
        const found = await checkTarget(existing, {
            dataPlane: fakeApi({}),
            controlPlane: control,
        });
        assert.deepEqual(found.existingGateway, {
            podSelector: { team: "edge" },
            address: "198.51.100.7",
        });
        assert.ok(!plannedObjects(existing).some((o) => o.kind === "IstioGateway"));
    });

    it("falls back to ASM's own pod label istio: <name> when the gateway has no podLabels", async () => {
        const control = fakeApi({
            [DISCOVERY]: SERVED_V1,
            [IG_PATH]: { spec: { ports: [{ port: 31400 }] } },
        });
        const found = await checkTarget(existing, {
            dataPlane: fakeApi({}),
            controlPlane: control,
        });
        assert.deepEqual(found.existingGateway, {
            podSelector: { istio: "ingressgateway" },
            address: undefined,
        });
    });

    it("refuses a gateway that does not expose the port, and changes nothing of it", async () => {
        const problems = await problemsOf(
            existing,
            fakeApi({}),
            fakeApi({
                [DISCOVERY]: SERVED_V1,
                [IG_PATH]: { spec: { ports: [{ port: 80 }, { port: 443 }] } },
            }),
        );
        assert.deepEqual(
            problems.map((p) => p.key),
            ["gatewayPort"],
        );
        assert.match(
            problems[0].message,
            /exposes ports \[80,443\], not 31400; the stack does not change a gateway it does not own/,
        );
    });

    it("refuses to treat the stack's own gateway as someone else's (the next up would delete it)", async () => {
        const problems = await problemsOf(
            existing,
            fakeApi({}),
            fakeApi({
                [DISCOVERY]: SERVED_V1,
                [IG_PATH]: { ...stamped(OWNER), spec: { ports: [{ port: 31400 }] } },
            }),
        );
        assert.deepEqual(
            problems.map((p) => p.key),
            ["asm.useExistingGateway"],
        );
        assert.match(problems[0].message, /is this stack's own/);
    });

    it("refuses a gateway that does not exist", async () => {
        const problems = await problemsOf(
            existing,
            fakeApi({}),
            fakeApi({ [DISCOVERY]: SERVED_V1 }),
        );
        assert.deepEqual(
            problems.map((p) => p.key),
            ["asm.gatewayName"],
        );
        assert.match(problems[0].message, /no IstioGateway istio-system\/ingressgateway/);
    });
});

describe("preflight: the Istio API the mesh serves", () => {
    it("refuses networking.istio.io/v1 on a mesh older than 1.22, naming the versions it serves", async () => {
        const old = fakeApi({
            [DISCOVERY]: { versions: [{ version: "v1beta1" }, { version: "v1alpha3" }] },
        });
        const problems = await problemsOf(INPUT, fakeApi({}), old);
        assert.deepEqual(
            problems.map((p) => p.key),
            ["istioApiVersion"],
        );
        assert.match(
            problems[0].message,
            /serves networking\.istio\.io \["v1beta1","v1alpha3"\], not v1.*ASM 1\.22 or later.*"v1beta1", "v1alpha3"/,
        );
        assert.ok(
            !old.asked.some((p) => p.includes("/networking.istio.io/v1/")),
            "no object is looked up at a version the mesh does not serve",
        );
    });

    it("accepts v1beta1 where it is served", async () => {
        const old = fakeApi({
            [DISCOVERY]: { versions: [{ version: "v1beta1" }, { version: "v1alpha3" }] },
        });
        assert.deepEqual(
            await problemsOf({ ...INPUT, istioApiVersion: "v1beta1" }, fakeApi({}), old),
            [],
        );
    });

    it("refuses a control plane without Istio at all", async () => {
        const problems = await problemsOf(INPUT, fakeApi({}), fakeApi({}));
        assert.match(problems[0].message, /serves no networking\.istio\.io API/);
    });
});

describe("preflight: the kubeconfig client", () => {
    it("reads with the current context's token over HTTP and reports statuses without throwing", async () => {
        const seen: (string | undefined)[] = [];
        const server = http.createServer((req, res) => {
            seen.push(req.headers.authorization);
            res.writeHead(req.url === "/apis/networking.istio.io" ? 200 : 404, {
                "content-type": "application/json",
            });
            res.end(
                JSON.stringify(
                    req.url === "/apis/networking.istio.io" ? SERVED_V1 : { message: "nope" },
                ),
            );
        });
        await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
        const port = (server.address() as AddressInfo).port;
        try {
            const kubeconfig = `apiVersion: v1
kind: Config
current-context: b
contexts:
- {name: a, context: {cluster: c, user: ua}}
- {name: b, context: {cluster: c, user: ub}}
clusters:
- {name: c, cluster: {server: "http://127.0.0.1:${port}"}}
users:
- {name: ua, user: {token: wrong}}
- {name: ub, user: {token: right}}
`;
            const api = kubeApiFromKubeconfig(kubeconfig);
            assert.equal(
                (await api.get("/apis/networking.istio.io")).body.versions[0].version,
                "v1",
            );
            assert.equal((await api.get("/api/v1/namespaces/x/services/y")).status, 404);
            assert.deepEqual(seen, ["Bearer right", "Bearer right"]);
        } finally {
            server.close();
        }
    });

    it("refuses exec plugins and broken YAML with a reason", () => {
        const exec =
            "current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\nclusters: [{name: c, cluster: {server: 'https://x'}}]\nusers: [{name: u, user: {exec: {command: aliyun}}}]\n";
        assert.throws(
            () => kubeApiFromKubeconfig(exec),
            (e: unknown) => e instanceof KubeconfigError && /exec or auth-provider/.test(e.message),
        );
        assert.throws(() => kubeApiFromKubeconfig(": : :\n- ["), KubeconfigError);
    });
});
