import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { PROJECT_ROOT } from "../../tools/engine";
import { until } from "./wait";

/**
 * Copies the policy pack to `<root>/policy` as the engine would find it: its files without bin/, and beside it what
 * it uses of the project: the packages it shares as the root's npm workspace (node_modules linked, the lock file),
 * components/ (it imports model.ts; a build records the names beside it) and the builder tools/compile-ahead.js.
 * Returns the pack's folder.
 */
export function copyPolicyPack(root: string): string {
    const pack = path.join(root, "policy");
    fs.cpSync(path.join(PROJECT_ROOT, "policy"), pack, {
        recursive: true,
        filter: (src) => !/[\\/]bin$/.test(src),
    });
    fs.symlinkSync(path.join(PROJECT_ROOT, "node_modules"), path.join(root, "node_modules"));
    for (const file of ["package-lock.json", "components", "tools/compile-ahead.js"]) {
        fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
        fs.cpSync(path.join(PROJECT_ROOT, file), path.join(root, file), { recursive: true });
    }
    return pack;
}

/**
 * Gives a pack copied by copyPolicyPack a current compiled build: the project's own (scripts/setup.sh builds it) when
 * it is current for the copy too, which the same check as the pack's entry decides; else a new build. Returns the
 * build's errors, [] once the copy's build is current.
 */
export function buildCopiedPack(pack: string): string[] {
    const build = require(
        path.join(PROJECT_ROOT, "policy/build.js"),
    ) as typeof import("../../policy/build");
    const projectBin = path.join(PROJECT_ROOT, "policy", "bin");
    const entry = build.currentEntry(path.join(PROJECT_ROOT, "policy"));
    if (entry) {
        // The manifest and the one build folder it names (bin/ may also keep older builds).
        const folder = path.relative(projectBin, entry).split(path.sep)[0];
        for (const name of ["build.json", folder])
            fs.cpSync(path.join(projectBin, name), path.join(pack, "bin", name), {
                recursive: true,
            });
        if (build.staleness(pack) === undefined) return [];
        fs.rmSync(path.join(pack, "bin"), { recursive: true, force: true });
    }
    return build.build(pack);
}

/** A pack started as the engine starts it; `port` is set once it printed it, `code` if it exited before. */
export interface StartedPack {
    child: ChildProcess;
    port?: number;
    code?: number | null;
    stderr(): string;
}

/**
 * Starts the pack in `pack` as the engine does (@pulumi/pulumi's pack runner, what `pulumi-analyzer-policy` runs, in
 * the pack's folder) with `nodeOptions`; resolves once it printed its port or exited.
 */
