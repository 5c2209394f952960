import { defineStack, readStackConfig } from "./program";

// Config is validated before the first resource is registered, so a bad value changes nothing.
const { settings, secrets } = readStackConfig();
const outputs = defineStack(settings, secrets);

export const v2Weight = outputs.v2Weight;
export const weights = outputs.weights;
export const gatewayPort = outputs.gatewayPort;
export const namespace = outputs.namespace;
export const images = outputs.images;
export const virtualService = outputs.virtualService;
export const ingressAddress = outputs.ingressAddress;
export const ncCommand = outputs.ncCommand;
export const slbMode = outputs.slbMode;
export const slbId = outputs.slbId;
