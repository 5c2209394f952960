import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import { parse } from "yaml";

/** What the preflight needs of a Kubernetes API server: read-only GETs. */
export interface KubeApi {
    /** The API server's URL, for messages. */
    readonly server: string;
    /** GET a path; the body is parsed JSON (undefined when not JSON). Never throws for an HTTP status. */
    get(path: string): Promise<{ status: number; body: any }>;
}

/** A kubeconfig the preflight cannot use, with the reason. */
export class KubeconfigError extends Error {}

interface NamedEntry<T> {
    name: string;
    [key: string]: unknown;
    value?: T;
}

function pick<T>(list: unknown, name: string | undefined, field: string, what: string): T {
    const entries = Array.isArray(list) ? (list as NamedEntry<T>[]) : [];
    const found = name === undefined ? entries[0] : entries.find((e) => e.name === name);
    if (!found || found[field] === undefined)
        throw new KubeconfigError(
            `the kubeconfig has no ${what} ${name ? `"${name}"` : ""}`.trim(),
        );
    return found[field] as T;
}

function pem(data: unknown, file: unknown): Buffer | undefined {
    if (typeof data === "string") return Buffer.from(data, "base64");
    if (typeof file === "string") return fs.readFileSync(file);
    return undefined;
}

/**
 * A read-only client from kubeconfig text: the current context's server with client certificates, a bearer token
 * or basic auth (what ACK and ASM kubeconfigs and the local cluster's use). Exec and auth-provider plugins are not
 * run. The text stays in memory; nothing of it is logged.
 */
export function kubeApiFromKubeconfig(text: string): KubeApi {
    let config: any;
    try {
        config = parse(text);
    } catch (err) {
        throw new KubeconfigError(`the kubeconfig is not YAML: ${(err as Error).message}`);
    }
    const contextName: string | undefined = config?.["current-context"] || undefined;
    const context = pick<any>(config?.contexts, contextName, "context", "context");
    const cluster = pick<any>(config?.clusters, context.cluster, "cluster", "cluster");
    const user =
        context.user === undefined ? {} : pick<any>(config?.users, context.user, "user", "user");
    if (user.exec || user["auth-provider"]) {
        throw new KubeconfigError(
            "the kubeconfig authenticates through an exec or auth-provider plugin; use one with a client certificate or a token (ASM's DescribeServiceMeshKubeconfig gives one)",
        );
    }
    const server = String(cluster.server ?? "");
    const url = new URL(server);
    const headers: Record<string, string> = { Accept: "application/json" };
    const token =
        user.token ??
        (typeof user.tokenFile === "string"
            ? fs.readFileSync(user.tokenFile, "utf8").trim()
            : undefined);
    if (token) headers.Authorization = `Bearer ${token}`;
    else if (user.username !== undefined)
        headers.Authorization = `Basic ${Buffer.from(`${user.username}:${user.password ?? ""}`).toString("base64")}`;
    const tls: https.RequestOptions = {
        ca: pem(cluster["certificate-authority-data"], cluster["certificate-authority"]),
        cert: pem(user["client-certificate-data"], user["client-certificate"]),
        key: pem(user["client-key-data"], user["client-key"]),
        rejectUnauthorized: cluster["insecure-skip-tls-verify"] !== true,
        servername: cluster["tls-server-name"],
    };
    const base = server.replace(/\/+$/, "");
    return {
        server,
        get(path: string) {
            const target = new URL(base + path);
            const send = url.protocol === "https:" ? https.request : http.request;
            return new Promise((resolve, reject) => {
                const req = send(
                    target,
                    {
                        method: "GET",
                        headers,
                        timeout: 15_000,
                        ...(url.protocol === "https:" ? tls : {}),
                    },
                    (res) => {
                        const chunks: Buffer[] = [];
                        res.on("data", (c: Buffer) => chunks.push(c));
                        res.on("end", () => {
                            const raw = Buffer.concat(chunks).toString("utf8");
                            let body: any;
                            try {
                                body = JSON.parse(raw);
                            } catch {
                                body = undefined;
                            }
                            resolve({ status: res.statusCode ?? 0, body });
                        });
                    },
                );
                req.on("timeout", () =>
                    req.destroy(new Error(`no answer from ${server} within 15 s`)),
                );
                req.on("error", (err) =>
                    reject(new Error(`cannot reach the API server ${server}: ${err.message}`)),
                );
                req.end();
            });
        },
    };
}