export function startPack(pack: string, nodeOptions: string): Promise<StartedPack> {
    const runner = require.resolve("@pulumi/pulumi/cmd/run-policy-pack", { paths: [pack] });
    const child = spawn(process.execPath, [runner, "127.0.0.1:1", "."], {
        cwd: pack,
        env: { ...process.env, NODE_OPTIONS: nodeOptions },
        stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr!.on("data", (d) => (stderr += d));
    const started: StartedPack = { child, stderr: () => stderr };
    return new Promise((resolve) => {
        child.stdout!.once("data", (d) => resolve({ ...started, port: Number(String(d).trim()) }));
        // "close": its output is all read by then.
        child.once("close", (code) => resolve({ ...started, code }));
    });
}

/**
 * A preload (for NODE_OPTIONS=--require) that writes the modules its process has loaded to `file`, as JSON: on
 * SIGUSR2, and on SIGTERM before it exits.
 */
export function writeLoadedModulesReporter(script: string, file: string): void {
    fs.writeFileSync(
        script,
        [
            `const report = () => require("fs").writeFileSync(${JSON.stringify(file)}, JSON.stringify(Object.keys(require.cache)));`,
            `process.on("SIGUSR2", report);`,
            `process.on("SIGTERM", () => { report(); process.exit(0); });`,
        ].join("\n") + "\n",
    );
}

/** The modules a pack started with the reporter above has loaded by now. */
export async function loadedModules(started: StartedPack, file: string): Promise<string[]> {
    fs.rmSync(file, { force: true });
    started.child.kill("SIGUSR2");
    return until(`the pack's loaded modules in ${file}`, () => {
        try {
            return JSON.parse(fs.readFileSync(file, "utf8")) as string[];
        } catch {
            return undefined; // not written yet, or half
        }
    });
}

/** Stops a started pack and waits for it to exit. */
export async function stopPack(started: StartedPack): Promise<void> {
    if (started.child.exitCode !== null || started.child.signalCode !== null) return;
    const exited = new Promise((resolve) => started.child.once("exit", resolve));
    started.child.kill("SIGTERM");
    await exited;
}

/**
 * The engine's side of the Analyzer gRPC service, made with the pack's own @grpc/grpc-js and @pulumi/pulumi protos:
 * each call resolves with the answer as a plain object, or rejects with the gRPC error.
 */
export function analyzerClient(pack: string, port: number) {
    const modules = path.join(pack, "../node_modules");
    const grpc = require(path.join(modules, "@grpc/grpc-js"));
    const rpc = require(path.join(modules, "@pulumi/pulumi/proto/analyzer_grpc_pb.js"));
    const messages = require(path.join(modules, "@pulumi/pulumi/proto/analyzer_pb.js"));
    const { Struct } = require(path.join(modules, "google-protobuf/google/protobuf/struct_pb.js"));
    const { Empty } = require(path.join(modules, "google-protobuf/google/protobuf/empty_pb.js"));
    const client = new rpc.AnalyzerClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const message = (method: string, request: unknown): Promise<any> =>
        new Promise((resolve, reject) =>
            client[method](request, (err: Error | null, answer: unknown) =>
                err ? reject(err) : resolve(answer),
            ),
        );
    const call = async (method: string, request: unknown): Promise<Record<string, unknown>> =>
        (await message(method, request)).toObject();
    /** A resource as the engine sends it: type, name, URN and its inputs (plain data). */
    const resource = <T>(
        message: T & Record<string, (v: unknown) => void>,
        r: { type: string; name: string; urn: string; props: object },
    ): T => {
        message.setType(r.type);
        message.setName(r.name);
        message.setUrn(r.urn);
        message.setProperties(Struct.fromJavaScript(JSON.parse(JSON.stringify(r.props))));
        message.setOptions(new messages.AnalyzerResourceOptions());
        return message;
    };
    type Resource = Parameters<typeof resource>[1];
    return {
        getAnalyzerInfo: () => call("getAnalyzerInfo", new Empty()),
        /** Configures every policy as the engine does for a stack without policy config: its level, its schema's defaults. */
        configure: async () => {
            const info = await message("getAnalyzerInfo", new Empty());
            const request = new messages.ConfigureAnalyzerRequest();
            for (const policy of info.getPoliciesList()) {
                const schema = policy.getConfigschema()?.getProperties()?.toJavaScript() ?? {};
                const defaults = Object.fromEntries(
                    Object.entries(schema)
                        .filter(([, s]) => s && typeof s === "object" && "default" in s)
                        .map(([key, s]) => [key, (s as { default: unknown }).default]),
                );
                const config = new messages.PolicyConfig();
                config.setEnforcementlevel(policy.getEnforcementlevel());
                config.setProperties(Struct.fromJavaScript(defaults));
                request.getPolicyconfigMap().set(policy.getName(), config);
            }
            return call("configure", request);
        },
        remediate: (r: Resource) => call("remediate", resource(new messages.AnalyzeRequest(), r)),
        analyze: (r: Resource) => call("analyze", resource(new messages.AnalyzeRequest(), r)),
        analyzeStack: (rs: Resource[]) => {
            const request = new messages.AnalyzeStackRequest();
            request.setResourcesList(rs.map((r) => resource(new messages.AnalyzerResource(), r)));
            return call("analyzeStack", request);
        },
        close: () => client.close(),
    };
}
