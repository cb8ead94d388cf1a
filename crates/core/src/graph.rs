//! A generic dependency graph and its walker. It knows nodes and edges, not
//! resources.
//!
//! [`Dag::walk`] runs a node once everything it depends on has succeeded, at
//! most `parallelism` at a time. A failed node's dependents, and theirs, are
//! not run: they are reported as skipped, naming the failure upstream. Nodes
//! that do not depend on the failure carry on. A [`Stop`] ends a walk early
//! and cleanly: nothing new starts, what runs may finish within a grace
//! period, and every node says whether it ran.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};

/// A node's place in its [`Dag`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(usize);

impl NodeId {
    /// Position in the `Vec` that [`Dag::walk`] returns.
    pub fn ordinal(self) -> usize {
        self.0
    }

    fn index(self) -> NodeIndex {
        NodeIndex::new(self.0)
    }
}

#[derive(Clone, Debug)]
pub struct Dag<T> {
    graph: DiGraph<T, ()>,
}

impl<T> Default for Dag<T> {
    fn default() -> Self {
        Dag { graph: DiGraph::new() }
    }
}

/// The graph has a cycle through this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("dependency cycle through node {0:?}")]
pub struct Cycle(pub NodeId);

/// How a node's turn in a walk ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Visit<E> {
    Done,
    Failed(E),
    /// Not run because `because` failed upstream.
    Skipped {
        because: NodeId,
    },
    /// Not started: the walk was stopped first.
    NotStarted,
    /// Still running when the walk's grace period after a stop ran out; it
    /// may or may not have taken effect.
    Abandoned,
}

/// A walk's slots as its visits see them: a visit that has done its calls
/// and only waits (for a controller, say) gives its slot back with
/// [`Slots::release`], so that another node starts meanwhile. Waiting is
/// not work: `parallelism` bounds the calls in flight, not the waits.
#[derive(Debug, Default)]
pub struct Slots {
    released: std::sync::Mutex<Vec<NodeId>>,
    notify: tokio::sync::Notify,
}

impl Slots {
    /// The running node `id` holds its slot no longer.
    pub fn release(&self, id: NodeId) {
        self.released.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(id);
        self.notify.notify_one();
    }

    fn take_released(&self) -> Vec<NodeId> {
        std::mem::take(&mut *self.released.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// Asks walks to start nothing new; shared by whoever may ask (a signal
/// handler) and the walks that heed it.
#[derive(Clone, Debug, Default)]
pub struct Stop {
    stopped: Arc<AtomicBool>,
    notify: Arc<tokio::sync::Notify>,
}

impl Stop {
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Resolves once [`Stop::stop`] was called.
    pub async fn stopped(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
    }
}

impl<T> Dag<T> {
    pub fn add_node(&mut self, node: T) -> NodeId {
        NodeId(self.graph.add_node(node).index())
    }

    /// `after` runs only once `before` has succeeded.
    pub fn add_edge(&mut self, before: NodeId, after: NodeId) {
        self.graph.update_edge(before.index(), after.index(), ());
    }

    pub fn node(&self, id: NodeId) -> &T {
        &self.graph[id.index()]
    }

    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, &T)> {
        self.graph.node_indices().map(|i| (NodeId(i.index()), &self.graph[i]))
    }

    /// Every edge as (before, after).
    pub fn edges(&self) -> impl Iterator<Item = (NodeId, NodeId)> + '_ {
        self.graph.raw_edges().iter().map(|e| (NodeId(e.source().index()), NodeId(e.target().index())))
    }

    pub fn check_acyclic(&self) -> Result<(), Cycle> {
        petgraph::algo::toposort(&self.graph, None).map(|_| ()).map_err(|c| Cycle(NodeId(c.node_id().index())))
    }

    /// Runs `visit` on every node in dependency order, `parallelism` at a time
    /// (at least one). Returns each node's outcome, indexed by [`NodeId`].
    pub async fn walk<'a, E, F, Fut>(&'a self, parallelism: usize, visit: F) -> Result<Vec<Visit<E>>, Cycle>
    where
        F: Fn(NodeId, &'a T) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        self.walk_until(parallelism, &Stop::default(), Duration::ZERO, visit).await
    }

