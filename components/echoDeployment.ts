import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import {
    APP_NAME,
    TCP_PORT_NAME,
    Track,
    VERSIONS,
    deploymentName,
    ownedObjectAnnotations,
    versionLabels,
} from "./model";

export interface EchoDeploymentArgs {
    /** Which side of the canary this Deployment serves: `stable` (v1) or `canary` (v2). */
    track: Track;
    /** Namespace on the data-plane (ACK) cluster. */
    namespace: string;
    /** Pinned image reference (tag or digest); a secret when the stack keeps images secret. */
    image: pulumi.Input<string>;
    /** Port the server listens on; the same number the Service targets. */
    port: number;
    replicas: number;
    /** Stamp of the stack that owns the Deployment (see `OWNER_ANNOTATION`). */
    owner: string;
    /** CPU/memory for the echo container; defaults fit the tiny sample server. */
    resources?: k8s.types.input.core.v1.ResourceRequirements;
}

const DEFAULT_RESOURCES: k8s.types.input.core.v1.ResourceRequirements = {
    requests: { cpu: "10m", memory: "16Mi" },
    limits: { cpu: "100m", memory: "64Mi" },
};

/** One version of Istio's tcp-echo server: `tcp-echo-v1` answers "one …", `tcp-echo-v2` answers "two …". */
export class EchoDeployment extends pulumi.ComponentResource {
    /** Name of the Kubernetes Deployment (`tcp-echo-<subset>`). */
    public readonly deploymentName: pulumi.Output<string>;
    /** The pod labels; the DestinationRule subset for this version selects on them. */
    public readonly labels: { app: string; version: string };
    public readonly deployment: k8s.apps.v1.Deployment;

    constructor(name: string, args: EchoDeploymentArgs, opts?: pulumi.ComponentResourceOptions) {
        super("asm-tcp-shift:workload:EchoDeployment", name, {}, opts);
        const { prefix } = VERSIONS[args.track];
        this.labels = versionLabels(args.track);
        const probe = { tcpSocket: { port: TCP_PORT_NAME }, periodSeconds: 10 };

        this.deployment = new k8s.apps.v1.Deployment(
            `${name}-deployment`,
            {
                metadata: {
                    name: deploymentName(args.track),
                    namespace: args.namespace,
                    labels: this.labels,
                    annotations: ownedObjectAnnotations(args.owner),
                },
                spec: {
                    replicas: args.replicas,
                    selector: { matchLabels: this.labels },
                    template: {
                        metadata: { labels: this.labels },
                        spec: {
                            containers: [
                                {
                                    name: APP_NAME,
                                    image: args.image,
                                    imagePullPolicy: "IfNotPresent",
                                    // The server listens on every comma-separated port in argv[1] and prefixes replies with argv[2].
                                    args: [String(args.port), prefix],
                                    ports: [
                                        {
                                            name: TCP_PORT_NAME,
                                            containerPort: args.port,
                                            protocol: "TCP",
                                        },
                                    ],
                                    readinessProbe: { ...probe, initialDelaySeconds: 1 },
                                    livenessProbe: { ...probe, initialDelaySeconds: 5 },
                                    resources: args.resources ?? DEFAULT_RESOURCES,
                                },
                            ],
                        },
                    },
                },
            },
            { parent: this },
        );
        this.deploymentName = this.deployment.metadata.name;
        this.registerOutputs({ deploymentName: this.deploymentName });
    }
}
