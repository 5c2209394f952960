export * from "./model";
export * from "./weights";
export * from "./istioTypes";
export * from "./echoDeployment";
export * from "./echoService";
export * from "./trafficRouting";
export * from "./asmIngressGateway";
export * from "./tcpEchoCanary";
