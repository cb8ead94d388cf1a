//! The fake's storage: objects by (resource, namespace, name), one revision
//! counter for all of them (etcd's), the watch events of recent revisions,
//! field ownership, and the parts of deletion that the real control plane
//! splits between the API server and kube-controller-manager: finalizers,
//! `foregroundDeletion`, the garbage collector following owner references,
//! and the namespace controller emptying a terminating namespace.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::{Map, Value, json};

use super::fields::{self, Owners};
use super::kinds::{Kind, find, kind_of};

pub type Key = (&'static str, String, String);

/// Watch events kept for watches that resume from a resourceVersion; older
/// ones are compacted away and such a watch answers 410 Gone.
pub const RETAINED_EVENTS: usize = 10_000;

pub const FOREGROUND: &str = "foregroundDeletion";

/// One change, as a watch reports it.
#[derive(Clone, Debug)]
pub struct Event {
    pub revision: u64,
    pub plural: &'static str,
    pub namespace: String,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    pub object: Value,
    /// The object before a `MODIFIED`, for selectors it stopped matching.
    pub previous: Option<Value>,
}

#[derive(Debug)]
pub struct Store {
    pub objects: BTreeMap<Key, Value>,
    owners: BTreeMap<Key, Owners>,
    pub revision: u64,
    uid: u64,
    pub events: VecDeque<Event>,
    /// The revision of the newest event compacted away.
    pub compacted: u64,
    pub requests: BTreeMap<String, u64>,
    /// Tells watches a new revision exists.
    notify: tokio::sync::watch::Sender<u64>,
    /// Bumped to cut every open watch, as a dropped connection would.
    pub cuts: u64,
}

impl Store {
    pub fn new(notify: tokio::sync::watch::Sender<u64>) -> Self {
        Store {
            objects: BTreeMap::new(),
            owners: BTreeMap::new(),
            revision: 0,
            uid: 0,
            events: VecDeque::new(),
            compacted: 0,
            requests: BTreeMap::new(),
            notify,
            cuts: 0,
        }
    }

    pub fn get(&self, plural: &str, ns: &str, name: &str) -> Option<&Value> {
        let kind = find(plural)?;
        self.objects.get(&(kind.plural, ns.to_owned(), name.to_owned()))
    }

    fn record(&mut self, kind: &'static Kind, ns: &str, event: &'static str, object: Value, previous: Option<Value>) {
        self.events.push_back(Event {
            revision: self.revision,
            plural: kind.plural,
            namespace: ns.to_owned(),
            kind: event,
            object,
            previous,
        });
        while self.events.len() > RETAINED_EVENTS {
            if let Some(old) = self.events.pop_front() {
                self.compacted = old.revision;
            }
        }
        self.notify.send_replace(self.revision);
    }

    /// Forgets every retained event: a watch resuming from any earlier
    /// revision now answers 410 Gone, as after etcd compacts.
    /// Ends every open watch without a word, as a dropped connection or a
    /// restarted API server would.
    pub fn cut_watches(&mut self) {
        self.cuts += 1;
        self.notify.send_replace(self.revision);
    }

    pub fn compact(&mut self) {
        self.compacted = self.revision;
        self.events.clear();
    }

    /// Stores `object` as it should be, stamping kind, namespace,
    /// resourceVersion and, when new, uid and creationTimestamp. An object
    /// marked for deletion whose last finalizer is gone is deleted instead.
    pub fn put(&mut self, kind: &'static Kind, ns: &str, mut object: Value) -> Value {
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let key = (kind.plural, ns.to_owned(), name);
        let previous = self.objects.get(&key).cloned();
        object["apiVersion"] = json!(kind.api_version());
        object["kind"] = json!(kind.kind);
        if object["metadata"]["finalizers"].as_array().is_some_and(Vec::is_empty) {
            metadata(&mut object).remove("finalizers");
        }
        // A write that changes nothing is no write: no new resourceVersion, no event.
        if let Some(p) = &previous {
            let mut same = object.clone();
            let meta = metadata(&mut same);
            for field in ["resourceVersion", "uid", "creationTimestamp", "namespace"] {
                match p["metadata"].get(field) {
                    Some(v) => meta.insert(field.into(), v.clone()),
                    None => meta.remove(field),
                };
            }
            if &same == p {
                return same;
            }
        }
        self.revision += 1;
        let meta = metadata(&mut object);
        if kind.namespaced {
            meta.insert("namespace".into(), json!(ns));
        }
        meta.insert("resourceVersion".into(), json!(self.revision.to_string()));
        match &previous {
            Some(p) => {
                for field in ["uid", "creationTimestamp"] {
                    meta.insert(field.into(), p["metadata"][field].clone());
                }
            }
            None => {
                self.uid += 1;
                meta.insert("uid".into(), json!(format!("00000000-0000-0000-0000-{:012}", self.uid)));
                meta.insert("creationTimestamp".into(), json!(now()));
            }
        }
        // A namespace keeps the namespace controller's finalizer in its spec.
        let finished = object["metadata"]["deletionTimestamp"].is_string()
            && object["metadata"]["finalizers"].is_null()
            && object["spec"]["finalizers"].as_array().is_none_or(Vec::is_empty);
        if finished {
            self.objects.remove(&key);
            self.owners.remove(&key);
            self.record(kind, ns, "DELETED", object.clone(), None);
        } else {
            self.objects.insert(key, object.clone());
            let event = if previous.is_some() { "MODIFIED" } else { "ADDED" };
            self.record(kind, ns, event, object.clone(), previous);
        }
        object
    }

    /// A server-side apply by `manager` (see [`fields::apply`]).
    pub fn apply(
        &mut self,
        kind: &'static Kind,
        ns: &str,
        name: &str,
        config: &Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, String> {
        let key = (kind.plural, ns.to_owned(), name.to_owned());
        let mut object = self.objects.get(&key).cloned().unwrap_or_else(|| json!({"metadata": {"name": name}}));
        let owners = self.owners.entry(key).or_default();
        fields::apply(&mut object, owners, config, manager, force, kind.atomic)?;
        Ok(self.put(kind, ns, object))
    }

    /// An update by `manager` from `before` to `after`: ownership follows, then it is stored.
    pub fn update(&mut self, kind: &'static Kind, ns: &str, before: Option<&Value>, after: Value, manager: &str) -> Value {
        let name = after["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let owners = self.owners.entry((kind.plural, ns.to_owned(), name)).or_default();
        fields::update(before.unwrap_or(&Value::Null), &after, owners, manager, kind.atomic);
        self.put(kind, ns, after)
    }

    /// Deletes now, or marks for deletion while finalizers remain. With
    /// `foreground`, the garbage collector deletes the object's dependents
    /// first. A namespace terminates: its content goes, then it does.
    pub fn delete(&mut self, kind: &'static Kind, ns: &str, name: &str, foreground: bool) -> Option<Value> {
        let key = (kind.plural, ns.to_owned(), name.to_owned());
        let mut object = self.objects.get(&key)?.clone();
        let has_finalizers = object["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        if kind.plural == "namespaces" || has_finalizers || foreground {
            if object["metadata"]["deletionTimestamp"].is_string() {
                return Some(object);
            }
            let meta = metadata(&mut object);
            meta.insert("deletionTimestamp".into(), json!(now()));
            if foreground {
                let finalizers = meta.entry("finalizers").or_insert(json!([]));
                if let Some(list) = finalizers.as_array_mut() {
                    list.push(json!(FOREGROUND));
                }
            }
            if kind.plural == "namespaces" {
                object["status"] = json!({"phase": "Terminating"});
                // The namespace controller's own finalizer, in spec as on a real server.
                object["spec"] = json!({"finalizers": ["kubernetes"]});
            }
            return Some(self.put(kind, ns, object));
        }
        self.remove(&key);
        Some(object)
    }

    fn remove(&mut self, key: &Key) {
        if let Some(mut object) = self.objects.remove(key) {
            self.owners.remove(key);
            self.revision += 1;
            metadata(&mut object).insert("resourceVersion".into(), json!(self.revision.to_string()));
            self.record(kind_of(key.0), &key.1, "DELETED", object, None);
        }
    }

    /// One pass of kube-controller-manager's garbage collector and namespace
    /// controller, repeated until nothing changes. Returns whether anything did.
    pub fn collect_garbage(&mut self) -> bool {
        let mut changed_any = false;
        loop {
            let mut changed = false;
            let uids: BTreeSet<String> = self.objects.values().filter_map(|o| o["metadata"]["uid"].as_str().map(str::to_owned)).collect();
            let keys: Vec<Key> = self.objects.keys().cloned().collect();
            for key in keys {
                // Most objects are neither terminating nor owned: skip them before copying.
                let Some(object) = self.objects.get(&key) else { continue };
                let deleting = object["metadata"]["deletionTimestamp"].is_string();
                let owned = object["metadata"]["ownerReferences"].as_array().is_some_and(|r| !r.is_empty());
                if !deleting && !owned {
                    continue;
                }
                let object = object.clone();
                let uid = object["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
                // A terminating namespace: delete its content; once empty, finalize it.
                if key.0 == "namespaces" && deleting {
                    let content: Vec<Key> = self.objects.keys().filter(|(_, n, _)| *n == key.2).cloned().collect();
                    for c in &content {
                        if !self.objects.get(c).is_some_and(|o| o["metadata"]["deletionTimestamp"].is_string()) {
                            self.delete(kind_of(c.0), &c.1, &c.2, false);
                            changed = true;
                        }
                    }
                    if content.iter().all(|c| !self.objects.contains_key(c)) {
                        self.remove(&key);
                        changed = true;
                    }
                    continue;
                }
                // Foreground deletion: dependents first, then the owner.
                if deleting && has_finalizer(&object, FOREGROUND) {
                    let dependents: Vec<Key> = self.objects.iter().filter(|(_, o)| owned_by(o, &uid)).map(|(k, _)| k.clone()).collect();
                    for d in &dependents {
                        let already = self.objects.get(d).is_some_and(|o| o["metadata"]["deletionTimestamp"].is_string());
                        if !already {
                            self.delete(kind_of(d.0), &d.1, &d.2, false);
                            changed = true;
                        }
                    }
                    let blocked = self.objects.values().any(|o| owned_by(o, &uid));
                    if !blocked {
                        let mut object = object;
                        if let Some(list) = object["metadata"]["finalizers"].as_array_mut() {
                            list.retain(|f| f != FOREGROUND);
                        }
                        self.put(kind_of(key.0), &key.1, object);
                        changed = true;
                    }
                    continue;
                }
                // Orphans: every owner is gone.
                let refs = object["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default();
                if !deleting && !refs.is_empty() && refs.iter().all(|r| !uids.contains(r["uid"].as_str().unwrap_or_default())) {
                    self.delete(kind_of(key.0), &key.1, &key.2, false);
                    changed = true;
                }
            }
            if !changed {
                return changed_any;
            }
            changed_any = true;
        }
    }
}

fn has_finalizer(object: &Value, finalizer: &str) -> bool {
    object["metadata"]["finalizers"].as_array().is_some_and(|f| f.iter().any(|x| x == finalizer))
}

fn owned_by(object: &Value, uid: &str) -> bool {
    object["metadata"]["ownerReferences"].as_array().is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
}

pub fn metadata(object: &mut Value) -> &mut Map<String, Value> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    object["metadata"].as_object_mut().expect("invariant: metadata was just made an object")
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
