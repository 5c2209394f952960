/**
 * The first checks against a live target, before any object is looked at: each API server answers, accepts the
 * kubeconfig's credentials, is the kind of server its key says (on `asm`: the ASM instance holds the Istio API and
 * the IstioGateway, the ACK cluster does not), and lets the identity do what the stack will do there. A problem here
 * names the kubeconfig's key; later checks would only repeat it in other words, so they are not made.
 */
import { ASM_GATEWAY_API, ISTIO_NETWORKING_GROUP } from "../components/model";
import { ConfigProblem } from "../config";
import { KubeAnswer, KubeApi } from "./kubeApi";
import { PlannedObject, PreflightInput, plannedIstioGateway, plannedObjects } from "./planned";

const ASM_GATEWAY_GROUP = ASM_GATEWAY_API.split("/")[0];

/** One API server of the target and the config key its kubeconfig comes from. */
export interface Plane {
    api: KubeApi;
    key: string;
}

/**
 * Set (to "1") by the tools for the preview that gates an update (`gatedUp`): that preview refuses what the update
 * would, so a refusal comes before the update writes anything, even Pulumi's own stack record. A preview on its own
 * (a pull request's, with read-only identities) only warns of missing write permissions.
 */
export const PREVIEW_BEFORE_UPDATE_ENV = "ASM_TCP_SHIFT_PREVIEW_BEFORE_UPDATE";

/** The verbs that change an object; a preview with a read-only identity lacks them by design. */
const WRITE_VERBS = new Set(["create", "patch", "delete"]);

export interface AccessInput {
    target: "local" | "asm";
    /**
     * What a missing write permission is: a refusal (an update, or the preview that gates one), or a warning (a
     * preview alone: the Kubernetes provider previews with a read-only identity by falling back to its client-side
     * result when the server-side dry run is forbidden).
     */
    writes: "refuse" | "warn";
    /** The stack's objects, whose kinds the identities must be allowed to own. */
    stack: PreflightInput;
    dataPlane: Plane;
    controlPlane: Plane;
}

/** A permission the stack uses: the verbs the Kubernetes provider sends for a kind it creates, reads and deletes. */
interface Permission {
    plane: PlannedObject["plane"];
    group: string;
    resource: string;
    namespace: string;
    verbs: readonly string[];
}

/**
 * What the provider does with an object it owns: get (read, refresh), list and watch (waiting for it to be ready),
 * create and patch (server-side apply creates with a patch, which needs both), delete.
 */
const OWNED_VERBS = ["get", "list", "watch", "create", "patch", "delete"] as const;

/** Every permission the stack uses, by plane: its kinds from the objects it would create (preflight/planned.ts). */
export function neededPermissions(stack: PreflightInput): Permission[] {
    const permissions = new Map<string, Permission>();
    for (const o of plannedObjects(stack))
        permissions.set(`${o.plane} ${o.group} ${o.resource} ${o.namespace}`, {
            plane: o.plane,
            group: o.group,
            resource: o.resource,
            namespace: o.namespace,
            verbs: OWNED_VERBS,
        });
    const result = [...permissions.values()];
    if (stack.useExistingGateway) {
        // A gateway the stack routes through is only read.
        const { plane, group, resource, namespace } = plannedIstioGateway(stack.gatewayName);
        result.push({ plane, group, resource, namespace, verbs: ["get"] });
    }
    return result;
}

/** Why a request to a plane failed, as a problem of its key; undefined when the server answered it. */
async function answer(
    plane: Plane,
    request: () => Promise<KubeAnswer>,
): Promise<{ answer?: KubeAnswer; problem?: ConfigProblem }> {
    try {
        return { answer: await request() };
    } catch (err) {
        return { problem: { key: plane.key, message: (err as Error).message } };
    }
}

/** The server answers and takes the credentials; the groups it serves (from discovery), or the problem. */
async function reach(plane: Plane): Promise<{ groups?: Set<string>; problem?: ConfigProblem }> {
    const { answer: found, problem } = await answer(plane, () => plane.api.get("/apis"));
    if (problem) return { problem };
    const { status, body } = found!;
    if (status === 401)
        return {
            problem: {
                key: plane.key,
                message: `${plane.api.server} does not accept the kubeconfig's credentials (HTTP 401): the certificate or token is not one it knows (revoked, or from another cluster); get a new kubeconfig`,
            },
        };
    if (status !== 200)
        return {
            problem: {
                key: plane.key,
                message: `${plane.api.server} did not list its APIs (HTTP ${status}); is it a Kubernetes API server?`,
            },
        };
    return {
        groups: new Set<string>((body?.groups ?? []).map((g: { name: string }) => g.name)),
    };
}

/**
 * On `asm`, each kubeconfig must be of its kind of server: the ASM instance serves Istio's API and the IstioGateway;
 * the ACK cluster does not hold them (ASM's API server holds the mesh's resources:
 * https://www.alibabacloud.com/help/doc-detail/152154.htm). Two swapped kubeconfigs are said to be swapped.
 */
