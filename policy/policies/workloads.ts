import type { ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";
import { TYPE_TOKENS, VERSIONS, imagePinProblem, sameResourceType } from "../../components/model";
import {
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
    /** The weight now live, passed by the rollout tools; without it the step cannot be judged. */
    previousV2Weight?: number;
}

export const maxWeightStep: ResourceValidationPolicy = {
    name: "max-weight-step",
    description: "One update moves the canary weight by at most maxWeightStep percentage points.",
    enforcementLevel: "advisory",
    configSchema: {
        properties: {
            maxWeightStep: { type: "integer", minimum: 1, maximum: 100, default: 50 },
            previousV2Weight: { type: "integer", minimum: 0, maximum: 100 },
        },
    },
    validateResource: (args, reportViolation) => {
        if (!sameResourceType(args.type, TYPE_TOKENS.virtualService)) return;
        const { maxWeightStep: limit, previousV2Weight } = args.getConfig<WeightStepConfig>();
        if (previousV2Weight === undefined) return;
        for (const route of tcpRoutes(args)) {
            const canary = (route.route ?? []).find(
                (r) => r.destination?.subset === VERSIONS.canary.subset,
            );
            if (!canary || typeof canary.weight !== "number") continue;
            const step = Math.abs(canary.weight - previousV2Weight);
            if (step > limit) {
                reportViolation(
                    `VirtualService ${metaName(args)}: ${VERSIONS.canary.subset} weight moves ${previousV2Weight} -> ${canary.weight} (${step} points); the largest allowed step is ${limit}.`,
                );
            }
        }
    },
};
