/**
 * Every object the stack would create, with the plane that holds it: one list for the checks that look each object
 * up (preflight/index.ts) and the ones that ask what the identity may do with its kind (preflight/access.ts).
 */
import {
    ASM_GATEWAY_API,
    INGRESS_GATEWAY_NAMESPACE,
    ISTIO_NETWORKING_GROUP,
    IstioApiVersion,
    OBJECT_NAMES,
    TRACKS,
    deploymentName,
} from "../components/model";

export interface PreflightInput {
    namespace: string;
    gatewayName: string;
    useExistingGateway: boolean;
    gatewayPort: number;
    istioApiVersion: IstioApiVersion;
    /** This stack's stamp (`OWNER_ANNOTATION`). */
    owner: string;
}

export interface PlannedObject {
    plane: "dataPlane" | "controlPlane";
    kind: string;
    /** API group ("" for the core group) and resource (plural), as RBAC names them. */
    group: string;
    resource: string;
    namespace: string;
    /** API path of the object. */
    path: string;
    display: string;
    /** The key to change to avoid the name clash. */
    renameKey: string;
}

function planned(
    plane: PlannedObject["plane"],
    kind: string,
    groupVersion: string,
    resource: string,
    namespace: string,
    name: string,
    renameKey: string,
): PlannedObject {
    const prefix = groupVersion.includes("/") ? `/apis/${groupVersion}` : `/api/${groupVersion}`;
    return {
        plane,
        kind,
        group: groupVersion.includes("/") ? groupVersion.split("/")[0] : "",
        resource,
        namespace,
        path: `${prefix}/namespaces/${namespace}/${resource}/${name}`,
        display: `${namespace}/${name}`,
        renameKey,
    };
}

/** The IstioGateway of that name, as the stack would own it (or route through it). */
export function plannedIstioGateway(name: string): PlannedObject {
    return planned(
        "controlPlane",
        "IstioGateway",
        ASM_GATEWAY_API,
        "istiogateways",
        INGRESS_GATEWAY_NAMESPACE,
        name,
        "asm.gatewayName",
    );
}

/** Every object the stack would create, from the same names the components use. */
export function plannedObjects(input: PreflightInput): PlannedObject[] {
    const ns = input.namespace;
    const istio = `${ISTIO_NETWORKING_GROUP}/${input.istioApiVersion}`;
    const objects: PlannedObject[] = [
        ...TRACKS.map((track) =>
            planned(
                "dataPlane",
                "Deployment",
                "apps/v1",
                "deployments",
                ns,
                deploymentName(track),
                "namespace",
            ),
        ),
        planned("dataPlane", "Service", "v1", "services", ns, OBJECT_NAMES.service, "namespace"),
        planned(
            "controlPlane",
            "Gateway",
            istio,
            "gateways",
            ns,
            OBJECT_NAMES.gateway,
            "namespace",
        ),
        planned(
            "controlPlane",
            "DestinationRule",
            istio,
            "destinationrules",
            ns,
            OBJECT_NAMES.destinationRule,
            "namespace",
        ),
        planned(
            "controlPlane",
            "VirtualService",
            istio,
            "virtualservices",
            ns,
            OBJECT_NAMES.virtualService,
            "namespace",
        ),
    ];
    if (!input.useExistingGateway) objects.push(plannedIstioGateway(input.gatewayName));
    return objects;
}
