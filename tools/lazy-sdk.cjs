// Preloaded into the Node.js processes the Pulumi engine starts (the program and the policy pack) through
// NODE_OPTIONS=--require (see engineEnv in tools/engine.ts and scripts/pulumi.sh). @pulumi/pulumi loads npm's
// package manager (@npmcli/arborist, with sigstore, pacote and the rest: a third of a second or more on two
// cores) as it starts, for one use only: finding the packages a serialized function needs. This program and
// its policy pack serialize no function, so the module is loaded on first use instead of at start-up.
"use strict";
const Module = require("module");
const load = Module._load;
const CODE_PATHS = /[\\/]@pulumi[\\/]pulumi[\\/]runtime[\\/]closure[\\/]codePaths\.js$/;

Module._load = function (request, parent, isMain) {
    if (request !== "@npmcli/arborist" || !parent || !CODE_PATHS.test(parent.filename || "")) return load.apply(this, arguments);
    let real;
    const get = () => (real = real || load.call(Module, request, parent, isMain));
    // `__esModule` answers without loading, so TypeScript's import helper keeps the proxy as the module.
    return new Proxy(
        {},
        {
            get: (_, key) => (key === "__esModule" ? true : get()[key]),
            has: (_, key) => key in get(),
            ownKeys: () => Reflect.ownKeys(get()),
            getOwnPropertyDescriptor: (_, key) => {
                const d = Object.getOwnPropertyDescriptor(get(), key);
                return d && { ...d, configurable: true };
            },
        },
    );
};
