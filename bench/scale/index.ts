// Benchmark-only program: N independent routed services (workload + Istio routing each) in one stack,
// to measure how preview time grows with the number of services a stack routes.
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { APP_NAME, DEFAULT_GATEWAY_PORT, DEFAULT_IMAGE, DEFAULT_INGRESS_GATEWAY_NAME, DEFAULT_ISTIO_API_VERSION, DEFAULT_SERVICE_PORT, EchoDeployment, EchoService, TRACKS, TcpTrafficRouting, gatewayPodSelector, splitWeights } from "../../components";

const config = new pulumi.Config("asm-tcp-shift");
const services = config.requireNumber("benchServices", { min: 1, max: 500 });
const provider = new k8s.Provider("render", { renderYamlToDirectory: "rendered" });
const owner = `${pulumi.getOrganization()}/${pulumi.getProject()}/${pulumi.getStack()}`;
for (let i = 0; i < services; i++) {
    const namespace = `svc-${i}`;
    for (const track of TRACKS) {
        new EchoDeployment(`s${i}-${track}`, { track, namespace, image: DEFAULT_IMAGE, port: DEFAULT_SERVICE_PORT, replicas: 1, owner }, { provider });
    }
    new EchoService(`s${i}-svc`, { namespace, port: DEFAULT_SERVICE_PORT, owner }, { provider });
    new TcpTrafficRouting(
        `s${i}-routing`,
        {
            namespace,
            serviceHost: APP_NAME,
            servicePort: DEFAULT_SERVICE_PORT,
            gatewayPort: DEFAULT_GATEWAY_PORT,
            hosts: ["*"],
            weights: splitWeights(20),
            gatewaySelector: gatewayPodSelector(DEFAULT_INGRESS_GATEWAY_NAME),
            istioApiVersion: DEFAULT_ISTIO_API_VERSION,
            owner,
        },
        { provider },
    );
}
