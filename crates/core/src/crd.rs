//! The `KubeflowTenant` custom resource (`kubeflowtenants.kfp-tenant.io`),
//! which `kfp-tenant controller` reconciles: a tenant of the tenants file as
//! a cluster-scoped object whose name is the tenant's namespace. Its CRD is
//! made here from the tenants file's own types (`TenantInput`), so the API
//! server refuses what the file's schema refuses: unknown fields (kubectl's
//! strict field validation, the default), enums, patterns, lengths and
//! ranges. JSON Schema becomes the structural OpenAPI schema Kubernetes
//! takes: references inlined, `[T, null]` types and `anyOf` with `null` made
//! `nullable`, `const` alternatives made an `enum`, and what Kubernetes does
//! not take (`propertyNames`, `examples`, `additionalProperties: false`)
//! dropped or rewritten; what only validation can say (reserved namespaces,
//! tag keys, nesting) is the controller's, on the resource's status.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::spec::TenantInput;

pub const GROUP: &str = "kfp-tenant.io";
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "KubeflowTenant";
pub const PLURAL: &str = "kubeflowtenants";
pub const SHORT_NAME: &str = "kft";
/// Held on every KubeflowTenant until its tenant is deleted (or retained).
pub const FINALIZER: &str = "kfp-tenant.io/cleanup";

/// What deleting a KubeflowTenant does to its tenant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeletionPolicy {
    /// Deleted as `kfp-tenant destroy` deletes it.
    #[default]
    Delete,
    /// Kept: only the finalizer goes.
    Retain,
}

/// A KubeflowTenant's spec split into the tenant (its namespace set from
/// the resource's name) and its deletion policy.
pub fn tenant_of(name: &str, spec: &Value) -> Result<(TenantInput, DeletionPolicy), String> {
    let mut spec = spec.as_object().cloned().unwrap_or_default();
    let policy = match spec.remove("deletionPolicy") {
        None | Some(Value::Null) => DeletionPolicy::Delete,
        Some(p) => serde_json::from_value(p).map_err(|e| format!("spec.deletionPolicy: {e}"))?,
    };
    spec.insert("namespace".to_owned(), json!(name));
    let tenant = serde_json::from_value(Value::Object(spec)).map_err(|e| format!("spec: {e}"))?;
    Ok((tenant, policy))
}

/// The CustomResourceDefinition, as `kfp-tenant crd` prints it.
pub fn definition() -> Value {
    let root = serde_json::to_value(schemars::schema_for!(TenantInput)).expect("invariant: schemas serialize");
    let defs = root.get("$defs").cloned().unwrap_or_default();
    let tenant = structural(&root, &defs);
    let mut properties = tenant["properties"].as_object().cloned().unwrap_or_default();
    properties.remove("namespace");
    properties.insert(
        "deletionPolicy".to_owned(),
        json!({"type": "string", "enum": ["Delete", "Retain"], "default": "Delete",
               "description": "Deleting the resource deletes the tenant as `kfp-tenant destroy` does (`Delete`), or keeps it (`Retain`)."}),
    );
    let required: Vec<Value> = tenant["required"].as_array().into_iter().flatten().filter(|r| *r != "namespace").cloned().collect();
    let spec = json!({
        "type": "object",
        "description": "A tenant of the tenants file, its namespace the resource's name; the controller's settings file gives cluster, region, bucket and defaults.",
        "properties": properties,
        "required": required,
    });
    let condition = json!({"type": "object", "required": ["type", "status"], "properties": {
        "type": {"type": "string"}, "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
        "reason": {"type": "string"}, "message": {"type": "string"},
        "observedGeneration": {"type": "integer", "format": "int64"},
        "lastTransitionTime": {"type": "string", "format": "date-time"}}});
    let status = json!({"type": "object", "properties": {
        "observedGeneration": {"type": "integer", "format": "int64"},
        "conditions": {"type": "array", "items": condition, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
        "roleArn": {"type": "string"},
        "lastChange": {"type": "string", "description": "When the controller last changed the tenant, and what."}}});
    let name_rule = json!({
        "rule": "self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
        "message": "the name is the tenant's namespace: a DNS-1123 label of at most 63 characters",
    });
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{PLURAL}.{GROUP}")},
        "spec": {
            "group": GROUP,
            "scope": "Cluster",
            "names": {"kind": KIND, "listKind": format!("{KIND}List"), "plural": PLURAL, "singular": "kubeflowtenant", "shortNames": [SHORT_NAME]},
            "versions": [{
                "name": VERSION,
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                    {"name": "Role", "type": "string", "jsonPath": ".status.roleArn"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "required": ["spec"],
                    "x-kubernetes-validations": [name_rule],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": spec,
                        "status": status,
                    },
                }},
            }],
        },
    })
}

