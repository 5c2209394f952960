import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as fs from "fs";
import * as https from "https";
import { AddressInfo } from "net";
import * as path from "path";
import { TLSSocket } from "tls";
import { inspect } from "util";
import { ConfigError } from "../../config";
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
import { main } from "../../program";
import { KUBECONFIG_KEYS, asmConfig } from "../support/settings";
import { recordResources } from "../support/mocks";
import { tempDirs } from "../support/tempDirs";

const temp = tempDirs();
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

/**
 * An API server that knows only the given objects (path -> body) and every namespace but `missingNamespaces`;
 * everything else is 404.
 */
function fakeApi(
    objects: Record<string, unknown>,
    server = "https://fake:6443",
    missingNamespaces: string[] = [],
): KubeApi & { asked: string[] } {
    const asked: string[] = [];
    return {
        server,
        asked,
        async get(path: string) {
            asked.push(path);
            const namespace = path.match(/^\/api\/v1\/namespaces\/([^/]+)$/)?.[1];
            if (namespace !== undefined)
                return missingNamespaces.includes(namespace)
                    ? { status: 404, body: { message: "not found" } }
                    : { status: 200, body: { metadata: { name: namespace } } };
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

    it("refuses a namespace missing on the plane that would hold objects, before any object is made", async () => {
        const problems = await problemsOf(
            INPUT,
            fakeApi({}, "https://ack:6443", ["tcp-echo"]),
            fakeApi({ [DISCOVERY]: SERVED_V1 }, "https://asm:6443", ["istio-system"]),
        );
        assert.deepEqual(
            problems.map((p) => p.key),
            ["namespace", "asm.gatewayName"],
        );
        assert.match(
            problems[0].message,
            /namespace tcp-echo does not exist on https:\/\/ack:6443/,
        );
        assert.match(
            problems[1].message,
            /namespace istio-system does not exist on https:\/\/asm:6443, which would hold the IstioGateway/,
        );
        // Routed through an existing gateway, istio-system is not the stack's to write into.
        assert.deepEqual(
            await problemsOf(
                { ...INPUT, useExistingGateway: true },
                fakeApi({}, "https://ack:6443"),
                fakeApi({ [DISCOVERY]: SERVED_V1 }, "https://asm:6443", ["istio-system"]),
            ).then((ps) => ps.filter((p) => /does not exist/.test(p.message))),
            [],
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

/**
 * A certificate and key for 127.0.0.1 (EC P-256, self-signed, valid 2000-2100), made for these tests only: the
 * test API server serves it and trusts it as a client certificate, so kubeconfigs can reach it over https.
 */
const TEST_CERT = `-----BEGIN CERTIFICATE-----
MIIBuzCCAWCgAwIBAgIBATAKBggqhkjOPQQDAjAtMSswKQYDVQQDDCJhc20tdGNw
LXNoaWZ0IHVuaXQgdGVzdCBBUEkgc2VydmVyMCAXDTAwMDEwMTAwMDAwMFoYDzIx
MDAwMTAxMDAwMDAwWjAtMSswKQYDVQQDDCJhc20tdGNwLXNoaWZ0IHVuaXQgdGVz
dCBBUEkgc2VydmVyMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqDyXTDDX2xSW
5Tdyxpf5742CsGrC/fbawmmu/Xwa4r4/bxKw0g6xbTzv5EmJH14FgxVSNzaoy/Ic
Qop377jus6NvMG0wDwYDVR0RBAgwBocEfwAAATAPBgNVHRMBAf8EBTADAQH/MAsG
A1UdDwQEAwIChDAdBgNVHSUEFjAUBggrBgEFBQcDAQYIKwYBBQUHAwIwHQYDVR0O
BBYEFPYOs+NHlnFaTCNrZ3B0QncHKXC1MAoGCCqGSM49BAMCA0kAMEYCIQDCoZ85
TeQNihoLfhAByzpMw/lFUvU37ovg3O9RL1BTJwIhANVa2LFDOH6RuhkGgfzWgWo8
2+6dsNmgwVT3yIzDG+tS
-----END CERTIFICATE-----
`;
const TEST_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgXnyVrSKS6/XEUhvs
zE51UEPmxs4IWoP8idncfdqLwyahRANCAASoPJdMMNfbFJblN3LGl/nvjYKwasL9
9trCaa79fBrivj9vErDSDrFtPO/kSYkfXgWDFVI3NqjL8hxCinfvuO6z
-----END PRIVATE KEY-----
`;
const base64 = (text: string) => Buffer.from(text).toString("base64");

/** An https API server for the tests: answers like `fakeApi`, and records each request's credentials. */
async function testApiServer(objects: Record<string, unknown>) {
    const seen: { authorization?: string; clientCert: boolean }[] = [];
    const server = https.createServer(
        {
            cert: TEST_CERT,
            key: TEST_KEY,
            ca: TEST_CERT,
            requestCert: true,
            rejectUnauthorized: false,
        },
        (req, res) => {
            const socket = req.socket as TLSSocket;
            seen.push({
                authorization: req.headers.authorization,
                clientCert: socket.authorized && !!socket.getPeerCertificate()?.subject,
            });
            const found = req.url !== undefined && req.url in objects;
            res.writeHead(found ? 200 : 404, { "content-type": "application/json" });
            res.end(JSON.stringify(found ? objects[req.url!] : { message: "nope" }));
        },
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return { url, seen, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe("preflight: the kubeconfig client", () => {
    it("reads with the current context's token over https and reports statuses without throwing", async () => {
        const api = await testApiServer({ [DISCOVERY]: SERVED_V1 });
        try {
            const kubeconfig = `apiVersion: v1
kind: Config
current-context: b
contexts:
- {name: a, context: {cluster: c, user: ua}}
- {name: b, context: {cluster: c, user: ub}}
clusters:
- {name: c, cluster: {server: "${api.url}", certificate-authority-data: ${base64(TEST_CERT)}}}
users:
- {name: ua, user: {token: wrong}}
- {name: ub, user: {token: right}}
`;
            const client = kubeApiFromKubeconfig(kubeconfig);
            assert.equal(client.server, api.url);
            assert.equal((await client.get(DISCOVERY)).body.versions[0].version, "v1");
            assert.equal((await client.get("/api/v1/namespaces/x/services/y")).status, 404);
            assert.deepEqual(
                api.seen.map((s) => s.authorization),
                ["Bearer right", "Bearer right"],
            );
        } finally {
            await api.close();
        }
    });

    it("presents the kubeconfig's client certificate, from data or from files", async () => {
        const api = await testApiServer({ [DISCOVERY]: SERVED_V1 });
        const dir = temp.make("asm-kubeconfig-");
        try {
            fs.writeFileSync(path.join(dir, "client.crt"), TEST_CERT);
            fs.writeFileSync(path.join(dir, "client.key"), TEST_KEY);
            fs.writeFileSync(path.join(dir, "ca.crt"), TEST_CERT);
            const users = [
                `{client-certificate-data: ${base64(TEST_CERT)}, client-key-data: ${base64(TEST_KEY)}}`,
                `{client-certificate: ${dir}/client.crt, client-key: ${dir}/client.key}`,
            ];
            for (const user of users) {
                const client = kubeApiFromKubeconfig(
                    `clusters: [{name: c, cluster: {server: "${api.url}", certificate-authority: ${dir}/ca.crt}}]\n` +
                        `contexts: [{name: x, context: {cluster: c, user: u}}]\n` +
                        `users: [{name: u, user: ${user}}]\n`,
                );
                assert.equal((await client.get(DISCOVERY)).status, 200, user);
            }
            assert.deepEqual(
                api.seen.map((s) => s.clientCert),
                [true, true],
            );
        } finally {
            await api.close();
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

// What must never appear in a message or in logged output: the kubeconfig's token and certificate data.
const TOKEN_MARKER = "SUPERSECRETTOKEN123";
const CERT_MARKER = "SUPERSECRETCERTDATA456";
/** PEM armour around text that is no certificate: base64 and PEM checks pass, OpenSSL refuses it. */
const FAKE_PEM = `-----BEGIN CERTIFICATE-----\n${CERT_MARKER}\n-----END CERTIFICATE-----\n`;
const MARKERS = [TOKEN_MARKER, CERT_MARKER, base64(FAKE_PEM), base64(CERT_MARKER)];

/** A token file of a kubeconfig, holding the token marker. */
const TOKEN_FILE = path.join(temp.make("asm-kubeconfig-token-"), "token");
fs.writeFileSync(TOKEN_FILE, `${TOKEN_MARKER}\n`);

/** A kubeconfig of one context, with the given user and cluster (a server nothing listens on, by default). */
function kubeconfigWith(user: string, cluster = `{server: "https://127.0.0.1:1"}`): string {
    return [
        "apiVersion: v1",
        "kind: Config",
        "current-context: x",
        "contexts: [{name: x, context: {cluster: c, user: u}}]",
        `clusters: [{name: c, cluster: ${cluster}}]`,
        `users: [{name: u, user: ${user}}]`,
        "",
    ].join("\n");
}

/** Each row: a kubeconfig the preflight cannot use, and what the refusal says about its structure. */
const BROKEN_KUBECONFIGS: { case: string; kubeconfig: string; says: RegExp }[] = [
    { case: "empty", kubeconfig: "", says: /the kubeconfig is empty/ },
    {
        case: "a malformed token line",
        kubeconfig: `users:\n- name: u\n  user:\n    token: ${TOKEN_MARKER}: x\n`,
        says: /not valid YAML \(block as implicit key at line 4, column \d+\)/,
    },
    {
        case: "an unclosed flow mapping",
        kubeconfig: `users: [{name: u, user: {token: ${TOKEN_MARKER}}`,
        says: /not valid YAML \(.* at line 1, column \d+\)/,
    },
    {
        case: "a key given twice",
        kubeconfig: `users: []\nusers: [{name: u, user: {token: ${TOKEN_MARKER}}}]\n`,
        says: /not valid YAML \(duplicate key at line 2, column 1\)/,
    },
    {
        case: "two YAML documents",
        kubeconfig: `users: []\n---\ntoken: ${TOKEN_MARKER}\n`,
        says: /not valid YAML \(multiple docs at line 2/,
    },
    {
        case: "YAML, but a list",
        kubeconfig: `- ${TOKEN_MARKER}\n`,
        says: /not a YAML mapping \(its top level is a list\)/,
    },
    {
        case: "YAML, but a string",
        kubeconfig: TOKEN_MARKER,
        says: /not a YAML mapping \(its top level is a string\)/,
    },
    {
        case: "no contexts",
        kubeconfig: `users: [{name: u, user: {token: ${TOKEN_MARKER}}}]\n`,
        says: /has no contexts/,
    },
    {
        case: "a current-context that names no context",
        kubeconfig: kubeconfigWith(`{token: ${TOKEN_MARKER}}`).replace(
            "current-context: x",
            `current-context: ${TOKEN_MARKER}`,
        ),
        says: /current-context names no entry of contexts/,
    },
    {
        case: "no clusters",
        kubeconfig: kubeconfigWith(`{token: ${TOKEN_MARKER}}`).replace(/^clusters:.*$/m, ""),
        says: /has no clusters \(a list of \{name, cluster\}\) for its contexts\[0\]\.context\.cluster/,
    },
    {
        case: "no users",
        kubeconfig: kubeconfigWith(`{token: ${TOKEN_MARKER}}`).replace(/^users:.*$/m, ""),
        says: /has no users/,
    },
    {
        case: "a context whose user is not listed",
        kubeconfig: kubeconfigWith(`{token: ${TOKEN_MARKER}}`).replace(
            "{name: u,",
            `{name: ${TOKEN_MARKER},`,
        ),
        says: /contexts\[0\]\.context\.user names no entry of users/,
    },
    {
        case: "a server that is no URL",
        kubeconfig: kubeconfigWith(`{token: t}`, `{server: ${TOKEN_MARKER}}`),
        says: /clusters\[0\]\.cluster\.server is not a URL/,
    },
    {
        case: "a server URL with credentials in it",
        kubeconfig: kubeconfigWith("{}", `{server: "https://admin:${TOKEN_MARKER}@127.0.0.1:1"}`),
        says: /clusters\[0\]\.cluster\.server carries credentials in its URL/,
    },
    {
        case: "a token of two words",
        kubeconfig: kubeconfigWith(`{token: "${TOKEN_MARKER} x"}`),
        says: /users\[0\]\.user\.token is not a bearer token/,
    },
    {
        case: "a token that is a mapping",
        kubeconfig: kubeconfigWith(`{token: {value: ${TOKEN_MARKER}}}`),
        says: /users\[0\]\.user\.token is not a bearer token/,
    },
    {
        case: "a token file that does not exist",
        kubeconfig: kubeconfigWith(`{tokenFile: /nonexistent/${TOKEN_MARKER}}`),
        says: /^the kubeconfig's users\[0\]\.user\.tokenFile names a file that does not exist$/,
    },
    {
        case: "a client certificate file that does not exist",
        kubeconfig: kubeconfigWith(
            `{client-certificate: /nonexistent/${CERT_MARKER}.crt, client-key: /nonexistent/${CERT_MARKER}.key}`,
        ),
        says: /^the kubeconfig's users\[0\]\.user\.client-certificate names a file that does not exist$/,
    },
    {
        case: "a certificate authority file that does not exist",
        kubeconfig: kubeconfigWith(
            "{}",
            `{server: "https://127.0.0.1:1", certificate-authority: /nonexistent/${CERT_MARKER}}`,
        ),
        says: /^the kubeconfig's clusters\[0\]\.cluster\.certificate-authority names a file that does not exist$/,
    },
    {
        case: "certificate data that is not base64",
        kubeconfig: kubeconfigWith(
            `{client-certificate-data: "${CERT_MARKER}!", client-key-data: ${base64(FAKE_PEM)}}`,
        ),
        says: /users\[0\]\.user\.client-certificate-data is not base64/,
    },
    {
        case: "certificate data that is base64 of no PEM",
        kubeconfig: kubeconfigWith(
            `{client-certificate-data: ${base64(CERT_MARKER)}, client-key-data: ${base64(FAKE_PEM)}}`,
        ),
        says: /users\[0\]\.user\.client-certificate-data is base64, but not of PEM data/,
    },
    {
        case: "certificate data that OpenSSL refuses",
        kubeconfig: kubeconfigWith(
            `{client-certificate-data: ${base64(FAKE_PEM)}, client-key-data: ${base64(FAKE_PEM)}}`,
        ),
        says: /certificates or key cannot be used/,
    },
    {
        case: "a client certificate without its key",
        kubeconfig: kubeconfigWith(`{client-certificate-data: ${base64(FAKE_PEM)}}`),
        says: /users\[0\]\.user has a client certificate but no client-key/,
    },
    {
        case: "certificate-authority data that is not base64",
        kubeconfig: kubeconfigWith(
            "{}",
            `{server: "https://127.0.0.1:1", certificate-authority-data: "${CERT_MARKER}*"}`,
        ),
        says: /clusters\[0\]\.cluster\.certificate-authority-data is not base64/,
    },
    {
        case: "a bearer token sent over http",
        kubeconfig: kubeconfigWith(`{token: ${TOKEN_MARKER}}`, `{server: "http://127.0.0.1:1"}`),
        says: /would send a bearer token to http:\/\/127\.0\.0\.1:1 in clear text; use the API server's https:\/\/ address/,
    },
    {
        case: "a token file's token sent over http",
        kubeconfig: kubeconfigWith(`{tokenFile: ${TOKEN_FILE}}`, `{server: "http://127.0.0.1:1"}`),
        says: /would send a bearer token to http:\/\/127\.0\.0\.1:1 in clear text/,
    },
    {
        case: "a password sent over http",
        kubeconfig: kubeconfigWith(
            `{username: admin, password: ${TOKEN_MARKER}}`,
            `{server: "http://127.0.0.1:1"}`,
        ),
        says: /would send a password to http:\/\/127\.0\.0\.1:1 in clear text/,
    },
];

/** Runs `action`, with everything written to stdout/stderr and every process warning it causes. */
async function capturingOutput<T>(
    action: () => T | Promise<T>,
): Promise<{ result?: T; error?: unknown; output: string }> {
    let output = "";
    const writes = [process.stdout, process.stderr].map((stream) => {
        const write = stream.write;
        stream.write = ((chunk: unknown, ...rest: unknown[]) => {
            output += String(chunk);
            return (write as (...args: unknown[]) => boolean).call(stream, chunk, ...rest);
        }) as typeof stream.write;
        return () => (stream.write = write);
    });
    const onWarning = (w: Error) => (output += `${w.name}: ${w.message}\n`);
    process.on("warning", onWarning);
    try {
        const result = await action();
        return { result, output: await settled(output) };
    } catch (error) {
        return { error, output: await settled(output) };
    } finally {
        process.off("warning", onWarning);
        writes.forEach((restore) => restore());
    }

    // Process warnings are emitted on a later tick.
    async function settled(_: string): Promise<string> {
        await new Promise((r) => setImmediate(r));
        return output;
    }
}

function assertNoSecret(where: string, text: string): void {
    for (const marker of MARKERS)
        assert.ok(
            !text.includes(marker),
            `${where} shows kubeconfig content (${marker}):\n${text}`,
        );
}

describe("preflight: a refused kubeconfig says what is wrong by structure, never by its content", () => {
    it(`has a table of broken kubeconfigs (${BROKEN_KUBECONFIGS.length})`, () => {
        assert.equal(
            new Set(BROKEN_KUBECONFIGS.map((b) => b.case)).size,
            BROKEN_KUBECONFIGS.length,
        );
    });

    for (const broken of BROKEN_KUBECONFIGS) {
        it(`refuses ${broken.case} in one line, quoting nothing of it`, async () => {
            const { error, output } = await capturingOutput(() =>
                kubeApiFromKubeconfig(broken.kubeconfig),
            );
            assert.ok(
                error instanceof KubeconfigError,
                `expected a KubeconfigError, got ${inspect(error)}`,
            );
            assert.match(error.message, broken.says);
            assert.ok(!error.message.includes("\n"), `one line: ${error.message}`);
            assertNoSecret("the error", inspect(error, { depth: 5 }));
            assertNoSecret("the output", output);
        });
    }

    it("logs nothing of a kubeconfig whose YAML only warns (an unknown tag on the token)", async () => {
        const { error, output } = await capturingOutput(() =>
            kubeApiFromKubeconfig(kubeconfigWith(`{token: !secret ${TOKEN_MARKER}}`)),
        );
        assert.equal(error, undefined);
        assertNoSecret("the output", output);
    });

    it("the program refuses each through its preflight, naming the key and quoting nothing of it", async () => {
        for (const { case: name, kubeconfig } of [
            ...BROKEN_KUBECONFIGS,
            {
                case: "a warning-only YAML",
                kubeconfig: kubeconfigWith(`{token: !secret ${TOKEN_MARKER}}`),
            },
        ]) {
            await recordResources(
                asmConfig({ dataPlaneKubeconfig: kubeconfig, controlPlaneKubeconfig: kubeconfig }),
                KUBECONFIG_KEYS,
            );
            const { error, output } = await capturingOutput(() => main());
            assert.ok(
                error instanceof ConfigError,
                `${name}: expected a ConfigError, got ${inspect(error)}`,
            );
            assert.match(error.problems[0].key, /^(dataPlane|controlPlane)Kubeconfig$/, name);
            for (const problem of error.problems)
                assert.ok(!problem.message.includes("\n"), `${name}: one line: ${problem.message}`);
            assertNoSecret(`${name}: the error`, inspect(error, { depth: 5 }));
            assertNoSecret(`${name}: the output`, output);
        }
    });
});
