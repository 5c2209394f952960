/**
 * What the GitHub workflows promise (docs/ci.md), read from the parsed files and, where a step's script carries the
 * promise, by running that script: actions pinned by commit; a pull request's code gets no deploy credential, no
 * deploy environment and no write token; every job names its permissions, and none holds both a secret and a write
 * token; deploy updates nothing before the test suite passed, and the environments in order; a promotion ends in a
 * pull request with the target's stack file, never in a stack file left behind; every job takes the passphrase of its
 * own stack from that environment's own secret. test/rollout/workflows.test.ts runs actionlint over the same files.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { isScalar, parse, parseDocument, visit } from "yaml";
import { PROJECT_ROOT } from "../../tools/engine/engine";
import { tempDirs } from "../support/tempDirs";

type Permissions = string | Record<string, string> | undefined;
interface Step {
    id?: string;
    name?: string;
    if?: string;
    uses?: string;
    run?: string;
    env?: Record<string, string>;
    with?: Record<string, unknown>;
}
interface Job {
    uses?: string;
    needs?: string | string[];
    if?: string;
    environment?: string | { name: string };
    permissions?: Permissions;
    env?: Record<string, string>;
    outputs?: Record<string, string>;
    secrets?: unknown;
    steps?: Step[];
}
interface Workflow {
    on: string | string[] | Record<string, unknown>;
    permissions?: Permissions;
    env?: Record<string, string>;
    jobs: Record<string, Job>;
}

const GITHUB = path.join(PROJECT_ROOT, ".github");
const WORKFLOWS = path.join(GITHUB, "workflows");
const SETUP_ACTION = path.join(GITHUB, "actions/setup/action.yml");
const workflowFiles = fs.readdirSync(WORKFLOWS).filter((f) => /\.ya?ml$/.test(f));
const workflows: Record<string, Workflow> = Object.fromEntries(
    workflowFiles.map((f) => [f, parse(fs.readFileSync(path.join(WORKFLOWS, f), "utf8"))]),
);
const setupAction = parse(fs.readFileSync(SETUP_ACTION, "utf8")) as {
    runs: { steps: Step[] };
};
const workflow = (file: string): Workflow => {
    assert.ok(workflows[file], `.github/workflows/${file} exists`);
    return workflows[file];
};

const STACKS = ["dev", "staging", "prod"] as const;
const PREVIEW_ENVIRONMENT = "preview";
const passphraseSecret = (stack: string) => `PULUMI_CONFIG_PASSPHRASE_${stack.toUpperCase()}`;
const secretRef = (name: string) => `\${{ secrets.${name} }}`;
/** What a pull request's code may hold: the preview environment's read-only identities and the stacks' passphrases. */
const PREVIEW_SECRETS = new Set([
    "PULUMI_BACKEND_URL",
    "PREVIEW_STATE_BUCKET_ACCESS_KEY_ID",
    "PREVIEW_STATE_BUCKET_ACCESS_KEY_SECRET",
    "PREVIEW_ALIBABA_CLOUD_ACCESS_KEY_ID",
    "PREVIEW_ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    ...STACKS.map(passphraseSecret),
]);

const triggers = (wf: Workflow): string[] =>
    typeof wf.on === "string" ? [wf.on] : Array.isArray(wf.on) ? wf.on : Object.keys(wf.on);
/** Events whose runs hold the repository's secrets while running code a pull request controls. */
const PR_WITH_SECRETS = ["pull_request_target", "workflow_run"];
const runsPullRequestCode = (wf: Workflow) => triggers(wf).includes("pull_request");
const needsOf = (job: Job) => (job.needs === undefined ? [] : [job.needs].flat());
const environmentOf = (job: Job) =>
    typeof job.environment === "object" ? job.environment.name : job.environment;
