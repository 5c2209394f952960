import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
    AccessInput,
    KubeApi,
    KubeconfigError,
    PreflightInput,
    checkAccess,
    kubeApiFromKubeconfig,
    neededPermissions,
} from "../../preflight";
import { silentServer } from "../support/silentServer";

const MESH_GROUPS = ["apps", "networking.istio.io", "istio.alibabacloud.com"];
const CLUSTER_GROUPS = ["apps", "discovery.k8s.io"];

interface FakeServer {
    groups?: string[];
    /** "verb resource" pairs the identity may not use. */
    deny?: string[];
    /** Status of the discovery request (401: credentials refused). */
    discoveryStatus?: number;
    unreachable?: boolean;
    reviews?: boolean;
}

/** An API server that answers discovery and SelfSubjectAccessReviews as told. */
function fakeServer(server: string, f: FakeServer): KubeApi {
    const unreachable = () => {
        throw new Error(`cannot reach the API server ${server}: connect ECONNREFUSED`);
    };
    return {
        server,
        async get(path) {
            if (f.unreachable) unreachable();
            assert.equal(path, "/apis");
            if (f.discoveryStatus) return { status: f.discoveryStatus, body: {} };
            return { status: 200, body: { groups: (f.groups ?? []).map((name) => ({ name })) } };
        },
        post:
            f.reviews === false
                ? undefined
                : async (path, body: any) => {
                      if (f.unreachable) unreachable();
                      assert.equal(path, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews");
                      const { verb, resource } = body.spec.resourceAttributes;
                      const allowed = !(f.deny ?? []).includes(`${verb} ${resource}`);
                      return { status: 201, body: { status: { allowed } } };
                  },
    };
}

/** The happy path: an `asm` stack whose two kubeconfigs are ACK's and ASM's, each allowed everything it needs. */
function asmInput(
    change: {
        data?: FakeServer;
        control?: FakeServer;
        useExistingGateway?: boolean;
        writes?: AccessInput["writes"];
    } = {},
): AccessInput {
    return {
        target: "asm",
        writes: change.writes ?? "refuse",
        stack: { ...STACK, useExistingGateway: change.useExistingGateway ?? false },
        dataPlane: {
            key: "dataPlaneKubeconfig",
            api: fakeServer("https://ack:6443", { groups: CLUSTER_GROUPS, ...change.data }),
        },
        controlPlane: {
            key: "controlPlaneKubeconfig",
            api: fakeServer("https://asm:6443", { groups: MESH_GROUPS, ...change.control }),
        },
    };
}

const WRITES = ["create", "patch", "delete"];
const STACK: PreflightInput = {
    namespace: "tcp-echo",
    gatewayName: "ingressgateway",
    useExistingGateway: false,
    gatewayPort: 31400,
    istioApiVersion: "v1",
    owner: "organization/asm-tcp-shift/dev",
};

/** The refusals of a check; a test of refusals fails on any warning it did not expect. */
async function problemsOf(input: AccessInput) {
    const { problems, warnings } = await checkAccess(input);
    assert.deepEqual(warnings, []);
    return problems;
}

describe("preflight: access to the target's API servers", () => {
    it("lets a stack go on whose identities may do what it does on each plane", async () => {
        assert.deepEqual(await problemsOf(asmInput()), []);
    });

    it("names the key of a server that does not answer, and checks nothing further", async () => {
        const problems = await problemsOf(asmInput({ control: { unreachable: true } }));
        assert.deepEqual(
            problems.map((p) => p.key),
            ["controlPlaneKubeconfig"],
        );
        assert.match(problems[0].message, /cannot reach the API server https:\/\/asm:6443/);
    });

    it("says credentials the server does not accept are the kubeconfig's", async () => {
        const problems = await problemsOf(asmInput({ data: { discoveryStatus: 401 } }));
        assert.deepEqual(
            problems.map((p) => p.key),
            ["dataPlaneKubeconfig"],
        );
        assert.match(
            problems[0].message,
            /does not accept the kubeconfig's credentials \(HTTP 401\)/,
        );
    });

    it("says two swapped kubeconfigs are swapped", async () => {
        const problems = await problemsOf(
            asmInput({ data: { groups: MESH_GROUPS }, control: { groups: CLUSTER_GROUPS } }),
        );
        assert.deepEqual(
            problems.map((p) => p.key),
            ["controlPlaneKubeconfig"],
        );
        assert.match(
            problems[0].message,
            /serves no networking\.istio\.io and no istio\.alibabacloud\.com API.*look swapped: dataPlaneKubeconfig's server https:\/\/ack:6443 serves them/,
        );
    });

    it("refuses a control plane that is not a mesh even when nothing is swapped", async () => {
        const problems = await problemsOf(asmInput({ control: { groups: CLUSTER_GROUPS } }));
        assert.equal(problems.length, 1);
        assert.doesNotMatch(problems[0].message, /swapped/);
    });

    it("refuses an identity with ASM's istio-ops role for a stack that owns its gateway, naming istio-admin", async () => {
        const istioOps = { deny: WRITES.map((v) => `${v} istiogateways`) };
        const problems = await problemsOf(asmInput({ control: istioOps }));
        assert.deepEqual(
            problems.map((p) => p.key),
            ["controlPlaneKubeconfig"],
        );
        assert.match(
            problems[0].message,
            /may not create, patch, delete istiogateways\.istio\.alibabacloud\.com in namespace istio-system on https:\/\/asm:6443\. .*istio-admin/,
        );
    });

    it("finds ASM's istio-ops role enough for a stack that routes through a gateway it does not own", async () => {
        const istioOps = { deny: WRITES.map((v) => `${v} istiogateways`) };
        assert.deepEqual(
            await problemsOf(asmInput({ control: istioOps, useExistingGateway: true })),
            [],
        );
    });

    it("names each plane's missing verbs on its own key", async () => {
        const problems = await problemsOf(
            asmInput({
                data: { deny: ["delete deployments"] },
                control: { deny: ["patch virtualservices"] },
            }),
        );
        assert.deepEqual(
            problems.map((p) => [p.key, p.message.match(/may not (.*?) on/)?.[1]]),
            [
                ["dataPlaneKubeconfig", "delete deployments.apps in namespace tcp-echo"],
                [
                    "controlPlaneKubeconfig",
                    "patch virtualservices.networking.istio.io in namespace tcp-echo",
                ],
            ],
        );
    });

    it("in a preview alone, warns of missing write permissions but still refuses missing reads", async () => {
        const readOnly = {
            deny: [...WRITES.map((v) => `${v} istiogateways`), "list virtualservices"],
        };
        const { problems, warnings } = await checkAccess(
            asmInput({ control: readOnly, writes: "warn" }),
        );
        assert.deepEqual(
            problems.map((p) => p.message.match(/may not (.*?) on/)?.[1]),
            ["list virtualservices.networking.istio.io in namespace tcp-echo"],
        );
        assert.deepEqual(
            warnings.map((w) => [
                w.key,
                w.message.match(/^an update would be refused: .*may not (.*?) on/)?.[1],
            ]),
            [
                [
                    "controlPlaneKubeconfig",
                    "create, patch, delete istiogateways.istio.alibabacloud.com in namespace istio-system",
                ],
            ],
        );
    });

    it("does not refuse on permissions a server cannot review", async () => {
        assert.deepEqual(
            await problemsOf(asmInput({ data: { reviews: false, deny: ["create deployments"] } })),
            [],
        );
    });

    it("checks the one local API server once, without asking it to be a mesh", async () => {
        const local = {
            key: "localKubeconfig",
            api: fakeServer("https://127.0.0.1:1", { groups: CLUSTER_GROUPS }),
        };
        assert.deepEqual(
            await problemsOf({
                target: "local",
                writes: "refuse",
                stack: STACK,
                dataPlane: local,
                controlPlane: local,
            }),
            [],
        );
    });

    it("asks only to read a gateway the stack routes through", () => {
        assert.deepEqual(
            neededPermissions({ ...STACK, useExistingGateway: true })
                .filter((p) => p.resource === "istiogateways")
                .map((p) => `${p.plane} ${p.group} ${p.namespace} ${p.verbs.join(",")}`),
            ["controlPlane istio.alibabacloud.com istio-system get"],
        );
    });

    it("asks for every kind the stack owns, on the plane that holds it", () => {
        assert.deepEqual(
            neededPermissions({ ...STACK, namespace: "ns" }).map(
                (p) => `${p.plane} ${p.resource} ${p.namespace} ${p.verbs.join(",")}`,
            ),
            [
                "dataPlane deployments ns get,list,watch,create,patch,delete",
                "dataPlane services ns get,list,watch,create,patch,delete",
                "controlPlane gateways ns get,list,watch,create,patch,delete",
                "controlPlane destinationrules ns get,list,watch,create,patch,delete",
                "controlPlane virtualservices ns get,list,watch,create,patch,delete",
                "controlPlane istiogateways istio-system get,list,watch,create,patch,delete",
            ],
        );
    });
});

/** A client certificate and key that expired on 2001-01-01, made for this test only. */
const EXPIRED_CERT = `-----BEGIN CERTIFICATE-----
MIIBTjCB9aADAgECAgECMAoGCCqGSM49BAMCMDExLzAtBgNVBAMMJmFzbS10Y3At
c2hpZnQgdW5pdCB0ZXN0IGV4cGlyZWQgY2xpZW50MB4XDTAwMDEwMTAwMDAwMFoX
DTAxMDEwMTAwMDAwMFowMTEvMC0GA1UEAwwmYXNtLXRjcC1zaGlmdCB1bml0IHRl
c3QgZXhwaXJlZCBjbGllbnQwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARjk7Dk
S3y/4Xr/s9zlA4aUIzhhSybjUICpEb/ao1LygWi5DOVmPC3W5W4QzK++e4DxugrU
zzK4yB+I6XA6yoDDMAoGCCqGSM49BAMCA0gAMEUCIBL8aMjvzRLycUUAi025sJug
zH0axMsrL+1LtHdzGcNWAiEAkLlPyjiGja8pjaKt7Xapy/xl9xkpjI/o7BKCvMoe
m8c=
-----END CERTIFICATE-----
`;
const EXPIRED_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgWTS5c6R0eXKYC3e0
2YUTsUteAjWLNs4eXof3VHKvlHahRANCAARjk7DkS3y/4Xr/s9zlA4aUIzhhSybj
UICpEb/ao1LygWi5DOVmPC3W5W4QzK++e4DxugrUzzK4yB+I6XA6yoDD
-----END PRIVATE KEY-----
`;
const base64 = (text: string) => Buffer.from(text).toString("base64");

describe("preflight: the kubeconfig client's credentials and timeouts", () => {
    it("refuses an expired client certificate before sending anything, with its expiry", () => {
        const kubeconfig =
            `clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\n` +
            `contexts: [{name: x, context: {cluster: c, user: u}}]\n` +
            `current-context: x\n` +
            `users: [{name: u, user: {client-certificate-data: ${base64(EXPIRED_CERT)}, client-key-data: ${base64(EXPIRED_KEY)}}}]\n`;
        assert.throws(
            () => kubeApiFromKubeconfig(kubeconfig),
            (err: Error) =>
                err instanceof KubeconfigError &&
                /client certificate in the kubeconfig's users\[0\]\.user\.client-certificate-data expired at 2001-01-01T00:00:00\.000Z/.test(
                    err.message,
                ) &&
                !err.message.includes(base64(EXPIRED_CERT).slice(0, 40)),
        );
    });

    it("gives up on a server that accepts the connection but never answers, saying so", async () => {
        const silent = await silentServer();
        try {
            const api = kubeApiFromKubeconfig(
                `clusters: [{name: c, cluster: {server: "${silent.url}"}}]\n` +
                    `contexts: [{name: x, context: {cluster: c, user: u}}]\n` +
                    `current-context: x\n` +
                    `users: [{name: u, user: {token: abc}}]\n`,
            );
            await assert.rejects(
                api.get("/apis"),
                /cannot reach the API server https:\/\/127\.0\.0\.1:\d+: no answer within 5 s \(an intranet endpoint answers only inside its VPC/,
            );
        } finally {
            silent.close();
        }
    });
});
