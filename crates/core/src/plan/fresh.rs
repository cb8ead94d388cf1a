//! Saved plans against the world as it is now: the reads that refresh a
//! plan's resources, and the fingerprints that tell whether any changed.

use std::fmt;

use crate::address::Address;
use crate::identity::Proof;
use crate::plan::context::{ProviderNeed, context};
use crate::plan::{Mode, Plan, Reason, ResourceChange, State};
use crate::policy;
use crate::refresh::{Observed, ReadSet};

/// Everything a plan's changes were computed from.
pub fn reads_of(plan: &Plan) -> ReadSet {
    // A plan that records a vouched binding was made with --bind-cluster.
    let vouched = plan.changes.iter().any(|c| matches!(c.reason, Some(Reason::Bind { proof: Proof::Vouched })));
    let mut reads = ReadSet { cluster: plan.cluster.name.clone(), vouched, ..Default::default() };
    for change in &plan.changes {
        if let Some(state) = change.before.as_ref().or(change.after.as_ref()) {
            state.add_reads(change, &mut reads);
        }
    }
    reads
}

/// The live state of the resource a change is about, from a new refresh.
fn current(change: &ResourceChange, observed: &Observed) -> Option<State> {
    change.before.as_ref().or(change.after.as_ref())?.current(observed)
}

/// What changed since a saved plan was made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct StalePlan {
    pub changed: Vec<Address>,
}

impl fmt::Display for StalePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the saved plan is stale: ")?;
        let names: Vec<String> = self.changed.iter().map(Address::to_string).collect();
        write!(f, "{} changed since it was made; run plan again", names.join(", "))
    }
}

/// Refuses a plan whose resources no longer look as they did when it was made.
pub fn check_fresh(plan: &Plan, observed: &Observed) -> Result<(), StalePlan> {
    let mut changed: Vec<Address> = plan
        .changes
        .iter()
        .filter(|c| fingerprint(current(c, observed).as_ref()) != c.observed_fingerprint)
        .map(|c| c.address.clone())
        .collect();
    let need = match plan.mode {
        _ if plan.change(&Address::OidcProvider).is_some() => ProviderNeed::CreateIfMissing,
        Mode::Apply => ProviderNeed::Require,
        Mode::Destroy => ProviderNeed::NotNeeded,
    };
    let context = context(&plan.cluster.name, &plan.cluster.region, &plan.cluster.bucket, observed, need).map(|(c, _)| c);
    if context.as_ref().ok() != Some(&plan.cluster) {
        changed.insert(0, Address::ClusterOidc);
    }
    if changed.is_empty() { Ok(()) } else { Err(StalePlan { changed }) }
}

/// A stable fingerprint (FNV-1a, 64 bits) of a state's canonical JSON.
pub fn fingerprint(state: Option<&State>) -> String {
    let Some(state) = state else { return "absent".to_owned() };
    let value = serde_json::to_value(state).expect("invariant: states serialize");
    let mut hash = crate::fnv::Hasher::default();
    serde_json::to_writer(&mut hash, &policy::canonicalize(&value)).expect("invariant: hashing cannot fail");
    format!("{:016x}", hash.0)
}