    /// [`Dag::walk`] that heeds `stop`: once stopped, no node starts, and
    /// those running get `grace` to finish before they are abandoned.
    pub async fn walk_until<'a, E, F, Fut>(
        &'a self,
        parallelism: usize,
        stop: &Stop,
        grace: Duration,
        visit: F,
    ) -> Result<Vec<Visit<E>>, Cycle>
    where
        F: Fn(NodeId, &'a T) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        self.walk_with_slots(parallelism, stop, grace, &Slots::default(), visit).await
    }

    /// [`Dag::walk_until`] whose visits may give their slot back while they
    /// wait ([`Slots::release`]).
    pub async fn walk_with_slots<'a, E, F, Fut>(
        &'a self,
        parallelism: usize,
        stop: &Stop,
        grace: Duration,
        slots: &Slots,
        visit: F,
    ) -> Result<Vec<Visit<E>>, Cycle>
    where
        F: Fn(NodeId, &'a T) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        self.check_acyclic()?;
        let n = self.graph.node_count();
        let mut waiting_on: Vec<usize> =
            self.graph.node_indices().map(|i| self.graph.neighbors_directed(i, Direction::Incoming).count()).collect();
        let mut blocked_by: Vec<Option<NodeId>> = vec![None; n];
        let mut outcomes: Vec<Option<Visit<E>>> = (0..n).map(|_| None).collect();
        let mut ready: VecDeque<NodeId> = (0..n).filter(|&i| waiting_on[i] == 0).map(NodeId).collect();
        let mut running = FuturesUnordered::new();
        let parallelism = parallelism.max(1);
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut started = vec![false; n];
        // Running nodes that still hold a slot.
        let mut holding = vec![false; n];
        let mut busy = 0usize;

        loop {
            for id in slots.take_released() {
                if std::mem::take(&mut holding[id.0]) {
                    busy -= 1;
                }
            }
            while busy < parallelism && !stop.is_stopped() {
                let Some(id) = ready.pop_front() else { break };
                started[id.0] = true;
                holding[id.0] = true;
                busy += 1;
                let fut = visit(id, &self.graph[id.index()]);
                running.push(async move { (id, fut.await) });
            }
            if running.is_empty() {
                break;
            }
            let next = if stop.is_stopped() {
                let until = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + grace);
                match tokio::time::timeout_at(until, running.next()).await {
                    Ok(next) => next,
                    // The grace period is over: what still runs is abandoned.
                    Err(_) => break,
                }
            } else {
                let stopped = std::pin::pin!(stop.stopped());
                let released = std::pin::pin!(slots.notify.notified());
                let interrupt = futures_util::future::select(stopped, released);
                match futures_util::future::select(running.next(), interrupt).await {
                    futures_util::future::Either::Left((next, _)) => next,
                    futures_util::future::Either::Right(_) => continue,
                }
            };
            let Some((id, result)) = next else { break };
            if std::mem::take(&mut holding[id.0]) {
                busy -= 1;
            }
            let failed = result.is_err();
            outcomes[id.0] = Some(match result {
                Ok(()) => Visit::Done,
                Err(e) => Visit::Failed(e),
            });
            // Release dependents; a failure blocks them, and skipping travels on.
            let mut finished = vec![(id, failed.then_some(id))];
            while let Some((done, cause)) = finished.pop() {
                for dep in self.graph.neighbors_directed(done.index(), Direction::Outgoing) {
                    let d = dep.index();
                    if cause.is_some() && blocked_by[d].is_none() {
                        blocked_by[d] = cause;
                    }
                    waiting_on[d] -= 1;
                    if waiting_on[d] == 0 {
                        match blocked_by[d] {
                            Some(because) => {
                                outcomes[d] = Some(Visit::Skipped { because });
                                finished.push((NodeId(d), Some(because)));
                            }
                            None => ready.push_back(NodeId(d)),
                        }
                    }
                }
            }
        }
        drop(running);
        Ok(outcomes
            .into_iter()
            .zip(started)
            .map(|(outcome, started)| match (outcome, started) {
                (Some(visit), _) => visit,
                (None, true) => Visit::Abandoned,
                (None, false) => Visit::NotStarted,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Builds a graph of named nodes from `before>after` edges, walks it failing
    /// the nodes named in `fail`, and returns each node's outcome as text.
    fn check(edges: &[&str], fail: &[&str], parallelism: usize, expected: &[&str]) {
        let mut dag = Dag::default();
        let mut ids = std::collections::BTreeMap::new();
        for e in edges {
            let (a, b) = e.split_once('>').unwrap();
            let ia = *ids.entry(a.to_owned()).or_insert_with(|| dag.add_node(a.to_owned()));
            let ib = *ids.entry(b.to_owned()).or_insert_with(|| dag.add_node(b.to_owned()));
            dag.add_edge(ia, ib);
        }
        let order = Mutex::new(Vec::new());
        let outcomes = futures_util::FutureExt::now_or_never(dag.walk(parallelism, |_, name: &String| {
            order.lock().unwrap().push(name.clone());
            let fails = fail.contains(&name.as_str());
            async move { if fails { Err("boom") } else { Ok(()) } }
        }))
        .unwrap()
        .unwrap();
        let mut got: Vec<String> = dag
            .nodes()
            .map(|(id, name)| match &outcomes[id.0] {
                Visit::Done => format!("{name}:done"),
                Visit::Failed(_) => format!("{name}:failed"),
                Visit::Skipped { because } => format!("{name}:skipped({})", dag.node(*because)),
                Visit::NotStarted | Visit::Abandoned => panic!("{name} did not run in a walk nobody stopped"),
            })
            .collect();
        got.sort();
        assert_eq!(got, expected);
        // Dependencies ran first.
        let order = order.into_inner().unwrap();
        for e in edges {
            let (a, b) = e.split_once('>').unwrap();
            if let (Some(pa), Some(pb)) = (order.iter().position(|x| x == a), order.iter().position(|x| x == b)) {
                assert!(pa < pb, "{a} ran after {b}: {order:?}");
            }
        }
    }

    #[test]
    fn runs_in_dependency_order() {
        check(&["a>b", "b>c", "a>c"], &[], 1, &["a:done", "b:done", "c:done"]);
        check(&["a>b", "b>c", "a>c"], &[], 8, &["a:done", "b:done", "c:done"]);
    }

    #[test]
    fn failure_skips_only_dependents_transitively() {
        check(
            &["root>a1", "a1>a2", "a2>a3", "root>b1", "b1>b2"],
            &["a1"],
            2,
            &["a1:failed", "a2:skipped(a1)", "a3:skipped(a1)", "b1:done", "b2:done", "root:done"],
        );
    }

    #[test]
    fn a_node_with_one_failed_parent_is_skipped() {
        check(&["x>z", "y>z"], &["x"], 3, &["x:failed", "y:done", "z:skipped(x)"]);
    }

    #[test]
    fn cycles_are_refused() {
        let mut dag = Dag::default();
        let (a, b) = (dag.add_node(()), dag.add_node(()));
        dag.add_edge(a, b);
        dag.add_edge(b, a);
        let result = futures_util::FutureExt::now_or_never(dag.walk(1, |_, _| async { Ok::<_, ()>(()) })).unwrap();
        assert!(result.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_that_only_waits_gives_its_slot_back() {
        // Ten independent nodes at parallelism 2: each calls for 1 s, then
        // waits 10 s. Holding their slots while waiting, they would take
        // 5 × 11 s; giving them back, the calls run two at a time and the
        // waits overlap: 5 × 1 s + 10 s.
        let mut dag = Dag::default();
        for _ in 0..10 {
            dag.add_node(());
        }
        let slots = Slots::default();
        let slots = &slots;
        let started = tokio::time::Instant::now();
        let outcomes = dag
            .walk_with_slots(2, &Stop::default(), Duration::ZERO, slots, |id, _| async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                slots.release(id);
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok::<_, ()>(())
            })
            .await
            .unwrap();
        assert!(outcomes.iter().all(|o| *o == Visit::Done));
        assert_eq!(started.elapsed(), Duration::from_secs(15));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_starts_nothing_new_and_abandons_what_outlives_the_grace() {
        // a>b>c; a takes 1 s, b 10 s; stop at 1.5 s (while b runs), grace 2 s.
        let mut dag = Dag::default();
        let (a, b, c) = (dag.add_node(1u64), dag.add_node(10), dag.add_node(1));
        dag.add_edge(a, b);
        dag.add_edge(b, c);
        let stop = Stop::default();
        let stopper = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            stopper.stop();
        });
        let started = tokio::time::Instant::now();
        let outcomes = dag
            .walk_until(4, &stop, Duration::from_secs(2), |_, secs| async move {
                tokio::time::sleep(Duration::from_secs(*secs)).await;
                Ok::<_, ()>(())
            })
            .await
            .unwrap();
        assert_eq!(outcomes, [Visit::Done, Visit::Abandoned, Visit::NotStarted]);
        assert_eq!(started.elapsed(), Duration::from_millis(3500), "stopped at 1.5 s, then 2 s of grace");

        // Stopped before anything: nothing starts.
        let outcomes = dag.walk_until(4, &stop, Duration::from_secs(2), |_, _| async { Ok::<_, ()>(()) }).await.unwrap();
        assert_eq!(outcomes, [Visit::NotStarted, Visit::NotStarted, Visit::NotStarted]);
    }

    #[tokio::test]
    async fn parallelism_bounds_nodes_in_flight() {
        let mut dag = Dag::default();
        for _ in 0..20 {
            dag.add_node(());
        }
        let in_flight = std::sync::atomic::AtomicUsize::new(0);
        let peak = std::sync::atomic::AtomicUsize::new(0);
        let outcomes = dag
            .walk(4, |_, _| async {
                let now = in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                tokio::task::yield_now().await;
                in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                Ok::<_, ()>(())
            })
            .await
            .unwrap();
        assert_eq!(outcomes.len(), 20);
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 4);
    }
}
