import { X509Certificate } from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as tls from "tls";
import { parseDocument } from "yaml";

/** An API server's answer: the status and the parsed JSON body (undefined when not JSON). */
export interface KubeAnswer {
    status: number;
    body: any;
}

/** What the preflight needs of a Kubernetes API server: reads, and the self-reviews of what its identity may do. */
export interface KubeApi {
    /** The API server's URL, for messages. */
    readonly server: string;
    /** GET a path. Never throws for an HTTP status; throws when the server cannot be reached or does not answer. */
    get(path: string): Promise<KubeAnswer>;
    /**
     * POST a body to a path: only for reviews that change nothing (SelfSubjectAccessReview). Absent on a client
     * that cannot send them; the checks that need it are then not made.
     */
    post?(path: string, body: unknown): Promise<KubeAnswer>;
}

/**
 * How long the client waits for an API server to accept the connection and complete TLS. An address that does not
 * answer at all (an ASM or ACK intranet endpoint seen from outside its VPC drops the packets) is refused after this,
 * not after the much longer timeouts of the Kubernetes provider.
 */
export const CONNECT_TIMEOUT_MS = 5_000;
/** How long the client waits for a connected API server's answer to one request. */
const ANSWER_TIMEOUT_MS = 15_000;

/**
 * A kubeconfig the preflight cannot use, with the reason. The reason names fields by their place
 * (`users[0].user.tokenFile`) and YAML errors by line and column, never by the kubeconfig's text: that text
 * holds tokens and keys, and a refusal is printed to terminals and CI logs.
 */
export class KubeconfigError extends Error {}

type Mapping = Record<string, unknown>;