const stepsOf = (job: Job) => job.steps ?? [];
const runsOf = (job: Job) => stepsOf(job).flatMap((s) => (s.run ? [s.run] : []));
/** The job's environment variables as its steps see them: the workflow's, the job's, then the step's. */
const envOf = (wf: Workflow, job: Job, step?: Step) => ({ ...wf.env, ...job.env, ...step?.env });
/** Every secret a job can read: named anywhere in the job, or in the workflow's env, which every job gets. */
function secretsOf(
    wf: Workflow,
    job: Job,
): { names: string[]; dynamic: boolean; inherit: boolean } {
    const text = JSON.stringify([wf.env ?? {}, job]);
    return {
        names: [
            ...new Set([...text.matchAll(/secrets\.([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1])),
        ],
        dynamic: /secrets\s*\[/.test(text),
        inherit: job.secrets === "inherit",
    };
}
const writes = (p: Permissions) =>
    p === "write-all" || (typeof p === "object" && Object.values(p).some((v) => v === "write"));
/** The permissions a job's token has: its own, else the workflow's. */
const permissionsOf = (wf: Workflow, job: Job) => job.permissions ?? wf.permissions;
/** A reusable workflow of this repository that a job calls. */
const calledWorkflow = (job: Job) =>
    job.uses?.startsWith("./.github/workflows/") ? workflow(path.basename(job.uses)) : undefined;
/** Every job a job waits for, directly or through others. */
function upstream(wf: Workflow, name: string, seen = new Set<string>()): Set<string> {
    for (const need of needsOf(wf.jobs[name])) {
        if (seen.has(need)) continue;
        seen.add(need);
        upstream(wf, need, seen);
    }
    return seen;
}
const jobsRunning = (wf: Workflow, command: RegExp) =>
    Object.entries(wf.jobs).filter(([, job]) => runsOf(job).some((r) => command.test(r)));

/** Runs a step's script as the runner does (bash -e), in `cwd`, with only the given environment added. */
function runScript(script: string, cwd: string, env: Record<string, string>) {
    return spawnSync("bash", ["-e", "-o", "pipefail", "-c", script], {
        cwd,
        encoding: "utf8",
        env: { ...process.env, ...env },
    });
}
/** The env a step gets, with every `${{ }}` replaced by what the test says it evaluates to (unset if not given). */
function literalEnv(
    wf: Workflow,
    job: Job,
    step: Step,
    values: Record<string, string>,
): Record<string, string> {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(envOf(wf, job, step))) {
        if (k in values) env[k] = values[k];
        else if (!String(v).includes("${{")) env[k] = String(v);
    }
    return { ...env, ...Object.fromEntries(Object.entries(values).filter(([k]) => !(k in env))) };
}
const git = (cwd: string, ...args: string[]) => {
    const r = spawnSync("git", args, { cwd, encoding: "utf8" });
    assert.equal(r.status, 0, `git ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
};

const dirs = tempDirs();

describe("GitHub workflow files", () => {
    it("pin every action by its full commit, with the release it is in a comment", () => {
        const problems: string[] = [];
        const commits = new Map<string, Set<string>>();
        const files = [
            ...workflowFiles.map((f) => path.join(WORKFLOWS, f)),
            ...fs
                .readdirSync(path.join(GITHUB, "actions"))
                .map((a) => path.join(GITHUB, "actions", a, "action.yml")),
        ];
        for (const file of files) {
            visit(parseDocument(fs.readFileSync(file, "utf8")), {
                Pair(_, pair) {
                    if (!isScalar(pair.key) || pair.key.value !== "uses" || !isScalar(pair.value))
                        return;
                    const uses = String(pair.value.value);
                    if (uses.startsWith("./")) return; // this repository's own, at the same commit
                    const where = `${path.relative(PROJECT_ROOT, file)}: ${uses}`;
                    const m = uses.match(/^([\w.-]+\/[\w./-]+)@([0-9a-f]{40})$/);
                    if (!m) return void problems.push(`${where} is not pinned by a 40-hex commit`);
                    if (!/^\s*v\d+(\.\d+)*\b/.test(pair.value.comment ?? ""))
                        problems.push(`${where} has no "# vX.Y.Z" comment naming its release`);
                    commits.set(m[1], (commits.get(m[1]) ?? new Set()).add(m[2]));
                },
            });
        }
        for (const [action, shas] of commits)
            if (shas.size > 1) problems.push(`${action} is pinned at ${shas.size} commits`);
        assert.deepEqual(problems, []);
    });

    it("give a pull request's code no deploy secret, no environment but the preview one, and never run it with secrets", () => {
        const problems: string[] = [];
        for (const [file, wf] of Object.entries(workflows)) {
            for (const event of PR_WITH_SECRETS)
                if (triggers(wf).includes(event))
                    problems.push(
                        `${file} runs on ${event}, which gives secrets to PR-controlled code`,
                    );
        }
        const check = (file: string, wf: Workflow, seen: Set<string>) => {
            for (const [name, job] of Object.entries(wf.jobs)) {
                const where = `${file} job ${name}`;
                const secrets = secretsOf(wf, job);
                const deploySecrets = secrets.names.filter((s) => !PREVIEW_SECRETS.has(s));
                if (deploySecrets.length)
                    problems.push(`${where} reads ${deploySecrets.join(", ")}`);
                if (secrets.dynamic) problems.push(`${where} picks a secret by a computed name`);
                if (secrets.inherit) problems.push(`${where} passes every secret on (inherit)`);
                const env = environmentOf(job);
                if (env !== undefined && env !== PREVIEW_ENVIRONMENT)
                    problems.push(`${where} runs in environment ${env}`);
                const called = calledWorkflow(job);
                if (called && !seen.has(job.uses!)) {
                    seen.add(job.uses!);
                    check(path.basename(job.uses!), called, seen);
                }
            }
        };
        const prWorkflows = Object.entries(workflows).filter(([, wf]) => runsPullRequestCode(wf));
        for (const file of ["preview.yml", "test.yml"])
            if (!prWorkflows.some(([f]) => f === file))
                problems.push(`${file} does not run on pull requests`);
        for (const [file, wf] of prWorkflows) check(file, wf, new Set());
        // The previews hold the preview identities, never the deploy ones.
        for (const [name, job] of Object.entries(workflow("preview.yml").jobs)) {
            if (environmentOf(job) !== PREVIEW_ENVIRONMENT) continue;
            const env = envOf(workflow("preview.yml"), job);
            for (const key of ["AWS_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_ID"])
                if (!/secrets\.PREVIEW_/.test(env[key] ?? ""))
                    problems.push(`preview.yml job ${name}: ${key} is not a PREVIEW_ identity`);
        }
        assert.deepEqual(problems, []);
    });

    it("post the pull-request comment from a job that runs none of the change's code and sees no secret", () => {
        const problems: string[] = [];
        for (const [file, wf] of Object.entries(workflows).filter(([, w]) =>
            runsPullRequestCode(w),
        )) {
            for (const [name, job] of Object.entries(wf.jobs)) {
                if (!writes(permissionsOf(wf, job))) continue;
                const where = `${file} job ${name} may write`;
                if (secretsOf(wf, job).names.length) problems.push(`${where} and reads secrets`);
                if (runsOf(job).length) problems.push(`${where} and runs scripts`);
                for (const s of stepsOf(job))
                    if (s.uses?.startsWith("./") || s.uses?.startsWith("actions/checkout@"))
                        problems.push(`${where} and uses ${s.uses}`);
                if (job.uses) problems.push(`${where} and calls ${job.uses}`);
            }
        }
        assert.deepEqual(problems, []);
        const preview = workflow("preview.yml");
        const writers = Object.values(preview.jobs).filter((j) =>
            writes(permissionsOf(preview, j)),
        );
        assert.deepEqual(
            writers.map((j) => j.permissions),
            [{ "pull-requests": "write" }],
            "one job of preview.yml writes, and only to the pull request",
        );
    });

    it("name every job's permissions, and never give one job both a secret and a write token", () => {
        const problems: string[] = [];
        for (const [file, wf] of Object.entries(workflows)) {
            const top = wf.permissions;
            const topMinimal =
                typeof top === "object" && Object.values(top).every((v) => v !== "write");
            for (const [name, job] of Object.entries(wf.jobs)) {
                const where = `${file} job ${name}`;
                if (job.permissions === undefined && !topMinimal)
                    problems.push(
                        `${where} names no permissions (nor does the workflow, read-only)`,
                    );
                const p = permissionsOf(wf, job);
                if (typeof p === "string") problems.push(`${where} has permissions ${p}`);
                if (writes(p) && secretsOf(wf, job).names.length)
                    problems.push(`${where} holds a write token and secrets`);
            }
        }
        assert.deepEqual(problems, []);
    });

    it("keep secrets out of the workflows' env and `${{ }}` out of scripts, so each job holds only its own", () => {
        const problems: string[] = [];
        for (const [file, wf] of Object.entries(workflows)) {
            if (secretsOf(wf, {}).names.length)
                problems.push(`${file} puts secrets in every job's env`);
            for (const [name, job] of Object.entries(wf.jobs))
                for (const run of runsOf(job))
                    if (run.includes("${{"))
                        problems.push(`${file} job ${name}: ${run.split("\n")[0]}`);
        }
        for (const step of setupAction.runs.steps)
            if (step.run?.includes("${{"))
                problems.push(`setup action: ${step.run.split("\n")[0]}`);
        assert.deepEqual(problems, [], "expressions go through env: a value is never read as code");
    });

    it("deploy updates no stack before the test suite passed, and dev, staging, prod each after the one before", () => {
        const deploy = workflow("deploy.yml");
        const tests = Object.entries(deploy.jobs)
            .filter(([, job]) => job.uses === "./.github/workflows/test.yml")
            .map(([name]) => name);
        assert.equal(tests.length, 1, "deploy.yml calls test.yml");
        const ups = jobsRunning(deploy, /npm run pulumi -- up\b/);
        assert.deepEqual(ups.map(([, job]) => environmentOf(job)).sort(), [...STACKS].sort());
        const jobOf = Object.fromEntries(ups.map(([name, job]) => [environmentOf(job)!, name]));
        for (const [name] of ups)
            assert.ok(upstream(deploy, name).has(tests[0]), `${name} waits for the tests`);
        assert.ok(upstream(deploy, jobOf.staging).has(jobOf.dev), "staging after dev");
        assert.ok(upstream(deploy, jobOf.prod).has(jobOf.staging), "prod after staging");
        for (const [name, job] of ups) {
            assert.equal(job.if, undefined, `${name} runs only when what it needs succeeded`);
            const env = envOf(deploy, job);
            assert.equal(env.STACK, environmentOf(job), `${name} updates its environment's stack`);
            assert.ok(
                runsOf(job).some((r) => r.includes('--stack "$STACK"')),
                `${name} names its stack`,
            );
        }
    });

    it("test.yml runs the README's test command on pull requests, pushes and for deploy, holding no secret", () => {
        const test = workflow("test.yml");
        for (const event of ["pull_request", "push", "workflow_call"])
            assert.ok(triggers(test).includes(event), `test.yml runs on ${event}`);
        const jobs = Object.entries(test.jobs);
        assert.ok(jobs.every(([, job]) => !secretsOf(test, job).names.length));
        assert.ok(jobs.every(([, job]) => environmentOf(job) === undefined));
        const runners = jobsRunning(test, /^bash \.ci\/run$/m);
        assert.equal(runners.length, 1, "one job runs .ci/run");
        // .ci/run is the README's command: run it with an npm that only records what it was asked.
        const bin = dirs.make("asm-ci-npm-");
        fs.writeFileSync(path.join(bin, "npm"), '#!/bin/sh\necho "npm $*" > "$RECORD"\n', {
            mode: 0o755,
        });
        const record = path.join(bin, "record");
        const r = runScript("bash .ci/run", PROJECT_ROOT, {
            PATH: `${bin}:${process.env.PATH}`,
            RECORD: record,
        });
        assert.equal(r.status, 0, r.stderr);
        assert.equal(fs.readFileSync(record, "utf8").trim(), "npm test");
    });

    it("take each job's passphrase from its own stack's secret, in that stack's environment (or the preview one)", () => {
        const problems: string[] = [];
        for (const [file, wf] of Object.entries(workflows)) {
            for (const [name, job] of Object.entries(wf.jobs)) {
                const where = `${file} job ${name}`;
                const env = envOf(wf, job);
                const secrets = secretsOf(wf, job).names;
                if (secrets.includes("PULUMI_CONFIG_PASSPHRASE"))
                    problems.push(`${where} reads the shared PULUMI_CONFIG_PASSPHRASE`);
                const passphrases = secrets.filter((s) => s.startsWith("PULUMI_CONFIG_PASSPHRASE"));
                const environment = environmentOf(job);
                if (passphrases.length && environment === undefined)
                    problems.push(`${where} reads a passphrase outside an environment`);
                // Named per stack: the value of PULUMI_CONFIG_PASSPHRASE_X is always X's secret.
                for (const [k, v] of Object.entries(env))
                    if (/^PULUMI_CONFIG_PASSPHRASE_/.test(k) && v !== secretRef(k))
                        problems.push(`${where}: ${k} is ${v}`);
                if (!("PULUMI_CONFIG_PASSPHRASE" in env)) continue;
                // The stack the job writes (deploy, promote) is its environment's; a preview names its stack.
                const stack = env.TO ?? env.STACK;
                if (!stack) problems.push(`${where} sets a passphrase but names no stack`);
                else if (environment !== PREVIEW_ENVIRONMENT && environment !== stack)
                    problems.push(`${where} works on ${stack} in environment ${environment}`);
                else if (env.PULUMI_CONFIG_PASSPHRASE !== secretRef(passphraseSecret(stack)))
                    problems.push(
                        `${where}: the passphrase of ${stack} is ${env.PULUMI_CONFIG_PASSPHRASE}`,
                    );
                if (
                    env.FROM &&
                    env[passphraseSecret(env.FROM)] !== secretRef(passphraseSecret(env.FROM))
                )
                    problems.push(`${where} reads ${env.FROM} without ${env.FROM}'s passphrase`);
            }
        }
        // Each environment is named as itself (a computed name would hide which secrets a job gets).
        const environments = Object.values(workflows).flatMap((wf) =>
            Object.values(wf.jobs).flatMap((job) => environmentOf(job) ?? []),
        );
        for (const env of new Set(environments))
            if (![...STACKS, PREVIEW_ENVIRONMENT].includes(env))
                problems.push(`a job runs in environment ${env}`);
        assert.deepEqual(problems, []);
    });

    describe("promote", () => {
        const promote = workflow("promote.yml");
        const promotions = jobsRunning(promote, /npm run promote\b/);
        const prJobs = jobsRunning(promote, /\bgh pr create\b/);
        const recordStep = (job: Job) => {
            const steps = stepsOf(job);
            const at = steps.findIndex((s) => /npm run promote\b/.test(s.run ?? ""));
            const after = steps.slice(at + 1).filter((s) => s.if === "always()" && s.id);
            assert.equal(after.length, 1, "one step after the promotion runs whatever happened");
            return after[0];
        };
        /** A clone of a bare "origin" holding main with the stack files, for the steps to work in. */
        const repo = () => {
            const root = dirs.make("asm-promote-");
            const origin = path.join(root, "origin.git");
            git(root, "init", "-q", "--bare", "-b", "main", origin);
            const work = path.join(root, "work");
            git(root, "clone", "-q", origin, work);
            git(work, "symbolic-ref", "HEAD", "refs/heads/main");
            for (const f of ["Pulumi.dev.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml"])
                fs.copyFileSync(path.join(PROJECT_ROOT, f), path.join(work, f));
            git(work, "add", ".");
            git(work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "stacks");
            git(work, "push", "-q", "origin", "main");
            return { origin, work };
        };
        const rewrite = (file: string) =>
            fs.readFileSync(file, "utf8").replace(/v2Weight: \d+/, "v2Weight: 40");

        it("is dev to staging, or staging to prod, each in the target's environment", () => {
            assert.deepEqual(
                promotions.map(([, job]) => [envOf(promote, job).FROM, envOf(promote, job).TO]),
                [
                    ["dev", "staging"],
                    ["staging", "prod"],
                ],
            );
            for (const [, job] of promotions)
                assert.equal(environmentOf(job), envOf(promote, job).TO);
        });

        it("hands an applied stack file on, and fails a preview that left one changed", () => {
            for (const [name, job] of promotions) {
                const step = recordStep(job);
                const to = envOf(promote, job).TO;
                for (const [apply, changed] of [
                    ["true", true],
                    ["false", true],
                    ["true", false],
                    ["false", false],
                ] as const) {
                    const { work } = repo();
                    const file = path.join(work, `Pulumi.${to}.yaml`);
                    const promoted = rewrite(file);
                    if (changed) fs.writeFileSync(file, promoted);
                    const output = path.join(work, "..", "output");
                    fs.writeFileSync(output, "");
                    const r = runScript(
                        step.run!,
                        work,
                        literalEnv(promote, job, step, { APPLY: apply, GITHUB_OUTPUT: output }),
                    );
                    const out = fs.readFileSync(output, "utf8");
                    const what = `${name}, apply ${apply}, file ${changed ? "changed" : "unchanged"}`;
                    if (changed && apply === "false") {
                        assert.notEqual(r.status, 0, `${what}: must fail`);
                    } else {
                        assert.equal(r.status, 0, `${what}: ${r.stderr}`);
                        const handed = out.match(/^stack-file=(.*)$/m)?.[1];
                        assert.equal(
                            handed && Buffer.from(handed, "base64").toString("utf8"),
                            changed ? promoted : undefined,
                            what,
                        );
                    }
                    assert.equal(
                        job.outputs?.["stack-file"],
                        `\${{ steps.${step.id}.outputs.stack-file }}`,
                    );
                }
            }
        });

        it("commits the stack file on a promote/ branch and opens a pull request, from the only job that may write", () => {
            assert.equal(prJobs.length, 1, "one job opens the pull request");
            const [prName, prJob] = prJobs[0];
            for (const [name, job] of Object.entries(promote.jobs))
                assert.equal(
                    writes(permissionsOf(promote, job)),
                    name === prName,
                    `${name}: only the pull-request job may write`,
                );
            assert.deepEqual(prJob.permissions, { contents: "write", "pull-requests": "write" });
            for (const [name] of promotions)
                assert.ok(needsOf(prJob).includes(name), `the pull request waits for ${name}`);
            for (const [name, job] of promotions)
                assert.ok(
                    (prJob.env?.STACK_FILE ?? "").includes(`needs.${name}.outputs.stack-file`) ||
                        JSON.stringify(prJob).includes(`needs.${name}.outputs.stack-file`),
                    `the pull request takes ${name}'s stack file (${environmentOf(job)})`,
                );

            const step = stepsOf(prJob).find((s) => /\bgh pr create\b/.test(s.run ?? ""))!;
            for (const promotion of ["dev-to-staging", "staging-to-prod"]) {
                const [from, to] = promotion.split("-to-");
                const { origin, work } = repo();
                const file = `Pulumi.${to}.yaml`;
                const promoted = rewrite(path.join(work, file));
                const bin = dirs.make("asm-gh-");
                fs.writeFileSync(
                    path.join(bin, "gh"),
                    '#!/bin/sh\nprintf "%s\\n" "$@" > "$GH_RECORD"\n',
                    { mode: 0o755 },
                );
                const record = path.join(bin, "record");
                const r = runScript(
                    step.run!,
                    work,
                    literalEnv(promote, prJob, step, {
                        PROMOTION: promotion,
                        STACK_FILE: Buffer.from(promoted).toString("base64"),
                        GH_TOKEN: "token",
                        GITHUB_RUN_ID: "4242",
                        GITHUB_REF_NAME: "main",
                        GITHUB_SERVER_URL: "https://github.example",
                        GITHUB_REPOSITORY: "o/r",
                        GH_RECORD: record,
                        PATH: `${bin}:${process.env.PATH}`,
                    }),
                );
                assert.equal(r.status, 0, r.stderr);
                const branch = `promote/${from}-to-${to}-4242`;
                assert.equal(git(origin, "show", `${branch}:${file}`), promoted);
                assert.equal(git(origin, "diff", "--name-only", "main", branch).trim(), file);
                assert.equal(git(work, "status", "--porcelain"), "", "nothing left uncommitted");
                const args = fs.readFileSync(record, "utf8").split("\n");
                assert.deepEqual(args.slice(0, 2), ["pr", "create"]);
                assert.equal(args[args.indexOf("--base") + 1], "main");
                assert.equal(args[args.indexOf("--head") + 1], branch);
            }
        });
    });

    it("apply only through `pulumi up` with the pack and its preview, which stops a mandatory violation before any change", () => {
        const ups = Object.entries(workflows).flatMap(([file, wf]) =>
            Object.entries(wf.jobs).flatMap(([name, job]) =>
                runsOf(job)
                    .filter((run) => /\bnpm run pulumi -- up\b/.test(run))
                    .map((run) => ({ where: `${file} job ${name}`, run })),
            ),
        );
        assert.ok(ups.length >= 3, "deploy applies dev, staging and prod");
        for (const { where, run } of ups) {
            assert.doesNotMatch(run, /--skip-preview|(^|\s)-f(\s|$)/, `${where} skips the preview`);
            assert.match(run, /--policy-pack policy\b/, `${where} applies without the pack`);
        }
    });

    it("start the engine only through the project's npm scripts, after the one shared setup", () => {
        const scripts = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, "package.json"), "utf8"))
            .scripts as Record<string, string>;
        const problems: string[] = [];
        for (const [file, wf] of Object.entries(workflows)) {
            for (const [name, job] of Object.entries(wf.jobs)) {
                const where = `${file} job ${name}`;
                for (const run of runsOf(job)) {
                    for (const m of run.matchAll(/\bnpm run (\S+)/g))
                        if (!(m[1] in scripts))
                            problems.push(`${where}: npm run ${m[1]} is no script`);
                    if (/(^|[;&|]\s*)pulumi\s/m.test(run))
                        problems.push(`${where} runs pulumi itself, not npm run pulumi`);
                }
                const uses = stepsOf(job).map((s) => s.uses ?? "");
                if (runsOf(job).some((r) => /\bnpm run\b/.test(r))) {
                    const checkout = uses.findIndex((u) => u.startsWith("actions/checkout@"));
                    const setup = uses.indexOf("./.github/actions/setup");
                    if (!(checkout >= 0 && setup > checkout))
                        problems.push(`${where} runs npm without checkout, then the setup`);
                }
                for (const u of uses)
                    if (/^(actions\/setup-node|pulumi\/actions)@/.test(u))
                        problems.push(`${where} repeats the setup (${u})`);
                if (file !== "test.yml" && uses.some((u) => u.startsWith("actions/setup-go@")))
                    problems.push(
                        `${where} sets up Go: only the tests build the offline toolchain`,
                    );
            }
        }
        assert.deepEqual(problems, []);
    });

    it("set up the pinned CLI and provider from toolchain.versions, restating no version", () => {
        const steps = setupAction.runs.steps;
        const pins = steps.find((s) => s.run?.includes("toolchain.versions"));
        assert.ok(pins?.id, "a step reads the pins");
        // Run it against the project's toolchain.versions: it outputs exactly the CLI's and the provider's pins.
        const dir = dirs.make("asm-pins-");
        fs.copyFileSync(
            path.join(PROJECT_ROOT, "toolchain.versions"),
            path.join(dir, "toolchain.versions"),
        );
        const output = path.join(dir, "output");
        const r = runScript(pins.run!, dir, { GITHUB_OUTPUT: output });
        assert.equal(r.status, 0, r.stderr);
        const versions = fs.readFileSync(path.join(PROJECT_ROOT, "toolchain.versions"), "utf8");
        const pin = (name: string) =>
            versions.match(new RegExp(`^${name}=(\\d+\\.\\d+\\.\\d+)$`, "m"))?.[1];
        assert.deepEqual(
            fs.readFileSync(output, "utf8").trim().split("\n").sort(),
            [
                `KUBERNETES_PROVIDER_VERSION=${pin("KUBERNETES_PROVIDER_VERSION")}`,
                `PULUMI_VERSION=${pin("PULUMI_VERSION")}`,
            ].sort(),
        );
        const fromPins = (name: string) => `\${{ steps.${pins.id}.outputs.${name} }}`;
        const cli = steps.find((s) => s.uses?.startsWith("pulumi/actions@"));
        assert.equal(cli?.with?.["pulumi-version"], fromPins("PULUMI_VERSION"));
        const plugin = steps.find((s) =>
            /pulumi plugin install resource kubernetes/.test(s.run ?? ""),
        );
        assert.equal(
            plugin?.env?.KUBERNETES_PROVIDER_VERSION,
            fromPins("KUBERNETES_PROVIDER_VERSION"),
        );
        assert.match(
            plugin!.run!,
            /pulumi plugin install resource kubernetes "\$KUBERNETES_PROVIDER_VERSION"/,
        );
        const values = JSON.stringify(setupAction);
        assert.doesNotMatch(values, /\d+\.\d+\.\d+/, "no version restated (comments aside)");
        assert.doesNotMatch(values, /setup-go|go build|go-version/, "the setup builds nothing");
    });
});
