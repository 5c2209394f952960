import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { DEFAULTS } from "../../config";
import { OBJECT_NAMES } from "../../components/model";
import { gatedUp, openStack, scratchProject } from "../../tools/engine/engine";
import { gatewayConfigDump, receivedRoutes, waitForReceivedSplit } from "../../tools/cluster/mesh";
import { apply, env, get, k, meshCluster, podIPs, until } from "../support/mesh";

const NAMESPACE = "conformance";
const PORT = DEFAULTS.gatewayPort;
const cluster = (subset: string) =>
    `outbound|${DEFAULTS.servicePort}|${subset}|${OBJECT_NAMES.service}.${NAMESPACE}.svc.cluster.local`;

/** The listener, its tcp_proxy and the EDS endpoints as istiod generated them for one gateway pod (its own debug config dump). */
async function istiodView(proxyID: string) {
    const res = await fetch(
        `${env().istiodDebug}/debug/config_dump?proxyID=${encodeURIComponent(proxyID)}&include_eds=true`,
    );
    assert.equal(res.status, 200, await res.clone().text());
    const dump = (await res.json()) as { configs: any[] };
    const of = (type: string) => dump.configs.find((c) => c["@type"].endsWith(type)) ?? {};
    const listeners = (of("ListenersConfigDump").dynamicListeners ?? [])
        .map((l: any) => l.activeState?.listener)
        .filter(Boolean);
    const listener = listeners.find((l: any) => l.name === `0.0.0.0_${PORT}`);
    const tcpProxy = listener?.filterChains?.[0]?.filters?.find(
        (f: any) => f.name === "envoy.filters.network.tcp_proxy",
    )?.typedConfig;
    const endpoints: Record<string, string[]> = {};
    for (const e of of("EndpointsConfigDump").dynamicEndpointConfigs ?? []) {
        const cfg = e.endpointConfig;
        endpoints[cfg.clusterName] = (cfg.endpoints ?? [])
            .flatMap((l: any) => l.lbEndpoints ?? [])
            .filter((lb: any) => !lb.healthStatus || lb.healthStatus === "HEALTHY")
            .map(
                (lb: any) =>
                    `${lb.endpoint.address.socketAddress.address}:${lb.endpoint.address.socketAddress.portValue}`,
            )
            .sort();
    }
    return { listener, tcpProxy, endpoints };
}

/**
 * Istio translation conformance: the program's rendered output at weights 0, 20 and 100, applied to
 * the mesh cluster and translated by the live istiod. Checked on istiod's own output for the gateway
 * pods and on what the gateway received: the listener on 31400, the tcp_proxy clusters with the stack's
 * weights, and EDS endpoints that are exactly the pods of each version.
 */
