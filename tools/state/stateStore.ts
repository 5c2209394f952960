/**
 * Direct access to the objects of a Pulumi DIY backend, whichever kind it is: a folder (`file://`) or an
 * S3-compatible bucket (`s3://`: AWS S3, Alibaba Cloud OSS, the local versitygw). The tools use it for what
 * the CLI does not expose: reading lock objects (who holds a stack, and whether that job is dead),
 * repairing a checkpoint from the backend's own backups, and the rollout lock of `shift`.
 *
 * The S3 side is a minimal SigV4 client (list, get, put, delete) over fetch, with the same URL query
 * parameters gocloud.dev's s3blob (v0.37, the one in Pulumi 3.219) accepts and the same credentials
 * from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN).
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";

export interface StoredObject {
    key: string;
    modified: Date;
}

export interface StateStore {
    /** Where the objects live, for messages: the backend URL with key paths appended. */
    describe(key: string): string;
    read(key: string): Promise<Buffer | undefined>;
    write(key: string, data: Buffer | string): Promise<void>;
    remove(key: string): Promise<void>;
    /** Every object whose key starts with prefix, in key order. */
    list(prefix: string): Promise<StoredObject[]>;
}

/** Opens the store behind a DIY backend URL; the environment supplies S3 credentials. */
export function openStateStore(
    backendUrl: string,
    env: Record<string, string | undefined> = process.env,
): StateStore {
    if (backendUrl.startsWith("file://"))
        return new FileStore(backendUrl.slice("file://".length).split("?")[0]);
    if (backendUrl.startsWith("s3://")) return new S3Store(parseS3Url(backendUrl), env);
    throw new Error(`unsupported backend ${backendUrl}: the tools read file:// and s3:// backends`);
}

class FileStore implements StateStore {
    constructor(private readonly root: string) {}
    describe(key: string): string {
        return path.join(this.root, key);
    }
    async read(key: string): Promise<Buffer | undefined> {
        try {
            return fs.readFileSync(path.join(this.root, key));
        } catch {
            return undefined;
        }
    }
    async write(key: string, data: Buffer | string): Promise<void> {
        const file = path.join(this.root, key);
        fs.mkdirSync(path.dirname(file), { recursive: true });
        fs.writeFileSync(file, data);
    }
    async remove(key: string): Promise<void> {
        fs.rmSync(path.join(this.root, key), { force: true });
    }
    async list(prefix: string): Promise<StoredObject[]> {
        const out: StoredObject[] = [];
        const walk = (dir: string) => {
            let entries: fs.Dirent[];
            try {
                entries = fs.readdirSync(dir, { withFileTypes: true });
            } catch {
                return;
            }
            for (const e of entries) {
                const full = path.join(dir, e.name);
                if (e.isDirectory()) walk(full);
                else {
                    const key = path.relative(this.root, full).split(path.sep).join("/");
                    if (key.startsWith(prefix))
                        out.push({ key, modified: fs.statSync(full).mtime });
                }
            }
        };
        // Start at the deepest folder the prefix names, not the whole tree.
        walk(
            path.join(
                this.root,
                prefix.includes("/") ? prefix.slice(0, prefix.lastIndexOf("/")) : "",
            ),
        );
        return out.sort((a, b) => a.key.localeCompare(b.key));
    }
}

export interface S3Location {
    bucket: string;
    /** Key prefix inside the bucket (s3://bucket/sub/dir), without slashes at either end. */
    prefix: string;
    region: string;
    /** scheme://host[:port], without the bucket. */
    endpoint: string;
    pathStyle: boolean;
    url: string;
}

/** The parts of an s3:// backend URL, as gocloud.dev's s3blob (SDK v1 path) reads them. */
export function parseS3Url(backendUrl: string): S3Location {
    const u = new URL(backendUrl);
    const q = u.searchParams;
    for (const key of q.keys()) {
        if (
            ![
                "region",
                "endpoint",
                "disableSSL",
                "s3ForcePathStyle",
                "profile",
                "awssdk",
                "ssetype",
                "kmskeyid",
            ].includes(key)
        ) {
            throw new Error(
                `${backendUrl}: unknown query parameter "${key}" (Pulumi's s3 backend accepts region, endpoint, disableSSL, s3ForcePathStyle, profile)`,
            );
        }
    }
    const region =
        q.get("region") ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? "us-east-1";
    const scheme = q.get("disableSSL") === "true" ? "http" : "https";
    const host = q.get("endpoint") ?? `s3.${region}.amazonaws.com`;
    const endpoint = /^https?:\/\//.test(host) ? host.replace(/\/$/, "") : `${scheme}://${host}`;
    return {
        bucket: u.hostname,
        prefix: decodeURIComponent(u.pathname).replace(/^\/+|\/+$/g, ""),
        region,
        endpoint,
        pathStyle: q.get("s3ForcePathStyle") === "true",
        url: `s3://${u.hostname}${u.pathname.replace(/\/+$/, "")}`,
    };
}

const sha256 = (data: Buffer | string) => crypto.createHash("sha256").update(data).digest("hex");
const hmac = (key: Buffer | string, data: string) =>
    crypto.createHmac("sha256", key).update(data).digest();
