// Benchmark-only program: N independent routed services (workload + Istio routing each) in one stack,
// to measure how preview time grows with the number of services a stack routes.
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { APP_NAME, EchoDeployment, EchoService, TRACKS, TcpTrafficRouting, splitWeights } from "../../components";

const config = new pulumi.Config("asm-tcp-shift");
const services = config.requireNumber("benchServices", { min: 1, max: 500 });
const provider = new k8s.Provider("render", { renderYamlToDirectory: "rendered" });
for (let i = 0; i < services; i++) {
    const namespace = `svc-${i}`;
    for (const track of TRACKS) {
        new EchoDeployment(`s${i}-${track}`, { track, namespace, image: "docker.io/istio/tcp-echo-server:1.2", port: 9000, replicas: 1 }, { provider });
    }
    new EchoService(`s${i}-svc`, { namespace, port: 9000 }, { provider });
    new TcpTrafficRouting(`s${i}-routing`, { namespace, serviceHost: APP_NAME, servicePort: 9000, gatewayPort: 31400, hosts: ["*"], weights: splitWeights(20) }, { provider });
}
