//! The patch formats clients send: JSON merge patch (RFC 7386; strategic
//! merge patches of the kinds served here mean the same) and JSON patch
//! (RFC 6902).

use serde_json::{Value, json};

pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            let map = target.as_object_mut().expect("invariant: made an object above");
            for (k, v) in fields {
                if v.is_null() {
                    map.remove(k);
                } else {
                    merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Applies `add`, `replace`, `remove` and `test` operations; the first that
/// cannot be applied fails the whole patch, as on the real server.
pub fn json_patch(target: &mut Value, operations: &Value) -> Result<(), String> {
    let Some(ops) = operations.as_array() else { return Err("a JSON patch is an array of operations".into()) };
    let mut result = target.clone();
    for op in ops {
        let path = op["path"].as_str().ok_or("an operation without a path")?;
        match op["op"].as_str() {
            Some("test") => {
                if result.pointer(path) != Some(&op["value"]) {
                    return Err(format!("the test of {path} failed"));
                }
            }
            Some("remove") => {
                let (parent, last) = split(path)?;
                let removed = match result.pointer_mut(&parent) {
                    Some(Value::Object(map)) => map.remove(&last).is_some(),
                    Some(Value::Array(items)) => last.parse::<usize>().ok().filter(|i| *i < items.len()).map(|i| items.remove(i)).is_some(),
                    _ => false,
                };
                if !removed {
                    return Err(format!("unable to remove nonexistent key: {path}"));
                }
            }
            Some(kind @ ("add" | "replace")) => {
                let value = op["value"].clone();
                if path.is_empty() {
                    result = value;
                    continue;
                }
                let (parent, last) = split(path)?;
                match result.pointer_mut(&parent) {
                    Some(Value::Object(map)) => {
                        if kind == "replace" && !map.contains_key(&last) {
                            return Err(format!("replace operation does not apply: doc is missing key: {path}"));
                        }
                        map.insert(last, value);
                    }
                    Some(Value::Array(items)) if last == "-" && kind == "add" => items.push(value),
                    Some(Value::Array(items)) => match last.parse::<usize>() {
                        Ok(i) if kind == "add" && i <= items.len() => items.insert(i, value),
                        Ok(i) if i < items.len() => items[i] = value,
                        _ => return Err(format!("index out of range: {path}")),
                    },
                    _ => return Err(format!("doc is missing path: {path}")),
                }
            }
            other => return Err(format!("unsupported JSON patch operation {other:?}")),
        }
    }
    *target = result;
    Ok(())
}

fn split(path: &str) -> Result<(String, String), String> {
    let (parent, last) = path.rsplit_once('/').ok_or_else(|| format!("{path:?} is not a JSON pointer"))?;
    Ok((parent.to_owned(), last.replace("~1", "/").replace("~0", "~")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_patch_operations() {
        let mut doc = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"x": [1, 2]}});
        json_patch(
            &mut doc,
            &json!([
                {"op": "test", "path": "/metadata/labels/a", "value": "1"},
                {"op": "add", "path": "/metadata/labels/kfp-tenant~1cluster", "value": "c"},
                {"op": "replace", "path": "/spec", "value": {"y": true}},
                {"op": "remove", "path": "/metadata/labels/a"},
            ]),
        )
        .unwrap();
        assert_eq!(doc, json!({"metadata": {"labels": {"kfp-tenant/cluster": "c"}}, "spec": {"y": true}}));
        let before = doc.clone();
        assert!(json_patch(&mut doc, &json!([{"op": "remove", "path": "/spec/y"}, {"op": "test", "path": "/spec", "value": 1}])).is_err());
        assert_eq!(doc, before, "a failed patch changes nothing");
    }
}