/** RFC 3986 encoding, as SigV4 wants it (encodeURIComponent leaves !'()* alone). */
const rfc3986 = (s: string) =>
    encodeURIComponent(s).replace(
        /[!'()*]/g,
        (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
    );
const xmlText = (s: string) =>
    s
        .replace(/&lt;/g, "<")
        .replace(/&gt;/g, ">")
        .replace(/&quot;/g, '"')
        .replace(/&apos;/g, "'")
        .replace(/&amp;/g, "&");

export interface SignV4Input {
    method: string;
    host: string;
    /** Already URI-encoded, as sent. */
    path: string;
    query: Record<string, string>;
    payload: Buffer | string;
    accessKey: string;
    secretKey: string;
    sessionToken?: string;
    region: string;
    now: Date;
}

/** AWS Signature Version 4 for S3 (host, x-amz-content-sha256 and x-amz-date signed): the headers to send. */
export function signV4(r: SignV4Input): { headers: Record<string, string>; query: string } {
    const query = Object.keys(r.query)
        .sort()
        .map((k) => `${rfc3986(k)}=${rfc3986(r.query[k])}`)
        .join("&");
    const amzDate = r.now
        .toISOString()
        .replace(/[-:]/g, "")
        .replace(/\.\d{3}/, "");
    const date = amzDate.slice(0, 8);
    const payloadHash = sha256(r.payload);
    const headers: Record<string, string> = {
        host: r.host,
        "x-amz-content-sha256": payloadHash,
        "x-amz-date": amzDate,
    };
    if (r.sessionToken) headers["x-amz-security-token"] = r.sessionToken;
    const names = Object.keys(headers).sort();
    const canonical = [
        r.method,
        r.path,
        query,
        names.map((n) => `${n}:${headers[n]}\n`).join(""),
        names.join(";"),
        payloadHash,
    ].join("\n");
    const scope = `${date}/${r.region}/s3/aws4_request`;
    const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256(canonical)].join("\n");
    const signingKey = hmac(
        hmac(hmac(hmac(`AWS4${r.secretKey}`, date), r.region), "s3"),
        "aws4_request",
    );
    const signature = crypto.createHmac("sha256", signingKey).update(toSign).digest("hex");
    headers.authorization = `AWS4-HMAC-SHA256 Credential=${r.accessKey}/${scope}, SignedHeaders=${names.join(";")}, Signature=${signature}`;
    return { headers, query };
}

class S3Store implements StateStore {
    constructor(
        private readonly loc: S3Location,
        private readonly env: Record<string, string | undefined>,
    ) {}

    describe(key: string): string {
        return `${this.loc.url}/${key}`;
    }

    private fullKey(key: string): string {
        return this.loc.prefix ? `${this.loc.prefix}/${key}` : key;
    }

    /** One signed request (AWS Signature Version 4, payload hashed). */
    async request(
        method: string,
        key: string,
        query: Record<string, string> = {},
        body?: Buffer,
    ): Promise<{ status: number; body: Buffer }> {
        const accessKey = this.env.AWS_ACCESS_KEY_ID;
        const secretKey = this.env.AWS_SECRET_ACCESS_KEY;
        if (!accessKey || !secretKey)
            throw new Error(
                `${this.loc.url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (for OSS: a RAM user's AccessKey)`,
            );
        const base = new URL(this.loc.endpoint);
        const host = this.loc.pathStyle ? base.host : `${this.loc.bucket}.${base.host}`;
        const segments = this.loc.pathStyle
            ? [this.loc.bucket, ...(key ? key.split("/") : [])]
            : key.split("/");
        const requestPath = "/" + segments.map(rfc3986).join("/");
        const signed = signV4({
            method,
            host,
            path: requestPath,
            query,
            payload: body ?? "",
            accessKey,
            secretKey,
            sessionToken: this.env.AWS_SESSION_TOKEN,
            region: this.loc.region,
            now: new Date(),
        });
        const { host: _host, ...headers } = signed.headers;
        const res = await fetch(
            `${base.protocol}//${host}${requestPath}${signed.query ? `?${signed.query}` : ""}`,
            {
                method,
                headers,
                body: body as BodyInit | undefined,
                signal: AbortSignal.timeout(15_000),
            },
        );
        return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
    }

    private fail(what: string, key: string, res: { status: number; body: Buffer }): never {
        const code = /<Code>([^<]*)<\/Code>/.exec(res.body.toString())?.[1] ?? "";
        throw new Error(`${what} ${this.describe(key)}: HTTP ${res.status} ${code}`.trim());
    }

    async read(key: string): Promise<Buffer | undefined> {
        const res = await this.request("GET", this.fullKey(key));
        if (res.status === 404) return undefined;
        if (res.status !== 200) this.fail("reading", key, res);
        return res.body;
    }

    async write(key: string, data: Buffer | string): Promise<void> {
        const res = await this.request("PUT", this.fullKey(key), {}, Buffer.from(data));
        if (res.status !== 200) this.fail("writing", key, res);
    }

    async remove(key: string): Promise<void> {
        const res = await this.request("DELETE", this.fullKey(key));
        if (res.status !== 204 && res.status !== 200 && res.status !== 404)
            this.fail("deleting", key, res);
    }

    async list(prefix: string): Promise<StoredObject[]> {
        const out: StoredObject[] = [];
        let token: string | undefined;
        do {
            const query: Record<string, string> = {
                "list-type": "2",
                prefix: this.fullKey(prefix),
            };
            if (token) query["continuation-token"] = token;
            const res = await this.request("GET", "", query);
            if (res.status !== 200) this.fail("listing", prefix, res);
            const xml = res.body.toString();
            for (const [, contents] of xml.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
                const key = xmlText(/<Key>([\s\S]*?)<\/Key>/.exec(contents)![1]);
                const modified = new Date(
                    /<LastModified>([^<]*)<\/LastModified>/.exec(contents)?.[1] ?? 0,
                );
                out.push({
                    key: this.loc.prefix ? key.slice(this.loc.prefix.length + 1) : key,
                    modified,
                });
            }
            token = /<IsTruncated>true<\/IsTruncated>/.test(xml)
                ? xmlText(
                      /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(xml)?.[1] ??
                          "",
                  )
                : undefined;
        } while (token);
        return out.sort((a, b) => a.key.localeCompare(b.key));
    }
}
