/** The stack's Kubernetes (and, when needed, alicloud) providers, built from its settings and secrets. */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import * as fs from "fs";
import * as path from "path";
import { ConfigError, Settings } from "../config";
import { StackSecrets } from "../config/secrets";
import { loadAlicloud } from "../components/alicloud";
import { CanaryProviders } from "../components";

/** Whether the stack talks to the alicloud API: to create its CLB, or to read the tags of the one it reuses. */
export function needsAlicloud(settings: Settings): boolean {
    return (
        settings.target === "asm" &&
        !settings.asm.useExistingGateway &&
        (settings.slb.mode === "create" || settings.slb.mode === "reuse")
    );
}

/** Builds the providers for the stack's target; only `asm` with a created or reused CLB gets an alicloud provider. */
export function makeProviders(settings: Settings, secrets: StackSecrets): CanaryProviders {
    switch (settings.target) {
        case "render": {
            const render = new k8s.Provider("render", {
                renderYamlToDirectory: settings.renderDir,
            });
            return { dataPlane: render, controlPlane: render };
        }
        case "local": {
            const file = path.resolve(settings.localKubeconfig);
            if (!fs.existsSync(file)) {
                throw new ConfigError([
                    {
                        key: "localKubeconfig",
                        message: `no kubeconfig at ${file}; start the local cluster with \`npm run cluster:up\``,
                    },
                ]);
            }
            const local = new k8s.Provider("local", {
                kubeconfig: pulumi.secret(fs.readFileSync(file, "utf8")),
            });
            return { dataPlane: local, controlPlane: local };
        }
        case "asm":
            return {
                dataPlane: new k8s.Provider("ack", { kubeconfig: secrets.dataPlaneKubeconfig! }),
                controlPlane: new k8s.Provider("asm", {
                    kubeconfig: secrets.controlPlaneKubeconfig!,
                }),
                alicloud: needsAlicloud(settings)
                    ? new (loadAlicloud().Provider)("alicloud", {})
                    : undefined,
            };
    }
}
