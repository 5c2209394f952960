import { PolicyPack } from "@pulumi/policy";
import { allPolicies } from "./policies";
import { withPolicyGate } from "./policies/gate";

// Constructing the pack starts its gRPC server, so it happens only here, never in a module tests import.
// Every policy also checks the program's whole desired state at its policy gate, before any resource changes.
new PolicyPack("asm-tcp-shift", { policies: withPolicyGate(allPolicies) });