describe("Istio translation conformance of the rendered output", () => {
    let dir: string;
    let stack: Stack;
    const table: string[] = [
        "| v2Weight | listener | tcp_proxy (istiod) | gateway received | EDS v1 | EDS v2 |",
        "|---|---|---|---|---|---|",
    ];

    before(async () => {
        meshCluster("up");
        apply(`apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${NAMESPACE}\n`);
        dir = scratchProject(fs.mkdtempSync(path.join(os.tmpdir(), "asm-tcp-shift-conformance-")));
        stack = await openStack("conformance", {
            workDir: dir,
            backendUrl: `file://${path.join(dir, ".state")}`,
            env: { PULUMI_CONFIG_PASSPHRASE: "conformance-test" },
        });
        await stack.setAllConfig({
            target: { value: "render" },
            namespace: { value: NAMESPACE },
            replicas: { value: "2" },
            v2Weight: { value: "0" },
        });
    });

    after(() => {
        try {
            k(
                "delete",
                "--wait=false",
                "--ignore-not-found",
                "-f",
                path.join(dir, "rendered", "1-manifest"),
            );
        } catch {
            // The cluster may already be gone; the table still prints.
        }
        console.log(`\n${table.join("\n")}\n`);
        fs.rmSync(dir, { recursive: true, force: true });
    });

    for (const weight of [0, 20, 100]) {
        it(`v2Weight ${weight}: listener 0.0.0.0_${PORT}, tcp_proxy with the stack's weights, EDS = the pods of each version`, async () => {
            await stack.setConfig("v2Weight", { value: String(weight) });
            await gatedUp(stack);
            k("apply", "-f", path.join(dir, "rendered", "1-manifest"));
            const split = { v1: 100 - weight, v2: weight };
            await waitForReceivedSplit(env(), PORT, split, 60_000);
            const pods = await until(
                "2 pods of each version ready with their endpoints at the gateway",
                async () => {
                    const v1 = podIPs(NAMESPACE, "version=v1"),
                        v2 = podIPs(NAMESPACE, "version=v2");
                    const r = receivedRoutes(await gatewayConfigDump(env()), PORT);
                    const want = {
                        v1: v1.map((ip) => `${ip}:${DEFAULTS.servicePort}`),
                        v2: v2.map((ip) => `${ip}:${DEFAULTS.servicePort}`),
                    };
                    const ok =
                        v1.length === 2 &&
                        v2.length === 2 &&
                        r.length > 0 &&
                        r.every((x) =>
                            Object.keys(x.endpoints).every(
                                (s) =>
                                    JSON.stringify(x.endpoints[s]) ===
                                    JSON.stringify(want[s as "v1" | "v2"]),
                            ),
                        );
                    return ok && want;
                },
                60_000,
            );
            const gateways = get(
                "-n",
                "istio-system",
                "get",
                "pods",
                "-l",
                "istio=ingressgateway",
            ).items.filter((p: any) => !p.metadata.deletionTimestamp);
            assert.ok(gateways.length > 0);
            for (const gw of gateways) {
                const { listener, tcpProxy, endpoints } = await istiodView(
                    `${gw.metadata.name}.istio-system`,
                );
                assert.ok(
                    listener,
                    `istiod generated no 0.0.0.0_${PORT} listener for ${gw.metadata.name}`,
                );
                assert.equal(listener.address.socketAddress.portValue, PORT);
                assert.equal(
                    tcpProxy?.["@type"],
                    "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                );
                // istiod drops weight-0 destinations: at 0 and 100 the weighted_clusters hold one cluster at 100
                // (a VirtualService with a single destination would give `cluster` instead).
                const generated: Record<string, number> = tcpProxy.cluster
                    ? { [tcpProxy.cluster]: 100 }
                    : Object.fromEntries(
                          tcpProxy.weightedClusters.clusters.map((c: any) => [c.name, c.weight]),
                      );
                const expected = Object.fromEntries(
                    Object.entries(split)
                        .filter(([, w]) => w > 0)
                        .map(([s, w]) => [cluster(s), w]),
                );
                assert.deepEqual(generated, expected);
                assert.deepEqual(endpoints[cluster("v1")], pods.v1);
                assert.deepEqual(endpoints[cluster("v2")], pods.v2);
                const received = receivedRoutes(await gatewayConfigDump(env()), PORT).find(
                    (r) => r.pod === `istio-system/${gw.metadata.name}`,
                );
                assert.deepEqual(
                    received?.clusters,
                    generated,
                    "the gateway holds what istiod generated",
                );
                if (gw === gateways[0]) {
                    const fmt = (m: Record<string, number>) =>
                        Object.entries(m)
                            .map(([c, w]) => `\`${c}\` ${w}`)
                            .join(", ");
                    table.push(
                        `| ${weight} | \`${listener.name}\` | ${fmt(generated)} | ${fmt(received!.clusters)} | ${pods.v1.length} (= version=v1 pods) | ${pods.v2.length} (= version=v2 pods) |`,
                    );
                }
            }
        });
    }
});
