import type { ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";
import { TYPE_TOKENS, VERSIONS, imagePinProblem, sameResourceType } from "../../components/model";
import { StateResource, checkpointResources, currentBackend } from "../../tools/state/stackState";
import {
    Inspected,
    containers,
    isType,
    metaName,
    metaNamespace,
    qualifyHost,
    stackOf,
    tcpRoutes,
} from "./resources";

export const imagesPinned: ResourceValidationPolicy = {
    name: "images-pinned",
    description: "Container images carry a version tag other than latest, or a sha256 digest.",
    enforcementLevel: "mandatory",
    validateResource: (args, reportViolation) => {
        if (!sameResourceType(args.type, TYPE_TOKENS.deployment)) return;
        for (const c of containers(args)) {
            const problem = c.image ? imagePinProblem(c.image) : "is empty";
            if (problem)
                reportViolation(
                    `Deployment ${metaName(args)}, container ${c.name}: image ${JSON.stringify(c.image)} ${problem}.`,
                );
        }
    },
};

export const resourcesSet: ResourceValidationPolicy = {
    name: "resources-set",
    description: "Containers declare CPU and memory requests and limits.",
    enforcementLevel: "advisory",
    validateResource: (args, reportViolation) => {
        if (!sameResourceType(args.type, TYPE_TOKENS.deployment)) return;
        for (const c of containers(args)) {
            const missing = ["requests", "limits"].flatMap((kind) =>
                ["cpu", "memory"]
                    .filter((r) => !c.resources?.[kind]?.[r])
                    .map((r) => `${kind}.${r}`),
            );
            if (missing.length > 0)
                reportViolation(
                    `Deployment ${metaName(args)}, container ${c.name}: no ${missing.join(", ")}.`,
                );
        }
    },
};

export interface ProductionReplicasConfig {
    /** Stacks whose name matches this regular expression count as production. */
    productionStackPattern: string;
    minReplicas: number;
}

export const productionReplicas: ResourceValidationPolicy = {
    name: "production-replicas",
    description: "Production stacks run at least two replicas of each version.",
    enforcementLevel: "advisory",
    configSchema: {
        properties: {
            productionStackPattern: { type: "string", default: "^prod" },
            minReplicas: { type: "integer", minimum: 1, default: 2 },
        },
    },
    validateResource: (args, reportViolation) => {
        if (!sameResourceType(args.type, TYPE_TOKENS.deployment)) return;
        const { productionStackPattern, minReplicas } = args.getConfig<ProductionReplicasConfig>();
        if (!new RegExp(productionStackPattern).test(stackOf(args.urn))) return;
        const replicas = args.props?.spec?.replicas ?? 1;
        if (replicas < minReplicas) {
            reportViolation(
                `Deployment ${metaName(args)} runs ${replicas} replica(s) in production stack ${stackOf(args.urn)}; at least ${minReplicas} keep a version available during node drains.`,
            );
        }
    },
};

const ISTIO_PROTOCOLS = [
    "tcp",
    "http",
    "http2",
    "https",
    "grpc",
    "grpc-web",
    "mongo",
    "mysql",
    "redis",
    "tls",
    "udp",
];

export const istioPortNames: ResourceValidationPolicy = {
    name: "istio-port-names",
    description:
        "Service ports are named <protocol> or <protocol>-<suffix> (or set appProtocol) so Istio does not sniff TCP.",
    enforcementLevel: "advisory",
    validateResource: (args, reportViolation) => {
        if (!sameResourceType(args.type, TYPE_TOKENS.service)) return;
        for (const p of args.props?.spec?.ports ?? []) {
            const name: string = p.name ?? "";
            const ok =
                p.appProtocol ||
                ISTIO_PROTOCOLS.some((proto) => name === proto || name.startsWith(`${proto}-`));
            if (!ok)
                reportViolation(
                    `Service ${metaName(args)}: port ${p.port} is named ${JSON.stringify(name)}; name it "tcp" or "tcp-<suffix>".`,
                );
        }
    },
};

export const destinationPortSet: StackValidationPolicy = {
    name: "destination-port-set",
    description: "Route destinations name a port when their Service has several.",
    enforcementLevel: "advisory",
    validateStack: (args, reportViolation) => {
        const portCounts = new Map<string, number>();
        for (const svc of args.resources.filter(isType(TYPE_TOKENS.service))) {
            portCounts.set(
                qualifyHost(metaName(svc) ?? "", metaNamespace(svc)),
                (svc.props?.spec?.ports ?? []).length,
            );
        }
        for (const vs of args.resources.filter(isType(TYPE_TOKENS.virtualService))) {
            for (const route of tcpRoutes(vs)) {
                for (const { destination } of route.route ?? []) {
                    if (!destination || destination.port !== undefined) continue;
                    const count =
                        portCounts.get(qualifyHost(destination.host, metaNamespace(vs))) ?? 0;
                    if (count > 1)
                        reportViolation(
                            `VirtualService ${metaName(vs)}: destination ${destination.host} has ${count} ports; set destination.port.number.`,
                            vs.urn,
                        );
                }
            }
        }
    },
};

export interface WeightStepConfig {
    /** Largest change of the v2 weight in one update. */
    maxWeightStep: number;
}

/**
 * The step is judged against the weight the stack serves now, read from the stack's own last checkpoint (see
 * `servedCanaryWeights`), so it holds for every update that runs the pack, whatever started it: no tool has to pass
 * the previous weight, and a value it could get wrong (or leave out) is not asked for. A resource policy on the
 * VirtualService, not a stack policy, so that it stops the update before the route is written even when the update
 * skips its preview (the deploy workflow's `up --skip-preview`).
 */
export const maxWeightStep: ResourceValidationPolicy = {
    name: "max-weight-step",
    description:
        "One update moves the canary weight by at most maxWeightStep percentage points from the weight the stack serves now.",
    enforcementLevel: "advisory",
    configSchema: {
        properties: {
            maxWeightStep: { type: "integer", minimum: 1, maximum: 100, default: 50 },
        },
    },
    validateResource: async (args, reportViolation) => {
        if (!sameResourceType(args.type, TYPE_TOKENS.virtualService)) return;
        const { maxWeightStep: limit } = args.getConfig<WeightStepConfig>();
        const next = canaryWeights(args);
        if (next.every((w) => w === undefined)) return;
        let served: (number | undefined)[];
        try {
            served = await servedCanaryWeights(args);
        } catch (err) {
            // Unknown is not "no step": where the limit is mandatory, an update it cannot judge does not pass.
            reportViolation(
                `VirtualService ${metaName(args)}: the ${VERSIONS.canary.subset} weight the stack serves now is unknown, so the step to ${next.find((w) => w !== undefined)} cannot be judged: ${(err as Error).message}`,
            );
            return;
        }
        for (const [i, weight] of next.entries()) {
            if (weight === undefined) continue;
            // A route the stack does not serve yet (a first deploy) sends nothing to the canary.
            const previous = served[i] ?? 0;
            const step = Math.abs(weight - previous);
            if (step > limit) {
                reportViolation(
                    `VirtualService ${metaName(args)}: ${VERSIONS.canary.subset} weight moves ${previous} -> ${weight} (${step} points); the largest allowed step is ${limit}. ` +
                        `Move in steps, e.g. \`npm run shift -- --stack ${stackOf(args.urn)} --steps ${stepsBetween(previous, weight, limit).join(",")}\`.`,
                );
            }
        }
    },
};

/** The canary's weight in each TCP route (undefined where a route has none). */
function canaryWeights(vs: Inspected): (number | undefined)[] {
    return tcpRoutes(vs).map((route) => {
        const canary = (route.route ?? []).find(
            (r) => r.destination?.subset === VERSIONS.canary.subset,
        );
        return typeof canary?.weight === "number" ? canary.weight : undefined;
    });
}

/** Weights from `from` to `to`, each at most `limit` from the one before. */
export function stepsBetween(from: number, to: number, limit: number): number[] {
    const steps: number[] = [];
    for (let at = from; at !== to;) {
        at = to > at ? Math.min(to, at + limit) : Math.max(to, at - limit);
        steps.push(at);
    }
    return steps;
}

/**
 * The canary weight of each TCP route of this VirtualService as the stack's last checkpoint records it: the same
 * resource (by URN, else the same object at another Istio API version), its outputs being what the last update
 * wrote. No such resource (a first deploy, or after a destroy): no route, so every step counts from 0.
 */
export async function servedCanaryWeights(vs: Inspected): Promise<(number | undefined)[]> {
    const backend = currentBackend();
    if (backend.kind === "none")
        throw new Error(
            "no state backend is configured (PULUMI_BACKEND_URL, Pulumi.yaml backend.url or `pulumi login`)",
        );
    if (backend.kind === "other")
        throw new Error(
            `the pack reads the state of file:// and s3:// backends, not ${backend.url.split("?")[0]}`,
        );
    const [, project] = vs.urn.split("::");
    const resources = (await checkpointResources(backend.store, project, stackOf(vs.urn))).filter(
        (r) => !r.delete && sameResourceType(r.type, TYPE_TOKENS.virtualService),
    );
    const props = (r: StateResource) => r.outputs ?? r.inputs ?? {};
    const served =
        resources.find((r) => r.urn === vs.urn) ??
        resources.find(
            (r) =>
                metaName({ ...r, props: props(r) }) === metaName(vs) &&
                metaNamespace({ ...r, props: props(r) }) === metaNamespace(vs),
        );
    return served ? canaryWeights({ ...served, props: props(served) }) : [];
}
