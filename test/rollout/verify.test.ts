import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as net from "net";
import { execFile } from "child_process";
import * as path from "path";
import { EchoServer, freePort, startEchoServer } from "../support/echoServers";
import { PROJECT_ROOT } from "../../tools/engine/engine";
import { RunningProxy, startWeightedProxy } from "../support/weightedProxy";
import { verify, VerifyOptions } from "../../tools/rollout/verify";
import { seededRandom } from "../support/random";
import { ECHO_PREFIXES } from "../../components/model";

/** Istio's real tcp-echo servers behind a weighted TCP proxy on loopback. */
describe("verify against tcp-echo servers behind a weighted proxy", () => {
    let v1: EchoServer, v2: EchoServer, stranger: EchoServer;
    const proxies: RunningProxy[] = [];
    const proxy = async (
        weights: Record<string, number>,
        backends = () => [
            { name: "v1", port: v1.port },
            { name: "v2", port: v2.port },
        ],
    ) => {
        const p = await startWeightedProxy({
            backends: backends(),
            weights: () => weights,
            random: seededRandom(7),
        });
        proxies.push(p);
        return p;
    };
    const options = (
        port: number,
        expectedWeight: number,
        extra: Partial<VerifyOptions> = {},
    ): VerifyOptions => ({
        host: "127.0.0.1",
        port,
        connections: 1000,
        concurrency: 50,
        timeoutMs: 2000,
        expectedWeight,
        prefixes: ECHO_PREFIXES,
        maxErrorRate: 0.01,
        ...extra,
    });
    // Asynchronous: the proxy and the servers' clients live in this process's event loop.
    const cli = (args: string[]) =>
        new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
            execFile(
                process.execPath,
                ["--import", "tsx", path.join(PROJECT_ROOT, "tools/cli/verify.ts"), ...args],
                { cwd: PROJECT_ROOT },
                (err, stdout, stderr) =>
                    resolve({
                        status: err ? Number((err as { code?: number }).code ?? 1) : 0,
                        stdout,
                        stderr,
                    }),
            );
        });

    before(async () => {
        v1 = await startEchoServer("v1", ECHO_PREFIXES.v1);
        v2 = await startEchoServer("v2", ECHO_PREFIXES.v2);
        stranger = await startEchoServer("v3", "three");
    });
    after(async () => {
        for (const p of proxies) await p.close();
        await Promise.all([v1, v2, stranger].map((s) => s.stop()));
    });

    it("an 80/20 split is consistent with weight 20 (1000 connections)", async () => {
        const p = await proxy({ v1: 80, v2: 20 });
        const report = await verify(options(p.port, 20));
        assert.equal(report.verdict, "consistent", report.reason);
        assert.equal(report.counts.v1 + report.counts.v2, 1000);
        assert.ok(report.wilson95!.low <= 0.2 && 0.2 <= report.wilson95!.high);
        assert.equal(
            p.connections.v2,
            report.counts.v2,
            "every proxied v2 connection was answered by the v2 server",
        );
    });

    it("a 50/50 split contradicts weight 20", async () => {
        const p = await proxy({ v1: 50, v2: 50 });
        const report = await verify(options(p.port, 20));
        assert.equal(report.verdict, "inconsistent");
        assert.match(report.reason, /expected 20% lies outside the 95% interval/);
    });

    it("all-v1 is consistent with weight 0 and inconsistent with weight 1", async () => {
        const p = await proxy({ v1: 100, v2: 0 });
        assert.equal(
            (await verify(options(p.port, 0, { connections: 300 }))).verdict,
            "consistent",
        );
        assert.equal(
            (await verify(options(p.port, 1, { connections: 1000 }))).verdict,
            "inconsistent",
        );
    });

    it("counts refusals, resets, unknown replies and timeouts without crashing", async () => {
        const closedPort = await freePort();
        const refused = await verify(options(closedPort, 20, { connections: 20 }));
        assert.equal(refused.counts.refused, 20);
        assert.equal(refused.verdict, "inconclusive");

        const deadBackend = await proxy({ v1: 50, v2: 50 }, () => [
            { name: "v1", port: v1.port },
            { name: "v2", port: closedPort },
        ]);
        const half = await verify(options(deadBackend.port, 50, { connections: 200 }));
        assert.ok(half.counts.reset > 50, JSON.stringify(half.counts));
        assert.equal(half.counts.v1 + half.counts.reset, 200);
        assert.equal(half.verdict, "inconclusive");
        assert.match(half.reason, /failed or gave unknown replies/);

        const unknown = await proxy({ v1: 0, v2: 0, v3: 100 }, () => [
            { name: "v3", port: stranger.port },
        ]);
        const odd = await verify(options(unknown.port, 20, { connections: 30 }));
        assert.equal(odd.counts.unknown, 30);

        const silent = net.createServer(() => undefined);
        await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()));
        const silentPort = (silent.address() as net.AddressInfo).port;
        const slow = await verify(options(silentPort, 20, { connections: 10, timeoutMs: 200 }));
        assert.equal(slow.counts.timeout, 10);
        await new Promise<void>((r) => {
            silent.close(() => r());
            silent.emit("close");
        });
    });

    it("the CLI exits 0 when consistent, 1 when contradicted, 64 on bad input, and prints JSON", async () => {
        const p = await proxy({ v1: 80, v2: 20 });
        const ok = await cli([
            "--port",
            String(p.port),
            "--expect-weight",
            "20",
            "--connections",
            "400",
            "--json",
        ]);
        assert.equal(ok.status, 0, ok.stderr);
        assert.equal(JSON.parse(ok.stdout).verdict, "consistent");
        const bad = await cli([
            "--port",
            String(p.port),
            "--expect-weight",
            "90",
            "--connections",
            "400",
        ]);
        assert.equal(bad.status, 1);
        assert.match(bad.stdout, /verdict\s+inconsistent/);
        const usage = await cli(["--port", String(p.port), "--expect-weight", "101"]);
        assert.equal(usage.status, 64);
        assert.match(usage.stderr, /--expect-weight must be an integer from 0 to 100; got "101"/);
    });
});
