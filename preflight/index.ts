/**
 * Checks the stack makes against its target before it registers a single resource, so that a refusal changes
 * nothing: every object it would create is free or already this stack's; an existing gateway it routes through
 * exposes the port; the mesh serves the chosen Istio API; a reused CLB was not made by a cluster.
 * All problems are reported together, each naming the config key that resolves it.
 */
import {
    CLB_TAGS,
    INGRESS_GATEWAY_NAMESPACE,
    ISTIO_NETWORKING_GROUP,
    OWNER_ANNOTATION,
    asmGatewayDefaultPodLabels,
} from "../components/model";
import { ConfigProblem, StackRefusedError } from "../config";
import { IstioGatewayStatus } from "../components/istioTypes";
import { statusAddress } from "../components/asmIngressGateway";
import { KubeApi } from "./kubeApi";
import { PlannedObject, PreflightInput, plannedIstioGateway, plannedObjects } from "./planned";

export * from "./kubeApi";
export * from "./planned";
export * from "./access";

export type PreflightProblem = ConfigProblem;

/** The target refused the stack; nothing was changed. */
export class PreflightError extends StackRefusedError {
    constructor(problems: readonly PreflightProblem[]) {
        super("The target refuses this stack", problems);
        this.name = "PreflightError";
    }
}

export interface PreflightApis {
    /** ACK: Deployments and the Service. */
    dataPlane: KubeApi;
    /** ASM: Istio objects and the IstioGateway. */
    controlPlane: KubeApi;
}

/** What the preflight learnt of an IstioGateway the stack routes through but does not own. */
export interface ExistingGateway {
    podSelector: Record<string, string>;
    address?: string;
}

function takeoverMessage(
    object: PlannedObject,
    api: KubeApi,
    found: string | undefined,
    owner: string,
): string {
    const how =
        object.kind === "IstioGateway"
            ? "set asm.gatewayName to a name of this stack's own, or asm.useExistingGateway to true to route through that gateway without changing it"
            : "deploy into another namespace, or remove the object yourself if it is a leftover";
    return (
        `${object.kind} ${object.display} already exists on ${api.server} and this stack did not create it ` +
        `(annotation ${OWNER_ANNOTATION} is ${found === undefined ? "absent" : JSON.stringify(found)}; this stack is ${JSON.stringify(owner)}). ` +
        `The stack never takes over, changes or deletes an object it did not create: ${how}. ` +
        `If this stack did make it (before it stamped its objects), mark it with \`kubectl annotate ... ${OWNER_ANNOTATION}=${owner}\`.`
    );
}

async function ownershipProblems(
    input: PreflightInput,
    apis: PreflightApis,
    skipIstio: boolean,
): Promise<PreflightProblem[]> {
    const problems: PreflightProblem[] = [];
    const objects = plannedObjects(input).filter(
        (o) => !(skipIstio && o.path.includes(`/${ISTIO_NETWORKING_GROUP}/`)),
    );
    const answers = await Promise.all(objects.map((o) => apis[o.plane].get(o.path)));
    objects.forEach((object, i) => {
        const { status, body } = answers[i];
        if (status === 404) return;
        const api = apis[object.plane];
        if (status !== 200) {
            problems.push({
                key: object.renameKey,
                message:
                    `cannot tell whether ${object.kind} ${object.display} exists on ${api.server}: HTTP ${status} ${body?.message ?? ""}`.trim(),
            });
            return;
        }
        const stamp: string | undefined = body?.metadata?.annotations?.[OWNER_ANNOTATION];
        if (stamp !== input.owner)
            problems.push({
                key: object.renameKey,
                message: takeoverMessage(object, api, stamp, input.owner),
            });
    });
    return problems;
}

async function istioApiProblems(
    input: PreflightInput,
    controlPlane: KubeApi,
): Promise<PreflightProblem[]> {
    const { status, body } = await controlPlane.get(`/apis/${ISTIO_NETWORKING_GROUP}`);
    const chosen = `${ISTIO_NETWORKING_GROUP}/${input.istioApiVersion}`;
    if (status === 404) {
        return [
            {
                key: "istioApiVersion",
                message: `${controlPlane.server} serves no ${ISTIO_NETWORKING_GROUP} API at all; the control-plane kubeconfig must be the ASM instance's (or a cluster with Istio's CRDs)`,
            },
        ];
    }
    if (status !== 200)
        return [
            {
                key: "istioApiVersion",
                message: `cannot list the ${ISTIO_NETWORKING_GROUP} versions ${controlPlane.server} serves: HTTP ${status}`,
            },
        ];
    const served: string[] = (body?.versions ?? []).map((v: { version: string }) => v.version);
    if (served.includes(input.istioApiVersion)) return [];
    return [
        {
            key: "istioApiVersion",
            message:
                `the mesh at ${controlPlane.server} serves ${ISTIO_NETWORKING_GROUP} ${JSON.stringify(served)}, not ${input.istioApiVersion}. ` +
                `${chosen} exists from Istio 1.22, so it needs ASM 1.22 or later: upgrade the mesh, or set istioApiVersion to one it serves (${served.map((v) => `"${v}"`).join(", ")})`,
        },
    ];
}

