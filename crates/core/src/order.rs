//! Every order between resources, made from what each kind declares
//! (`Resource::dependencies`, `PLACE`, `waits_for_dependency`,
//! `road_change`, `waits_for` in `crate::kinds`) by the few rules below,
//! so that what `kfp-tenant graph` draws is what apply walks.
//!
//! - [`dependencies`]: what a resource is computed from, by name alone;
//!   [`resources`] and [`file()`] draw them (a file's graph before any plan);
//! - [`walk`]: a plan's changes as apply walks them: a change after the
//!   planned changes it depends on (looking through unplanned ones), a
//!   deletion before them when they are deleted too; a kind with a place
//!   after every change of its tenant of a lower place; a road's grants
//!   before the other road's revocations in a tenant; a change after what
//!   its content names (a Profile after its owner's Cognito user), before it
//!   when that one is deleted; [`plan`] is the same graph as addresses.

use std::collections::BTreeMap;

use crate::address::{Address, Kind};
use crate::graph::{Dag, NodeId};
use crate::kinds::{self, RoadChange};
use crate::plan::{Action, Plan, ResourceChange};

/// What the resource at `address` is computed from: the edges of the
/// resource graph, known from names alone (the trust policy from the
/// account and the cluster's issuer, the role from its trust policy, a
/// Profile from the role whose ARN it names, ...).
pub fn dependencies(address: &Address) -> Vec<Address> {
    kinds::dependencies(address)
}

/// These resources and everything they depend on, data sources and derived
/// documents included, with the edges of [`dependencies`].
pub fn resources(addresses: impl IntoIterator<Item = Address>) -> Dag<Address> {
    let mut dag = Dag::default();
    let mut ids = BTreeMap::new();
    let mut todo: Vec<Address> = addresses.into_iter().collect();
    while let Some(address) = todo.pop() {
        if ids.contains_key(&address) {
            continue;
        }
        todo.extend(dependencies(&address));
        ids.insert(address, ());
    }
    let ids: BTreeMap<Address, NodeId> = ids.into_keys().map(|a| (a.clone(), dag.add_node(a))).collect();
    for (address, &id) in &ids {
        for dependency in dependencies(address) {
            if let Some(&from) = ids.get(&dependency) {
                dag.add_edge(from, id);
            }
        }
    }
    dag
}

/// What the file asks for, drawn before any plan (`kfp-tenant graph -f`):
/// the tenants' resources (their pipeline config included), their owners'
/// Cognito users when the file names a pool, everything they depend on, and
/// a Profile after its owner's user (the one order a file shows that
/// follows from content rather than names).
pub fn file(desired: &crate::spec::Desired) -> Dag<Address> {
    let mut addresses = vec![Address::ClusterIdentity];
    let mut owned = Vec::new();
    for tenant in &desired.tenants {
        addresses.extend(Kind::PER_TENANT.into_iter().map(|k| Address::tenant(&tenant.namespace, k)));
        addresses.extend(tenant.service_accounts.iter().map(|sa| Address::service_account(&tenant.namespace, sa)));
        if tenant.road == crate::spec::Road::PodIdentity {
            addresses.extend(tenant.service_accounts.iter().map(|sa| Address::pod_identity(&tenant.namespace, sa)));
        }
        if tenant.pipeline_root.is_some() {
            addresses.extend(crate::ports::PIPELINE_CONFIG_MAPS.map(|name| Address::pipeline_config(&tenant.namespace, name)));
        }
        if desired.cognito.is_some() {
            let user = kinds::owner_user(&tenant.owner);
            owned.push((user.clone(), Address::tenant(&tenant.namespace, Kind::Profile)));
            addresses.push(user);
        }
    }
    let mut dag = resources(addresses);
    let ids: BTreeMap<Address, NodeId> = dag.nodes().map(|(id, a)| (a.clone(), id)).collect();
    for (user, profile) in owned {
        dag.add_edge(ids[&user], ids[&profile]);
    }
    dag
}

/// A plan's changes as apply walks them, every edge from the rules in this
/// module's header.
pub fn walk(plan: &Plan) -> Dag<&ResourceChange> {
    let mut dag = Dag::default();
    let mut ids = BTreeMap::new();
    for change in &plan.changes {
        ids.insert(&change.address, dag.add_node(change));
    }
    // Each tenant's changes, so that the orders between them cost a
    // tenant's changes, not the whole plan's, however many tenants move.
    let mut by_tenant: BTreeMap<&str, Vec<&ResourceChange>> = BTreeMap::new();
    for change in &plan.changes {
        if let Some(ns) = change.address.namespace() {
            by_tenant.entry(ns).or_default().push(change);
        }
    }
    let tenant = |change: &ResourceChange| change.address.namespace().and_then(|ns| by_tenant.get(ns)).map_or(&[][..], Vec::as_slice);
    for change in &plan.changes {
        let me = ids[&change.address];
        let place = kinds::place(&change.address);
        if place > 0 {
            for other in tenant(change).iter().filter(|o| kinds::place(&o.address) < place) {
                dag.add_edge(ids[&other.address], me);
            }
            continue;
        }
        if let Some(named) = kinds::waits_for(change)
            && let Some(&them) = ids.get(&named)
        {
            if dag.node(them).action == Action::Delete {
                dag.add_edge(me, them);
            } else {
                dag.add_edge(them, me);
            }
        }
        if kinds::road_change(change) == Some(RoadChange::Revoke) {
            for other in tenant(change).iter().filter(|c| kinds::road_change(c) == Some(RoadChange::Grant)) {
                dag.add_edge(ids[&other.address], me);
            }
        }
        for dependency in planned_dependencies(&change.address, &ids) {
            let them = ids[&dependency];
            let theirs = dag.node(them).action;
            if !kinds::waits_for_dependency(&change.address, change.action, &dependency, theirs) {
                continue;
            }
            // A deletion goes before what it depends on only when that goes
            // too; otherwise after it, like any change (an association
            // deleted while its role gains IRSA's statement comes after it).
            if change.action == Action::Delete && theirs == Action::Delete {
                dag.add_edge(me, them);
            } else {
                dag.add_edge(them, me);
            }
        }
    }
    dag
}

/// The order apply walks a plan in, as addresses: every edge of [`walk`]
/// (what `kfp-tenant graph PLAN` draws).
pub fn plan(plan: &Plan) -> Dag<Address> {
    let walked = walk(plan);
    let mut dag = Dag::default();
    let ids: BTreeMap<_, _> = walked.nodes().map(|(id, change)| (id, dag.add_node(change.address.clone()))).collect();
    for (before, after) in walked.edges() {
        dag.add_edge(ids[&before], ids[&after]);
    }
    dag
}

/// The planned resources `address` depends on, looking through those that
/// are not in the plan (a role depends on the OIDC provider through its trust
/// policy, which is derived, not planned).
fn planned_dependencies<T>(address: &Address, planned: &BTreeMap<&Address, T>) -> Vec<Address> {
    let mut found = Vec::new();
    let mut todo = dependencies(address);
    while let Some(dependency) = todo.pop() {
        if planned.contains_key(&dependency) {
            if !found.contains(&dependency) {
                found.push(dependency);
            }
        } else {
            todo.extend(dependencies(&dependency));
        }
    }
    found
}