function roleProblems(
    input: AccessInput,
    groups: { dataPlane: Set<string>; controlPlane: Set<string> },
): ConfigProblem[] {
    const isMesh = (g: Set<string>) => g.has(ISTIO_NETWORKING_GROUP) && g.has(ASM_GATEWAY_GROUP);
    if (isMesh(groups.controlPlane)) return [];
    const { controlPlane, dataPlane } = input;
    const swapped = isMesh(groups.dataPlane)
        ? ` The two kubeconfigs look swapped: ${dataPlane.key}'s server ${dataPlane.api.server} serves them; ${controlPlane.key} is the ASM instance's kubeconfig, ${dataPlane.key} the ACK cluster's.`
        : "";
    const missing = [ISTIO_NETWORKING_GROUP, ASM_GATEWAY_GROUP].filter(
        (g) => !groups.controlPlane.has(g),
    );
    return [
        {
            key: controlPlane.key,
            message: `${controlPlane.api.server} serves no ${missing.join(" and no ")} API, so it is not an ASM instance's API server (they hold the Gateway, DestinationRule, VirtualService and IstioGateway).${swapped}`,
        },
    ];
}

const display = (p: Permission) =>
    `${p.group ? `${p.resource}.${p.group}` : p.resource} in namespace ${p.namespace}`;

/** The verbs of a permission the identity may not use, asked of the server itself (SelfSubjectAccessReview). */
async function deniedVerbs(
    plane: Plane,
    permission: Permission,
): Promise<{ denied: string[]; problem?: ConfigProblem }> {
    const post = plane.api.post;
    if (!post) return { denied: [] };
    const answers = await Promise.all(
        permission.verbs.map((verb) =>
            answer(plane, () =>
                post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {
                    apiVersion: "authorization.k8s.io/v1",
                    kind: "SelfSubjectAccessReview",
                    spec: {
                        resourceAttributes: {
                            namespace: permission.namespace,
                            verb,
                            group: permission.group,
                            resource: permission.resource,
                        },
                    },
                }),
            ),
        ),
    );
    const failed = answers.find((a) => a.problem);
    if (failed) return { denied: [], problem: failed.problem };
    // A server that cannot review (an old one, or one that forbids the review itself) is not taken as a refusal.
    const denied = permission.verbs.filter(
        (_, i) =>
            answers[i].answer!.status === 201 && answers[i].answer!.body?.status?.allowed !== true,
    );
    return { denied };
}

function permissionMessage(input: AccessInput, permission: Permission, denied: string[]): string {
    const plane = input[permission.plane];
    const base = `the identity of ${plane.key} may not ${denied.join(", ")} ${display(permission)} on ${plane.api.server}`;
    if (permission.resource === "istiogateways")
        // ASM's preset roles: istio-ops writes every mesh resource but IstioGateway; istio-admin writes it too
        // (https://alibabacloud.com/help/en/asm/user-guide/grant-rbac-permissions-to-ram-users-and-ram-roles).
        return `${base}. A stack that owns its gateway needs ASM's istio-admin role (istio-ops may not write IstioGateway): grant istio-admin to this identity, or set asm.useExistingGateway to true to route through a gateway someone else owns`;
    if (permission.plane === "controlPlane")
        return `${base}. Grant this identity ASM's istio-ops or istio-admin role for the namespace (istio-readonly only reads)`;
    return `${base}. Grant this identity a role on the ACK cluster that writes Deployments and Services in the namespace`;
}

export interface AccessFindings {
    /** Refusals: the stack may not go on. */
    problems: ConfigProblem[];
    /** What an update with these identities would be refused for (a preview alone goes on). */
    warnings: ConfigProblem[];
}

/** Every problem of reaching, identifying and using the target's API servers; no problems: the stack may go on. */
export async function checkAccess(input: AccessInput): Promise<AccessFindings> {
    const planes = [input.dataPlane, input.controlPlane];
    const same = input.dataPlane.api === input.controlPlane.api;
    const reached = await Promise.all(same ? [reach(input.dataPlane)] : planes.map(reach));
    const reachProblems = reached.flatMap((r) => (r.problem ? [r.problem] : []));
    if (reachProblems.length > 0) return { problems: reachProblems, warnings: [] };
    if (input.target === "asm") {
        const roles = roleProblems(input, {
            dataPlane: reached[0].groups!,
            controlPlane: reached[same ? 0 : 1].groups!,
        });
        if (roles.length > 0) return { problems: roles, warnings: [] };
    }
    const permissions = neededPermissions(input.stack);
    const results = await Promise.all(permissions.map((p) => deniedVerbs(input[p.plane], p)));
    const findings: AccessFindings = { problems: [], warnings: [] };
    results.forEach((r, i) => {
        if (r.problem) {
            findings.problems.push(r.problem);
            return;
        }
        const key = input[permissions[i].plane].key;
        const writes = r.denied.filter((v) => WRITE_VERBS.has(v));
        const refused =
            input.writes === "refuse" ? r.denied : r.denied.filter((v) => !WRITE_VERBS.has(v));
        if (refused.length > 0)
            findings.problems.push({
                key,
                message: permissionMessage(input, permissions[i], refused),
            });
        if (input.writes === "warn" && writes.length > 0)
            findings.warnings.push({
                key,
                message: `an update would be refused: ${permissionMessage(input, permissions[i], writes)}`,
            });
    });
    return findings;
}
