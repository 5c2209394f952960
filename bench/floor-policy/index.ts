/**
 * The floor's policy pack (npm run bench): one mandatory policy on the floor's VirtualService, started by the engine
 * exactly as the project's pack is (Pulumi's pack runner, TypeScript sources, the same tsconfig options).
 */
import { PolicyPack } from "@pulumi/policy";

new PolicyPack("asm-bench-floor", {
    policies: [
        {
            name: "weights-sum-to-100",
            description: "The route's weights sum to 100.",
            enforcementLevel: "mandatory",
            validateResource: (args, report) => {
                if (!args.type.endsWith(":VirtualService")) return;
                const tcp = (args.props.spec?.tcp ?? []) as { route?: { weight?: number }[] }[];
                for (const route of tcp) {
                    const sum = (route.route ?? []).reduce((s, r) => s + (r.weight ?? 0), 0);
                    if (sum !== 100) report(`weights sum to ${sum}, not 100`);
                }
            },
        },
    ],
});
