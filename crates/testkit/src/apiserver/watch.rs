//! Watches: `?watch=true` on a collection streams its changes as
//! newline-delimited JSON events, the way kube-runtime's watcher and kubectl
//! read them: `ADDED`/`MODIFIED`/`DELETED` with the object, from a
//! resourceVersion (synthetic `ADDED` events for what exists when none or
//! `0` is given), a `BOOKMARK` when `timeoutSeconds` ends the stream, and an
//! `ERROR` 410 Gone for a resourceVersion older than the retained events.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use hyper::body::Frame;
use serde_json::{Value, json};

use super::kinds::Kind;
use super::selector_matches;
use super::store::Store;
use crate::lock;

/// Which objects a list or watch sees.
#[derive(Clone, Debug)]
pub struct Filter {
    pub kind: &'static Kind,
    /// Empty: every namespace.
    pub namespace: String,
    pub labels: String,
    /// `metadata.name=x`, `metadata.namespace=y`, comma-separated.
    pub fields: String,
}

impl Filter {
    pub fn matches(&self, plural: &str, namespace: &str, object: &Value) -> bool {
        plural == self.kind.plural
            && (self.namespace.is_empty() || namespace == self.namespace)
            && selector_matches(&self.labels, &object["metadata"]["labels"])
            && self.fields.split(',').map(str::trim).filter(|t| !t.is_empty()).all(|term| {
                let (negated, (key, value)) = match term.split_once("!=") {
                    Some(kv) => (true, kv),
                    None => (false, term.split_once("==").or_else(|| term.split_once('=')).unwrap_or((term, ""))),
                };
                let actual = match key.trim() {
                    "metadata.name" => object["metadata"]["name"].as_str(),
                    "metadata.namespace" => object["metadata"]["namespace"].as_str(),
                    _ => None,
                };
                (actual == Some(value.trim())) != negated
            })
    }
}

/// Where a watch starts.
#[derive(Clone, Copy, Debug)]
pub enum Start {
    /// What exists now, as `ADDED` events, then changes.
    Current,
    /// Changes after this revision.
    After(u64),
}

struct State {
    store: Arc<Mutex<Store>>,
    changes: tokio::sync::watch::Receiver<u64>,
    filter: Filter,
    last: u64,
    pending: VecDeque<Bytes>,
    deadline: tokio::time::Instant,
    bookmarks: bool,
    done: bool,
    /// The store's cut count when the watch began.
    cuts: u64,
}

fn line(event: &str, object: &Value) -> Bytes {
    let mut text = json!({"type": event, "object": object}).to_string();
    text.push('\n');
    Bytes::from(text)
}

fn gone(requested: u64, oldest: u64) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("too old resource version: {requested} ({oldest})"), "reason": "Expired", "code": 410})
}

impl State {
    /// Queues what happened after `self.last`; a watch from before the
    /// retained events ends with 410 Gone.
    fn collect(&mut self) {
        let store = lock(&self.store);
        if self.last < store.compacted {
            self.pending.push_back(line("ERROR", &gone(self.last, store.compacted + 1)));
            self.done = true;
            return;
        }
        // Events are in revision order: skip to the first one after `last`.
        let first = store.events.partition_point(|e| e.revision <= self.last);
        for event in store.events.range(first..) {
            let now = self.filter.matches(event.plural, &event.namespace, &event.object);
            let before = event.previous.as_ref().is_some_and(|p| self.filter.matches(event.plural, &event.namespace, p));
            let kind = match (event.kind, before, now) {
                ("MODIFIED", false, true) => "ADDED",
                ("MODIFIED", true, false) => "DELETED",
                (kind, _, true) => kind,
                _ => continue,
            };
            self.pending.push_back(line(kind, &event.object));
        }
        self.last = store.revision;
    }
}

/// The response body of a watch.
pub fn stream(
    store: Arc<Mutex<Store>>,
    changes: tokio::sync::watch::Receiver<u64>,
    filter: Filter,
    start: Start,
    timeout: Duration,
    bookmarks: bool,
) -> impl Stream<Item = Result<Frame<Bytes>, Infallible>> + Send {
    let store_for_cuts = store.clone();
    let mut state = State {
        store,
        changes,
        filter,
        last: 0,
        pending: VecDeque::new(),
        deadline: tokio::time::Instant::now() + timeout,
        bookmarks,
        done: false,
        cuts: lock(&store_for_cuts).cuts,
    };
    match start {
        Start::Current => {
            let store = lock(&state.store);
            for ((plural, ns, _), object) in &store.objects {
                if state.filter.matches(plural, ns, object) {
                    state.pending.push_back(line("ADDED", object));
                }
            }
            state.last = store.revision;
        }
        Start::After(revision) => state.last = revision,
    }
    futures_util::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(next) = state.pending.pop_front() {
                return Some((Ok(Frame::data(next)), state));
            }
            if state.done || lock(&state.store).cuts != state.cuts {
                return None;
            }
            state.collect();
            if !state.pending.is_empty() {
                continue;
            }
            match tokio::time::timeout_at(state.deadline, state.changes.changed()).await {
                Ok(Ok(())) => {}
                // The timeout ran out (or the server stopped): end with a bookmark.
                _ => {
                    state.done = true;
                    if state.bookmarks {
                        let kind = state.filter.kind;
                        let object = json!({"kind": kind.kind, "apiVersion": kind.api_version(),
                            "metadata": {"resourceVersion": state.last.to_string()}});
                        state.pending.push_back(line("BOOKMARK", &object));
                    }
                }
            }
        }
    })
}