function isMapping(value: unknown): value is Mapping {
    return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** What a value is, for a message that must not show the value. */
function kindOf(value: unknown): string {
    if (value === null || value === undefined) return "empty";
    if (Array.isArray(value)) return "a list";
    if (Buffer.isBuffer(value)) return "binary data";
    return typeof value === "object" ? "a mapping" : `a ${typeof value}`;
}

/** The kubeconfig's data. YAML errors are reported by their code and position: the parser's message quotes the line. */
function parseKubeconfig(text: string): Mapping {
    if (text.trim() === "") throw new KubeconfigError("the kubeconfig is empty");
    // parseDocument, unlike parse, logs nothing (parse emits a process warning quoting the line of an unknown tag).
    const doc = parseDocument(text);
    const error = doc.errors[0];
    if (error) {
        const at = error.linePos?.[0];
        const where = at ? ` at line ${at.line}, column ${at.col}` : "";
        throw new KubeconfigError(
            `the kubeconfig is not valid YAML (${error.code.toLowerCase().replace(/_/g, " ")}${where})`,
        );
    }
    let data: unknown;
    try {
        data = doc.toJS();
    } catch {
        throw new KubeconfigError("the kubeconfig's YAML cannot be resolved (an alias it uses)");
    }
    if (!isMapping(data))
        throw new KubeconfigError(
            `the kubeconfig is not a YAML mapping (its top level is ${kindOf(data)})`,
        );
    return data;
}

/** The entry of a named list (`contexts`, `clusters`, `users`) with its place, for messages. */
function entry(
    config: Mapping,
    list: "contexts" | "clusters" | "users",
    field: "context" | "cluster" | "user",
    name: unknown,
    wanted: string,
): { value: Mapping; at: string } {
    const entries = config[list];
    if (!Array.isArray(entries) || entries.length === 0)
        throw new KubeconfigError(
            `the kubeconfig has no ${list} (a list of {name, ${field}}) for its ${wanted}`,
        );
    const index =
        name === undefined
            ? 0
            : entries.findIndex((e) => isMapping(e) && e.name !== undefined && e.name === name);
    if (index < 0)
        throw new KubeconfigError(
            `the kubeconfig's ${wanted} names no entry of ${list} (names are compared exactly)`,
        );
    const found: unknown = entries[index];
    const value = isMapping(found) ? found[field] : undefined;
    const at = `${list}[${index}].${field}`;
    if (!isMapping(value))
        throw new KubeconfigError(`the kubeconfig's ${at} is missing or not a mapping`);
    return { value, at };
}

/** Why reading a file named in the kubeconfig failed, by its error code only. */
function unreadable(err: unknown): string {
    const code = (err as NodeJS.ErrnoException)?.code;
    switch (code) {
        case "ENOENT":
            return "does not exist";
        case "EACCES":
        case "EPERM":
            return "is not readable (permission denied)";
        case "EISDIR":
            return "is a folder";
        default:
            return `cannot be read${typeof code === "string" ? ` (${code})` : ""}`;
    }
}

/** The text of a file the kubeconfig names in `field`, or a one-line error naming that field. */
function readNamedFile(file: unknown, field: string): Buffer {
    if (typeof file !== "string" || file === "")
        throw new KubeconfigError(`the kubeconfig's ${field} is not a file path`);
    try {
        return fs.readFileSync(file);
    } catch (err) {
        throw new KubeconfigError(`the kubeconfig's ${field} names a file that ${unreadable(err)}`);
    }
}

const BASE64 = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;
const PEM = /-----BEGIN [A-Z0-9 ]+-----/;

/** A PEM certificate or key, from `<field>-data` (base64) or the file `<field>` names; undefined when neither is set. */
function pem(owner: Mapping, at: string, field: string): Buffer | undefined {
    const data = owner[`${field}-data`];
    let value: Buffer;
    if (data !== undefined) {
        if (typeof data !== "string" || !BASE64.test(data))
            throw new KubeconfigError(`the kubeconfig's ${at}.${field}-data is not base64`);
        value = Buffer.from(data, "base64");
        if (!PEM.test(value.toString("latin1")))
            throw new KubeconfigError(
                `the kubeconfig's ${at}.${field}-data is base64, but not of PEM data (-----BEGIN ...)`,
            );
        return value;
    }
    if (owner[field] === undefined) return undefined;
    value = readNamedFile(owner[field], `${at}.${field}`);
    if (!PEM.test(value.toString("latin1")))
        throw new KubeconfigError(
            `the kubeconfig's ${at}.${field} names a file that holds no PEM data (-----BEGIN ...)`,
        );
    return value;
}

/** A bearer token as an HTTP header carries it: printable ASCII, no spaces or line breaks. */
const TOKEN = /^[\x21-\x7e]+$/;

/**
 * A read-only client from kubeconfig text: the current context's server with client certificates, a bearer token
 * or basic auth (what ACK and ASM kubeconfigs and the local cluster's use). Exec and auth-provider plugins are not
 * run. The text stays in memory; nothing of it is logged, and no error quotes it.
 */
export function kubeApiFromKubeconfig(text: string): KubeApi {
    try {
        return fromKubeconfig(text);
    } catch (err) {
        if (err instanceof KubeconfigError) throw err;
        // Only the error's kind: a library's message may quote what it was given.
        throw new KubeconfigError(
            `the kubeconfig cannot be used (${(err as Error)?.name ?? "unexpected error"})`,
        );
    }
}

function fromKubeconfig(text: string): KubeApi {
    const config = parseKubeconfig(text);
    const current = config["current-context"];
    const context = entry(
        config,
        "contexts",
        "context",
        current === "" || current === null ? undefined : current,
        "current-context",
    );
    const cluster = entry(
        config,
        "clusters",
        "cluster",
        context.value.cluster,
        `${context.at}.cluster`,
    );
    const user =
        context.value.user === undefined
            ? { value: {} as Mapping, at: "user" }
            : entry(config, "users", "user", context.value.user, `${context.at}.user`);
    if (user.value.exec || user.value["auth-provider"]) {
        throw new KubeconfigError(
            "the kubeconfig authenticates through an exec or auth-provider plugin; use one with a client certificate or a token (ASM's DescribeServiceMeshKubeconfig gives one)",
        );
    }

    const serverField = `${cluster.at}.server`;
    let url: URL;
    try {
        url = new URL(String(cluster.value.server ?? ""));
    } catch {
        throw new KubeconfigError(`the kubeconfig's ${serverField} is not a URL`);
    }
    if (url.protocol !== "https:" && url.protocol !== "http:")
        throw new KubeconfigError(`the kubeconfig's ${serverField} is not an https:// URL`);
    if (url.username || url.password)
        throw new KubeconfigError(
            `the kubeconfig's ${serverField} carries credentials in its URL; give them as the user's token or certificate`,
        );
    // Host, port and path only: what messages show of the server.
    const server = `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, "")}`;

    const headers: Record<string, string> = { Accept: "application/json" };
    const token = bearerToken(user.value, user.at);
    if (token !== undefined) headers.Authorization = `Bearer ${token}`;
    else if (user.value.username !== undefined)
        headers.Authorization = `Basic ${Buffer.from(`${String(user.value.username)}:${String(user.value.password ?? "")}`).toString("base64")}`;
    if (headers.Authorization && url.protocol !== "https:") {
        // Over plain HTTP the credential would cross the network readable by anyone on the path.
        throw new KubeconfigError(
            `the kubeconfig would send ${token !== undefined ? "a bearer token" : "a password"} to ${server} in clear text; use the API server's https:// address`,
        );
    }

    const cert = pem(user.value, user.at, "client-certificate");
    const key = pem(user.value, user.at, "client-key");
    if ((cert === undefined) !== (key === undefined))
        throw new KubeconfigError(
            `the kubeconfig's ${user.at} has a client ${cert ? "certificate but no client-key" : "key but no client-certificate"}`,
        );
    const tlsOptions: https.RequestOptions = {
        ca: pem(cluster.value, cluster.at, "certificate-authority"),
        cert,
        key,
        rejectUnauthorized: cluster.value["insecure-skip-tls-verify"] !== true,
        servername:
            typeof cluster.value["tls-server-name"] === "string"
                ? cluster.value["tls-server-name"]
                : undefined,
    };
    if (url.protocol === "https:") {
        try {
            // Made now so that a bad certificate or key is the kubeconfig's problem, not the first request's.
            tls.createSecureContext({ ca: tlsOptions.ca, cert, key });
        } catch (err) {
            const code = (err as NodeJS.ErrnoException)?.code;
            throw new KubeconfigError(
                `the kubeconfig's certificates or key cannot be used${typeof code === "string" ? ` (${code})` : ""}; check ${cluster.at}.certificate-authority-data and ${user.at}.client-certificate-data / client-key-data`,
            );
        }
    }
    if (cert)
        certificateInForce(
            cert,
            `${user.at}.client-certificate${user.value["client-certificate-data"] !== undefined ? "-data" : ""}`,
        );
    return client(url, server, headers, tlsOptions);
}

/**
 * Refuses a client certificate outside its validity window before anything is sent: the API server would answer
 * every request 401, which says nothing of why. ASM hands out kubeconfigs whose certificate has an `ExpireTime`
 * (DescribeServiceMeshKubeconfig, https://help.aliyun.com/document_detail/171590.htm).
 */
function certificateInForce(cert: Buffer, field: string, now = new Date()): void {
    let parsed: X509Certificate;
    try {
        parsed = new X509Certificate(cert);
    } catch {
        throw new KubeconfigError(`the kubeconfig's ${field} is not a readable X.509 certificate`);
    }
    const notAfter = new Date(parsed.validTo);
    const notBefore = new Date(parsed.validFrom);
    if (notAfter.getTime() <= now.getTime())
        throw new KubeconfigError(
            `the client certificate in the kubeconfig's ${field} expired at ${notAfter.toISOString()}; get a new kubeconfig (for ASM the console or DescribeServiceMeshKubeconfig gives one, with its ExpireTime)`,
        );
    if (notBefore.getTime() > now.getTime())
        throw new KubeconfigError(
            `the client certificate in the kubeconfig's ${field} is valid only from ${notBefore.toISOString()}; check this machine's clock`,
        );
}

/** The user's token, from `token` or the file `tokenFile` names. */
function bearerToken(user: Mapping, at: string): string | undefined {
    let token: unknown = user.token;
    let field = `${at}.token`;
    if (token === undefined && user.tokenFile !== undefined) {
        field = `${at}.tokenFile`;
        token = readNamedFile(user.tokenFile, field).toString("utf8").trim();
    }
    if (token === undefined || token === "") return undefined;
    if (typeof token !== "string" || !TOKEN.test(token))
        throw new KubeconfigError(
            `the kubeconfig's ${field} is not a bearer token (one line of printable characters without spaces)`,
        );
    return token;
}

function client(
    url: URL,
    server: string,
    headers: Record<string, string>,
    tlsOptions: https.RequestOptions,
): KubeApi {
    const base = url.href.replace(/\/+$/, "");
    const secure = url.protocol === "https:";
    const send = (method: "GET" | "POST", path: string, body?: unknown): Promise<KubeAnswer> => {
        const target = new URL(base + path);
        const request = secure ? https.request : http.request;
        const payload = body === undefined ? undefined : JSON.stringify(body);
        return new Promise((resolve, reject) => {
            const req = request(
                target,
                {
                    method,
                    headers: payload ? { ...headers, "Content-Type": "application/json" } : headers,
                    timeout: ANSWER_TIMEOUT_MS,
                    // A connection of its own per request, so the connect timeout below always sees the connect.
                    agent: false,
                    ...(secure ? tlsOptions : {}),
                },
                (res) => {
                    const chunks: Buffer[] = [];
                    res.on("data", (c: Buffer) => chunks.push(c));
                    res.on("end", () => {
                        const raw = Buffer.concat(chunks).toString("utf8");
                        let parsed: any;
                        try {
                            parsed = JSON.parse(raw);
                        } catch {
                            parsed = undefined;
                        }
                        resolve({ status: res.statusCode ?? 0, body: parsed });
                    });
                },
            );
            req.on("socket", (socket) => {
                const timer = setTimeout(
                    () =>
                        req.destroy(
                            new Error(
                                `no answer within ${CONNECT_TIMEOUT_MS / 1000} s (an intranet endpoint answers only inside its VPC; use the public endpoint's kubeconfig from outside it)`,
                            ),
                        ),
                    CONNECT_TIMEOUT_MS,
                );
                socket.once(secure ? "secureConnect" : "connect", () => clearTimeout(timer));
                socket.once("close", () => clearTimeout(timer));
            });
            req.on("timeout", () =>
                req.destroy(new Error(`no answer within ${ANSWER_TIMEOUT_MS / 1000} s`)),
            );
            req.on("error", (err) =>
                reject(new Error(`cannot reach the API server ${server}: ${err.message}`)),
            );
            req.end(payload);
        });
    };
    return {
        server,
        get: (path) => send("GET", path),
        post: (path, body) => send("POST", path, body),
    };
}