/// A JSON Schema (schemars, draft 2020-12) as a Kubernetes structural schema.
fn structural(schema: &Value, defs: &Value) -> Value {
    let Some(object) = schema.as_object() else { return schema.clone() };
    // A reference, inlined (keeping the referring schema's description).
    if let Some(name) = object.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/")) {
        let mut inlined = structural(&defs[name], defs);
        if let (Some(description), Some(target)) = (object.get("description"), inlined.as_object_mut()) {
            target.insert("description".to_owned(), description.clone());
        }
        return inlined;
    }
    // `Option<T>`: `anyOf: [T, {type: null}]`.
    if let Some(any) = object.get("anyOf").and_then(Value::as_array)
        && any.len() == 2
        && let Some(other) = any.iter().find(|s| s.get("type") != Some(&json!("null")))
    {
        let mut rest = object.clone();
        rest.remove("anyOf");
        let mut inner = structural(other, defs);
        merge(&mut inner, &structural(&Value::Object(rest), defs));
        inner["nullable"] = json!(true);
        return inner;
    }
    // An enum of documented strings: `oneOf: [{const}, ...]`.
    if let Some(one) = object.get("oneOf").and_then(Value::as_array)
        && one.iter().all(|s| s.get("const").is_some())
    {
        let mut rest = object.clone();
        rest.remove("oneOf");
        let mut out = structural(&Value::Object(rest), defs);
        out["type"] = json!("string");
        out["enum"] = json!(one.iter().map(|s| s["const"].clone()).collect::<Vec<_>>());
        return out;
    }
    let mut out = Map::new();
    for (key, value) in object {
        match key.as_str() {
            "$schema" | "$defs" | "title" | "propertyNames" | "format" => {}
            "examples" => {
                if let Some(first) = value.as_array().and_then(|e| e.first()) {
                    out.insert("example".to_owned(), first.clone());
                }
            }
            "uniqueItems" if *value == json!(true) => {}
            "additionalProperties" if *value == json!(false) => {}
            "default" if value.is_null() => {}
            "const" => {
                out.insert("enum".to_owned(), json!([value]));
            }
            "type" => match value.as_array() {
                Some(types) => {
                    let real: Vec<&Value> = types.iter().filter(|t| **t != json!("null")).collect();
                    out.insert("type".to_owned(), real.first().map_or(json!("string"), |t| (*t).clone()));
                    if real.len() < types.len() {
                        out.insert("nullable".to_owned(), json!(true));
                    }
                }
                None => {
                    out.insert(key.clone(), value.clone());
                }
            },
            "properties" => {
                let props: Map<String, Value> =
                    value.as_object().into_iter().flatten().map(|(k, v)| (k.clone(), structural(v, defs))).collect();
                out.insert(key.clone(), Value::Object(props));
            }
            "items" | "additionalProperties" | "not" => {
                out.insert(key.clone(), structural(value, defs));
            }
            "allOf" | "anyOf" | "oneOf" => {
                let parts: Vec<Value> = value.as_array().into_iter().flatten().map(|s| bare(&structural(s, defs))).collect();
                out.insert(key.clone(), Value::Array(parts));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(out)
}

/// Inside `allOf`/`anyOf`/`oneOf`/`not` Kubernetes takes no type,
/// description, default or nullable: the value validations only.
fn bare(schema: &Value) -> Value {
    let mut out = schema.clone();
    if let Some(object) = out.as_object_mut() {
        for key in ["type", "description", "default", "nullable", "example"] {
            object.remove(key);
        }
    }
    out
}

/// `extra`'s keys added to `into` where it has none.
fn merge(into: &mut Value, extra: &Value) {
    if let (Some(into), Some(extra)) = (into.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            into.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kubernetes refuses a CRD whose schema has these (a structural schema).
    fn unstructural(v: &Value, at: &str, found: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    if ["$ref", "$defs", "$schema", "propertyNames", "examples", "const"].contains(&k.as_str())
                        || (k == "type" && x.is_array())
                        || (k == "uniqueItems" && *x == json!(true))
                    {
                        found.push(format!("{at}/{k}"));
                    }
                    unstructural(x, &format!("{at}/{k}"), found);
                }
            }
            Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| unstructural(x, &format!("{at}/{i}"), found)),
            _ => {}
        }
    }

    #[test]
    fn the_definition_is_structural_and_names_what_the_issue_fixes() {
        let crd = definition();
        let mut found = Vec::new();
        unstructural(&crd, "", &mut found);
        assert_eq!(found, Vec::<String>::new());
        assert_eq!(crd["metadata"]["name"], "kubeflowtenants.kfp-tenant.io");
        assert_eq!(crd["spec"]["scope"], "Cluster");
        assert_eq!(crd["spec"]["names"]["shortNames"], json!(["kft"]));
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert!(spec["properties"].get("namespace").is_none(), "the name is the namespace");
        assert_eq!(spec["required"], json!(["owner"]));
        assert_eq!(spec["properties"]["identity"]["enum"], json!(["irsa", "podIdentity"]));
        assert_eq!(spec["properties"]["s3Access"]["nullable"], true);
        assert_eq!(spec["properties"]["deletionPolicy"]["enum"], json!(["Delete", "Retain"]));
    }

    #[test]
    fn a_spec_is_the_tenant_of_its_name_and_a_deletion_policy() {
        let (tenant, policy) = tenant_of("team-a", &json!({"owner": "a@example.com", "deletionPolicy": "Retain"})).unwrap();
        assert_eq!((tenant.namespace.as_str(), tenant.owner.as_str(), policy), ("team-a", "a@example.com", DeletionPolicy::Retain));
        assert_eq!(tenant_of("t", &json!({"owner": "a@example.com"})).unwrap().1, DeletionPolicy::Delete);
        assert!(tenant_of("t", &json!({"owner": "a@example.com", "ownr": 1})).unwrap_err().contains("unknown field `ownr`"));
        assert!(
            tenant_of("t", &json!({"owner": "a@example.com", "deletionPolicy": "Keep"})).unwrap_err().starts_with("spec.deletionPolicy")
        );
    }
}
