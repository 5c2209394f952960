import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { APP_NAME, OBJECT_NAMES, TCP_PORT_NAME, ownedObjectAnnotations } from "./model";

export interface EchoServiceArgs {
    namespace: string;
    /** Port the Service exposes and targets on the pods. */
    port: number;
    /** Stamp of the stack that owns the Service (see `OWNER_ANNOTATION`). */
    owner: string;
}

/** Service `tcp-echo` over both versions; Istio splits its traffic by subset. */
export class EchoService extends pulumi.ComponentResource {
    public readonly serviceName: pulumi.Output<string>;
    public readonly service: k8s.core.v1.Service;

    constructor(name: string, args: EchoServiceArgs, opts?: pulumi.ComponentResourceOptions) {
        super("asm-tcp-shift:workload:EchoService", name, {}, opts);
        this.service = new k8s.core.v1.Service(
            `${name}-service`,
            {
                metadata: {
                    name: OBJECT_NAMES.service,
                    namespace: args.namespace,
                    labels: { app: APP_NAME },
                    annotations: ownedObjectAnnotations(args.owner),
                },
                spec: {
                    selector: { app: APP_NAME },
                    // Istio infers the protocol from the port name, so it must be `tcp` or `tcp-*`.
                    ports: [
                        {
                            name: TCP_PORT_NAME,
                            port: args.port,
                            targetPort: TCP_PORT_NAME,
                            protocol: "TCP",
                        },
                    ],
                },
            },
            { parent: this },
        );
        this.serviceName = this.service.metadata.name;
        this.registerOutputs({ serviceName: this.serviceName });
    }
}
