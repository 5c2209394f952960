// Benchmark-only program: N independent routed services (workload + Istio routing each) in one stack,
// to measure how preview time grows with the number of services a stack routes.
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import {
    APP_NAME,
    EchoDeployment,
    EchoService,
    TRACKS,
    TcpTrafficRouting,
    gatewayPodSelector,
    splitWeights,
} from "../../components";
import { DEFAULTS } from "../../config";

const config = new pulumi.Config("asm-tcp-shift");
const services = config.requireNumber("benchServices", { min: 1, max: 500 });
const provider = new k8s.Provider("render", { renderYamlToDirectory: "rendered" });
const owner = `${pulumi.getOrganization()}/${pulumi.getProject()}/${pulumi.getStack()}`;
for (let i = 0; i < services; i++) {
    const namespace = `svc-${i}`;
    for (const track of TRACKS) {
        new EchoDeployment(
            `s${i}-${track}`,
            {
                track,
                namespace,
                image: DEFAULTS.image,
                port: DEFAULTS.servicePort,
                replicas: 1,
                owner,
            },
            { provider },
        );
    }
    new EchoService(`s${i}-svc`, { namespace, port: DEFAULTS.servicePort, owner }, { provider });
    new TcpTrafficRouting(
        `s${i}-routing`,
        {
            namespace,
            serviceHost: APP_NAME,
            servicePort: DEFAULTS.servicePort,
            gatewayPort: DEFAULTS.gatewayPort,
            hosts: ["*"],
            weights: splitWeights(20),
            gatewaySelector: gatewayPodSelector(DEFAULTS.asm.gatewayName),
            istioApiVersion: DEFAULTS.istioApiVersion,
            owner,
        },
        { provider },
    );
}
