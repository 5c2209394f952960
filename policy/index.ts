import { PolicyPack } from "@pulumi/policy";
import { allPolicies } from "./policies";

// Constructing the pack starts its gRPC server, so it happens only here, never in a module tests import.
new PolicyPack("asm-tcp-shift", { policies: allPolicies });
