//! Field ownership for server-side apply, as far as the fake needs it.
//!
//! The real API server records which field manager set each field of an
//! object. An apply sets the fields it names and takes them over (with
//! `force`), removes the fields its manager applied before and no longer
//! names, and leaves alone the fields that other managers set. That last rule
//! decides whether kfp-tenant's applies converge: a field added by hand is
//! not removed by an apply that does not name it. Updates (PUT, merge and
//! JSON patches) make their manager the owner of whatever they changed.
//!
//! Ownership is kept per leaf, by JSON pointer. Arrays, empty objects and the
//! paths a kind declares atomic (`x-kubernetes-map-type: atomic`) are leaves.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// Owners of each leaf of one object, by JSON pointer.
pub type Owners = BTreeMap<String, BTreeSet<String>>;

/// Fields the server sets or that name the object: nobody owns them.
const UNOWNED: &[&str] = &[
    "/apiVersion",
    "/kind",
    "/metadata/name",
    "/metadata/namespace",
    "/metadata/resourceVersion",
    "/metadata/uid",
    "/metadata/creationTimestamp",
    "/metadata/deletionTimestamp",
    "/metadata/generation",
    "/metadata/managedFields",
    "/status",
];

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn is_unowned(pointer: &str) -> bool {
    UNOWNED.iter().any(|u| pointer == *u || pointer.starts_with(&format!("{u}/")))
}

/// Leaves of `value` by JSON pointer.
pub fn leaves(value: &Value, atomic: &[&str]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    walk(value, String::new(), atomic, &mut out);
    out
}

fn walk(value: &Value, pointer: String, atomic: &[&str], out: &mut BTreeMap<String, Value>) {
    if is_unowned(&pointer) && !pointer.is_empty() {
        return;
    }
    match value {
        Value::Object(map) if !map.is_empty() && !atomic.contains(&pointer.as_str()) => {
            for (k, v) in map {
                walk(v, format!("{pointer}/{}", escape(k)), atomic, out);
            }
        }
        _ if pointer.is_empty() => {}
        other => {
            out.insert(pointer, other.clone());
        }
    }
}

fn tokens(pointer: &str) -> Vec<String> {
    pointer.split('/').skip(1).map(unescape).collect()
}

/// Sets the value at `pointer`, making the objects on the way.
pub fn set(object: &mut Value, pointer: &str, value: Value) {
    let mut at = object;
    for token in tokens(pointer) {
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        at = at.as_object_mut().expect("invariant: made an object above").entry(token).or_insert(Value::Null);
    }
    *at = value;
}

/// Removes the value at `pointer`, if there is one.
pub fn remove(object: &mut Value, pointer: &str) {
    let tokens = tokens(pointer);
    let Some((last, parents)) = tokens.split_last() else { return };
    let mut at = object;
    for token in parents {
        match at.get_mut(token) {
            Some(next) => at = next,
            None => return,
        }
    }
    if let Some(map) = at.as_object_mut() {
        map.remove(last);
    }
}

/// Drops the owners of `pointer`'s ancestors and descendants: a leaf replaces
/// whatever was owned above or below it.
fn take_over(owners: &mut Owners, pointer: &str) {
    let below = format!("{pointer}/");
    owners.retain(|p, _| !(p.starts_with(&below) || pointer.starts_with(&format!("{p}/"))));
}

/// A server-side apply of `config` by `manager` onto `object`. Without
/// `force`, a field owned by another manager with another value is a
/// conflict, named as the real server names it.
pub fn apply(object: &mut Value, owners: &mut Owners, config: &Value, manager: &str, force: bool, atomic: &[&str]) -> Result<(), String> {
    let applied = leaves(config, atomic);
    let current = leaves(object, atomic);
    if !force {
        let conflicts: Vec<String> = applied
            .iter()
            .filter(|(p, v)| current.get(*p) != Some(*v))
            .filter_map(|(p, _)| {
                let others: Vec<&String> = owners.get(p)?.iter().filter(|m| *m != manager).collect();
                (!others.is_empty()).then(|| format!("conflict with {:?}: .{}", others[0], tokens(p).join(".")))
            })
            .collect();
        if !conflicts.is_empty() {
            return Err(format!("Apply failed with {} conflict(s): {}", conflicts.len(), conflicts.join("; ")));
        }
    }
    // What this manager applied before and no longer names goes, unless
    // another manager owns it too.
    let dropped: Vec<String> =
        owners.iter().filter(|(p, m)| m.contains(manager) && !applied.contains_key(*p)).map(|(p, _)| p.clone()).collect();
    for pointer in dropped {
        let Some(managers) = owners.get_mut(&pointer) else { continue };
        managers.remove(manager);
        if managers.is_empty() {
            owners.remove(&pointer);
            remove(object, &pointer);
        }
    }
    for (pointer, value) in applied {
        // Applying the value a field already has shares it with its owners
        // (an apply that later drops it leaves it to them); another value
        // takes it over.
        if current.get(&pointer) == Some(&value) {
            owners.entry(pointer).or_default().insert(manager.to_owned());
            continue;
        }
        take_over(owners, &pointer);
        set(object, &pointer, value);
        owners.insert(pointer, BTreeSet::from([manager.to_owned()]));
    }
    Ok(())
}