async function existingGateway(
    input: PreflightInput,
    controlPlane: KubeApi,
): Promise<{ problems: PreflightProblem[]; gateway?: ExistingGateway }> {
    const display = `${INGRESS_GATEWAY_NAMESPACE}/${input.gatewayName}`;
    const { status, body } = await controlPlane.get(plannedIstioGateway(input.gatewayName).path);
    if (status === 404) {
        return {
            problems: [
                {
                    key: "asm.gatewayName",
                    message: `asm.useExistingGateway is true, but there is no IstioGateway ${display} on ${controlPlane.server}; name an existing gateway, or set asm.useExistingGateway to false to have the stack create one`,
                },
            ],
        };
    }
    if (status !== 200)
        return {
            problems: [
                {
                    key: "asm.gatewayName",
                    message: `cannot read IstioGateway ${display} on ${controlPlane.server}: HTTP ${status}`,
                },
            ],
        };
    if (body?.metadata?.annotations?.[OWNER_ANNOTATION] === input.owner) {
        // Routing "through" it would drop it from the program, and the next up would delete it.
        return {
            problems: [
                {
                    key: "asm.useExistingGateway",
                    message: `IstioGateway ${display} is this stack's own; keep asm.useExistingGateway false (switching would delete it), or choose another asm.gatewayName`,
                },
            ],
        };
    }
    const ports: number[] = (body?.spec?.ports ?? []).map((p: { port: number }) => p.port);
    if (!ports.includes(input.gatewayPort)) {
        return {
            problems: [
                {
                    key: "gatewayPort",
                    message: `the existing IstioGateway ${display} exposes ports ${JSON.stringify(ports)}, not ${input.gatewayPort}; the stack does not change a gateway it does not own: add the port to that gateway yourself, or set gatewayPort to one it exposes`,
                },
            ],
        };
    }
    const podLabels: Record<string, string> = body?.spec?.podLabels ?? {};
    // Without podLabels, ASM's own pod label `istio: <name>` is the one label that names this gateway.
    const podSelector =
        Object.keys(podLabels).length > 0
            ? podLabels
            : { istio: asmGatewayDefaultPodLabels(input.gatewayName).istio };
    return {
        problems: [],
        gateway: {
            podSelector,
            address: statusAddress(body?.status as IstioGatewayStatus | undefined),
        },
    };
}

/**
 * Runs every check against the live target; throws {@link PreflightError} with all problems. Returns what the
 * program needs of an existing gateway it routes through.
 */
/**
 * The namespaces the stack writes into must exist on the API server that will hold the objects: a Deployment or an
 * Istio object in a missing namespace is refused by the server, but only after the objects that come first (the
 * IstioGateway, a created CLB) were made. The stack does not create namespaces. Only a 404 counts: an identity that
 * may not read namespaces (a role scoped to Istio's resources) is not refused for it.
 */
async function namespaceProblems(
    input: PreflightInput,
    apis: PreflightApis,
): Promise<PreflightProblem[]> {
    const wanted: { plane: keyof PreflightApis; namespace: string; key: string; holds: string }[] =
        [
            {
                plane: "dataPlane",
                namespace: input.namespace,
                key: "namespace",
                holds: "the Deployments and the Service",
            },
            {
                plane: "controlPlane",
                namespace: input.namespace,
                key: "namespace",
                holds: "the Gateway, DestinationRule and VirtualService",
            },
            ...(input.useExistingGateway
                ? []
                : [
                      {
                          plane: "controlPlane" as const,
                          namespace: INGRESS_GATEWAY_NAMESPACE,
                          key: "asm.gatewayName",
                          holds: "the IstioGateway",
                      },
                  ]),
        ];
    const seen = new Set<string>();
    const problems: PreflightProblem[] = [];
    for (const w of wanted) {
        const api = apis[w.plane];
        const id = `${api.server} ${w.namespace}`;
        if (seen.has(id)) continue;
        seen.add(id);
        const { status } = await api.get(`/api/v1/namespaces/${w.namespace}`);
        if (status === 404)
            problems.push({
                key: w.key,
                message: `namespace ${w.namespace} does not exist on ${api.server}, which would hold ${w.holds}; create it first (the stack does not create namespaces)${w.key === "namespace" ? ", or set namespace to one that exists" : ""}`,
            });
    }
    return problems;
}

export async function checkTarget(
    input: PreflightInput,
    apis: PreflightApis,
): Promise<{ existingGateway?: ExistingGateway }> {
    const apiProblems = await istioApiProblems(input, apis.controlPlane);
    const [namespaces, owned, existing] = await Promise.all([
        namespaceProblems(input, apis),
        ownershipProblems(input, apis, apiProblems.length > 0),
        input.useExistingGateway
            ? existingGateway(input, apis.controlPlane)
            : Promise.resolve({ problems: [] as PreflightProblem[], gateway: undefined }),
    ]);
    const problems = [...apiProblems, ...namespaces, ...owned, ...existing.problems];
    if (problems.length > 0) throw new PreflightError(problems);
    return { existingGateway: existing.gateway };
}

/**
 * The cloud controller refuses to reuse a CLB a cluster made (cloud-provider-alibaba-cloud `isLoadBalancerReusable`:
 * tag `kubernetes.do.not.delete` or `ack.aliyun.com` -> "can not reuse loadbalancer created by kubernetes."). The same
 * refusal at preview time, from the CLB's tags as the alicloud API reports them (`undefined`: no such CLB).
 */
export function reusedClbProblems(
    id: string,
    tags: Record<string, string> | undefined,
): PreflightProblem[] {
    if (tags === undefined)
        return [
            {
                key: "slb.id",
                message: `no CLB ${id} exists in the provider's region; check slb.id and alicloud:region`,
            },
        ];
    const found = CLB_TAGS.clusterCreated.filter((tag) => tag in tags);
    if (found.length === 0) return [];
    return [
        {
            key: "slb.id",
            message: `CLB ${id} carries tag ${found.join(", ")}: a cluster created it, and the cloud controller refuses it ("can not reuse loadbalancer created by kubernetes."). Only CLBs created in the console or by API can be reused; use slb.mode "create" or "managed", or another CLB`,
        },
    ];
}
