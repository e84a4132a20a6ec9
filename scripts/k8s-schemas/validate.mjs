// Validates Kubernetes objects (a JSON array on stdin) against the OpenAPI schemas that kubernetes-models
// generates from Kubernetes, the Prometheus Operator and cert-manager. Prints one line per object:
//   OK Kind/name | INVALID Kind/name: reason | UNKNOWN Kind/name: no schema for apiVersion
// Exits 1 if any object is INVALID. Kinds with no schema here (the project's own CRDs) are UNKNOWN, not
// failures: the standalone API server validates those.
import { readFileSync } from "node:fs";

const packages = {
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
  "cert-manager.io": "@kubernetes-models/cert-manager",
};

const objects = JSON.parse(readFileSync(0, "utf8"));
let invalid = 0;
for (const o of objects) {
  const id = `${o.kind}/${o.metadata?.name ?? "?"}`;
  const [group, version] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : ["", o.apiVersion];
  const module = `${packages[group] ?? "kubernetes-models"}/${group ? group + "/" : ""}${version}/${o.kind}`;
  let Model;
  try {
    Model = (await import(module))[o.kind];
  } catch {
    console.log(`UNKNOWN ${id}: no schema for ${o.apiVersion} ${o.kind}`);
    continue;
  }
  try {
    new Model(o).validate();
    console.log(`OK ${id}`);
  } catch (e) {
    invalid++;
    console.log(`INVALID ${id}: ${e.message}`);
  }
}
process.exit(invalid ? 1 : 0);