/// An update by `manager` turned `before` into `after`: it owns what it
/// changed or added; what it removed is nobody's.
pub fn update(before: &Value, after: &Value, owners: &mut Owners, manager: &str, atomic: &[&str]) {
    let (old, new) = (leaves(before, atomic), leaves(after, atomic));
    for pointer in old.keys().filter(|p| !new.contains_key(*p)) {
        owners.remove(pointer);
    }
    for (pointer, value) in new {
        if old.get(&pointer) != Some(&value) {
            take_over(owners, &pointer);
            owners.insert(pointer, BTreeSet::from([manager.to_owned()]));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ATOMIC: &[&str] = &["/spec/owner"];

    #[test]
    fn an_apply_keeps_fields_of_other_managers_and_drops_its_own() {
        let mut object = json!({});
        let mut owners = Owners::new();
        let first = json!({"metadata": {"name": "p", "labels": {"a": "1"}}, "spec": {"owner": {"name": "x"}, "quota": {"cpu": "8"}}});
        apply(&mut object, &mut owners, &first, "kfp-tenant", true, ATOMIC).unwrap();
        // Someone else adds a field by hand.
        let before = object.clone();
        object["spec"]["quota"]["memory"] = json!("1Gi");
        update(&before, &object, &mut owners, "kubectl-edit", ATOMIC);
        // The next apply names neither the quota nor the label.
        let second = json!({"metadata": {"name": "p"}, "spec": {"owner": {"name": "y"}}});
        apply(&mut object, &mut owners, &second, "kfp-tenant", true, ATOMIC).unwrap();
        assert_eq!(object, json!({"metadata": {"labels": {}}, "spec": {"owner": {"name": "y"}, "quota": {"memory": "1Gi"}}}));
    }

    #[test]
    fn without_force_a_field_of_another_manager_conflicts() {
        let mut object = json!({});
        let mut owners = Owners::new();
        apply(&mut object, &mut owners, &json!({"spec": {"owner": {"name": "x"}}}), "a", false, ATOMIC).unwrap();
        let err = apply(&mut object, &mut owners, &json!({"spec": {"owner": {"name": "y"}}}), "b", false, ATOMIC).unwrap_err();
        assert_eq!(err, "Apply failed with 1 conflict(s): conflict with \"a\": .spec.owner");
        // The same value is no conflict, and force takes the field over.
        apply(&mut object, &mut owners, &json!({"spec": {"owner": {"name": "x"}}}), "b", false, ATOMIC).unwrap();
        apply(&mut object, &mut owners, &json!({"spec": {"owner": {"name": "y"}}}), "b", true, ATOMIC).unwrap();
        assert_eq!(owners["/spec/owner"], BTreeSet::from(["b".to_owned()]));
    }

    #[test]
    fn applying_a_value_another_manager_set_shares_it_and_dropping_it_leaves_it() {
        let mut object = json!({"metadata": {"annotations": {"role": "a"}}});
        let mut owners = Owners::new();
        update(&json!({}), &object.clone(), &mut owners, "controller", &[]);
        let config = json!({"metadata": {"annotations": {"role": "a"}}});
        apply(&mut object, &mut owners, &config, "kfp-tenant", true, &[]).unwrap();
        assert_eq!(owners["/metadata/annotations/role"], BTreeSet::from(["controller".to_owned(), "kfp-tenant".to_owned()]));
        apply(&mut object, &mut owners, &json!({"metadata": {"name": "x"}}), "kfp-tenant", true, &[]).unwrap();
        assert_eq!(object["metadata"]["annotations"]["role"], "a", "the controller still owns it, as on kube-apiserver");
        // A different value takes it over; dropping it then removes it.
        apply(&mut object, &mut owners, &json!({"metadata": {"annotations": {"role": "b"}}}), "kfp-tenant", true, &[]).unwrap();
        apply(&mut object, &mut owners, &json!({"metadata": {"name": "x"}}), "kfp-tenant", true, &[]).unwrap();
        assert!(object["metadata"]["annotations"].get("role").is_none(), "{object}");
    }

    #[test]
    fn pointers_escape_slashes() {
        let mut object = json!({});
        set(&mut object, "/metadata/annotations/eks.amazonaws.com~1role-arn", json!("arn"));
        assert_eq!(object, json!({"metadata": {"annotations": {"eks.amazonaws.com/role-arn": "arn"}}}));
        assert!(leaves(&object, &[]).contains_key("/metadata/annotations/eks.amazonaws.com~1role-arn"));
        remove(&mut object, "/metadata/annotations/eks.amazonaws.com~1role-arn");
        assert_eq!(object, json!({"metadata": {"annotations": {}}}));
    }
}
