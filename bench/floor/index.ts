/**
 * The engine's floor for a weight change (npm run bench): the smallest Pulumi program that makes the same
 * change, one VirtualService whose weights come from config, on the default provider (KUBECONFIG).
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";

const w = new pulumi.Config().requireNumber("w");
new k8s.apiextensions.CustomResource("floor-echo", {
    apiVersion: "networking.istio.io/v1",
    kind: "VirtualService",
    // Force-owned, like every object of the program.
    metadata: {
        name: "floor-echo",
        namespace: "default",
        annotations: { "pulumi.com/patchForce": "true" },
    },
    spec: {
        hosts: ["*"],
        gateways: ["floor-echo-gateway"],
        tcp: [
            {
                match: [{ port: 31401 }],
                route: [
                    {
                        destination: { host: "tcp-echo", subset: "v1", port: { number: 9000 } },
                        weight: 100 - w,
                    },
                    {
                        destination: { host: "tcp-echo", subset: "v2", port: { number: 9000 } },
                        weight: w,
                    },
                ],
            },
        ],
    },
});
