import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { POLICY_GATE } from "../../components/model";
import { PROJECT_ROOT } from "../../tools/engine";
import {
    analyzerClient,
    buildCopiedPack,
    copyPolicyPack,
    loadedModules,
    startPack,
    stopPack,
    writeLoadedModulesReporter,
} from "../support/policyPack";
import { until } from "../support/wait";
import { StackResource, clone, find, happyStack } from "./harness";

/** What the pack loads after its start with the start-up preload: its requests need these, its start does not. */
const DEFERRED = {
    "source maps": /[\\/]source-map-support[\\/]source-map-support\.js$/,
    "@pulumi/pulumi's index": /[\\/]@pulumi[\\/]pulumi[\\/]index\.js$/,
    "the stack resource": /[\\/]@pulumi[\\/]pulumi[\\/]runtime[\\/]stack\.js$/,
    "the callback server": /[\\/]@pulumi[\\/]pulumi[\\/]runtime[\\/]callbacks\.js$/,
    "the resource monitor's protos": /[\\/]@pulumi[\\/]pulumi[\\/]proto[\\/]resource_pb\.js$/,
    "the property (de)serializer": /[\\/]@pulumi[\\/]pulumi[\\/]runtime[\\/]rpc\.js$/,
};
/** What every request uses (the others only for assets, errors or a program): the warm-up loads these. */
const REQUEST_PATH: (keyof typeof DEFERRED)[] = [
    "the property (de)serializer",
    "the resource monitor's protos",
];
const loadedOf = (loaded: string[]) =>
    (Object.keys(DEFERRED) as (keyof typeof DEFERRED)[]).filter((what) =>
        loaded.some((f) => DEFERRED[what].test(f)),
    );

/**
 * The policy pack with the start-up preload the engine's environment carries (tools/lazy-sdk.cjs), against the same
 * pack without it: what the pack needs only for requests loads after its start, and once the engine has configured it
 * the pack runs its handlers on a made-up request while the engine starts the program. Every answer the engine gets,
 * violations and errors (with the policies' TypeScript lines) included, is the same.
 */
describe("policy pack requests: with the start-up preload, a shorter start and the same answers", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "asm-pack-requests-"));
    const pack = path.join(root, "policy");
    const reporter = path.join(root, "report.cjs");
    const loadedFile = path.join(root, "loaded.json");
    const preload = `--require ${path.join(PROJECT_ROOT, "tools/lazy-sdk.cjs")} --require ${reporter}`;
    let stack: StackResource[];

    before(async () => {
        copyPolicyPack(root);
        writeLoadedModulesReporter(reporter, loadedFile);
        assert.deepEqual(buildCopiedPack(pack), []);
        stack = await happyStack();
    });
    after(() => fs.rmSync(root, { recursive: true, force: true }));

    it("starts without what only requests use, and loads the request path once configured, before any request", async () => {
        const started = await startPack(pack, preload);
        assert.ok(started.port, started.stderr());
        const client = analyzerClient(pack, started.port);
        try {
            assert.deepEqual(
                loadedOf(await loadedModules(started, loadedFile)),
                [],
                "loaded before its port",
            );
            await client.getAnalyzerInfo();
            await client.configure();
            // No request yet: only the pack's own warm-up, after its configuration, loads these.
            await until("the pack's warm-up after its configuration", async () => {
                const loaded = loadedOf(await loadedModules(started, loadedFile));
                const notYet = REQUEST_PATH.filter((what) => !loaded.includes(what));
                if (notYet.length > 0) throw new Error(`not loaded: ${notYet.join(", ")}`);
                return true;
            });
        } finally {
            client.close();
            await stopPack(started);
        }
    });

    it("answers every call as without the preload: info, remediations, violations, a policy's error, the stack", async () => {
        const virtualService = clone(find(stack, "virtualService"));
        virtualService.props.spec.tcp[0].route[1].weight += 5; // the weights now sum to 105
        const gateWithBadState = {
            type: POLICY_GATE.type,
            name: POLICY_GATE.name,
            urn: `urn:pulumi:dev::asm-tcp-shift::${POLICY_GATE.type}::${POLICY_GATE.name}`,
            props: { [POLICY_GATE.input]: "{not json" },
        };

        async function answers(nodeOptions: string) {
            const started = await startPack(pack, nodeOptions);
            assert.ok(started.port, started.stderr());
            const client = analyzerClient(pack, started.port);
            try {
                const info = await client.getAnalyzerInfo();
                await client.configure();
                const remediations = [];
                for (const r of stack) remediations.push(await client.remediate(r));
                const analysis = [];
                for (const r of [...stack, virtualService]) analysis.push(await client.analyze(r));
                const error = await client.analyze(gateWithBadState).then(
                    () => assert.fail("a desired state that is not JSON was accepted"),
                    (err: Error & { details?: string }) => err.details,
                );
                const stackAnalysis = await client.analyzeStack([...stack, virtualService]);
                return { info, remediations, analysis, error, stackAnalysis };
            } finally {
                client.close();
                await stopPack(started);
            }
        }

        const without = await answers("");
        const withPreload = await answers(preload);
        assert.deepEqual(withPreload, without);
        // What was compared has substance: the broken weights are reported, and the error names the TypeScript line.
        const reported = JSON.stringify(without.analysis.at(-1));
        assert.match(reported, /tcp-route-weights/);
        assert.match(without.error ?? "", /policies[\\/]gate\.ts:\d+:\d+/);
    });
});
