//! One reconcile cycle of the controller: every KubeflowTenant (and the
//! settings file's own tenants) read, validated one by one (an invalid spec
//! is `Invalid`; a namespace the settings file also names, or a spec that
//! clashes with another tenant's, is `Conflict`; a plan's refusal of one
//! tenant is `Refused`, or `Conflict` when another tenant has what it asks
//! for: that resource is Ready=False and nothing of it is written), the rest
//! planned and applied in one run of the engine, then judged Ready only once
//! the cluster shows it usable. Deletions are `delete`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Result;
use kfp_tenant_core::address::Address;
use kfp_tenant_core::apply::{self, ApplyOptions, Outcome, Progress};
use kfp_tenant_core::crd::tenant_of;
use kfp_tenant_core::graph::Stop;
use kfp_tenant_core::plan::Action;
use kfp_tenant_core::plan::{self, Plan, PlanOptions, Refusal};
use kfp_tenant_core::ports::ErrorKind;
use kfp_tenant_core::refresh::ReadSet;
use kfp_tenant_core::spec::{Desired, Source, TenantInput, TenantsFile};
use kfp_tenant_core::validate::{self, InvalidInput};
use kfp_tenant_k8s::TenantResource;
use serde_json::{Value, json};

use crate::live::Live;
use crate::request::Run;

/// What a cycle concluded of one resource.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Applied and in sync; the changes made this cycle.
    Ready { changes: usize },
    /// Not ready: why (a reason in CamelCase, and a message).
    NotReady { reason: &'static str, message: String },
}

impl Verdict {
    /// Whether the next cycle should come soon rather than at the resync:
    /// a failure or a wait may clear by itself; a refusal needs a spec change.
    pub fn retries(&self) -> bool {
        matches!(self, Verdict::NotReady { reason: "Failed" | "Waiting" | "Deleting", .. })
    }
}

/// What one cycle did.
#[derive(Debug, Default)]
pub struct Outcomes {
    pub verdicts: BTreeMap<String, Verdict>,
    /// The role ARN of each tenant applied.
    pub roles: BTreeMap<String, String>,
    /// Resources whose tenant was deleted or retained: their finalizer is gone.
    pub released: BTreeSet<String>,
    /// Tenants still waiting for the cluster (`Waiting`, or `Failed` for
    /// having waited longer than `--timeout`): their wait goes on.
    pub waiting: BTreeSet<String>,
}

/// Each change as it starts, with the Lease it is made under: the record
/// that only the leader writes (its log shows no change before "Leading").
pub struct Logged<'a>(pub &'a str);

impl Progress for Logged<'_> {
    fn started(&self, address: &Address, action: Action) {
        crate::output::note!("{address}: {action:?} (lease {})", self.0);
    }
}

/// How long the judgement of a tenant's readiness may wait for the
/// watches (a first list of them; afterwards it reads their stores).
const READY_CHECK: Duration = Duration::from_secs(2);

/// The tenants the KubeflowTenants declare: their roles say so, and one
/// whose status names the role it was applied with (before roles recorded
/// their KubeflowTenant) may tag it.
pub fn declared_by_resources(desired: &mut Desired, resources: &[&TenantResource]) {
    let by_name: BTreeMap<&str, &TenantResource> = resources.iter().map(|r| (r.name.as_str(), *r)).collect();
    for tenant in &mut desired.tenants {
        let Some(resource) = by_name.get(tenant.namespace.as_str()) else { continue };
        // `arn:aws:iam::123456789012:role/path/name`: the name is the last segment.
        let claims = resource.status["roleArn"].as_str().and_then(|arn| arn.rsplit('/').next()).map(str::to_owned);
        tenant.source = Source::KubeflowTenant { claims };
    }
}

pub struct Cycle<'a> {
    pub live: &'a Live,
    /// The Lease ID this replica leads under.
    pub lease: &'a str,
    pub settings: &'a TenantsFile,
    pub run: &'a Run,
    pub stop: &'a Stop,
    /// How long a tenant may wait for the cluster before it is `Failed`.
    pub timeout: Duration,
    /// Since when each tenant that waited at the end of an earlier cycle has waited.
    pub waiting_since: &'a BTreeMap<String, Instant>,
}

/// How long one cycle waits for the cluster (a namespace, a Profile made
/// usable or deleted): a tenant still waiting is retried by a later cycle,
/// so that it never holds the others' changes back.
const CYCLE_WAIT: Duration = Duration::from_secs(2);

/// A duration as `--timeout` takes it.
fn human(d: Duration) -> String {
    match d.as_secs() {
        s if s % 60 == 0 && s > 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The index of the tenant a problem's field is in (`tenants[3].roleName`: 3).
fn tenant_index(field: &str) -> Option<usize> {
    field.strip_prefix("tenants[").and_then(|r| r.split_once(']')).and_then(|(i, _)| i.parse().ok())
}

/// `problems` of a file of the settings' header and `tenants`, by the index of their tenant.
fn by_tenant(invalid: &InvalidInput) -> (BTreeMap<usize, Vec<String>>, Vec<String>) {
    let mut tenants: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut others = Vec::new();
    for p in &invalid.problems {
        match tenant_index(&p.field) {
            Some(i) => tenants.entry(i).or_default().push(p.to_string()),
            None => others.push(p.to_string()),
        }
    }
    (tenants, others)
}

/// A validation of `names` (the settings' `first` tenants, then
/// KubeflowTenants) in the words of KubeflowTenant `names[this]`: its own
/// fields as `spec.`, the other tenants by what declares them.
fn in_resource_words(invalid: &InvalidInput, names: &[&str], first: usize, this: usize) -> String {
    let mut said = invalid.problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    for (j, ns) in names.iter().enumerate().rev() {
        let whose = if j < first { format!("the settings file's tenant {ns}") } else { format!("KubeflowTenant {ns}") };
        said = said.replace(&format!("tenants[{j}]."), if j == this { "spec." } else { "" });
        said = said.replace(&format!("tenants[{j}]"), &whose);
    }
    said
}

impl Cycle<'_> {
    pub fn file(&self, tenants: Vec<TenantInput>) -> TenantsFile {
        TenantsFile { tenants, ..self.settings.clone() }
    }

    /// The resources' tenants that validate alone and together with the
    /// settings file's; the others get their verdict.
    fn valid(&self, resources: &[&TenantResource], outcomes: &mut Outcomes) -> Result<Desired> {
        let settings = &self.settings.tenants;
        let own: BTreeSet<&str> = settings.iter().map(|t| t.namespace.as_str()).collect();
        let mut candidates: Vec<TenantInput> = Vec::new();
        for r in resources {
            let tenant = match tenant_of(&r.name, &r.spec) {
                Ok((tenant, _)) => tenant,
                Err(e) => {
                    outcomes.verdicts.insert(r.name.clone(), Verdict::NotReady { reason: "Invalid", message: e });
                    continue;
                }
            };
            if own.contains(r.name.as_str()) {
                let message = format!("namespace {} is also a tenant of the controller's settings file: one of the two must go", r.name);
                outcomes.verdicts.insert(r.name.clone(), Verdict::NotReady { reason: "Conflict", message });
                continue;
            }
            // Alone (Invalid), then beside the settings' tenants (Conflict).
            let beside: Vec<TenantInput> = settings.iter().cloned().chain([tenant.clone()]).collect();
            let problem = [("Invalid", vec![tenant.clone()]), ("Conflict", beside)].into_iter().find_map(|(reason, tenants)| {
                let names: Vec<&str> = tenants.iter().map(|t| t.namespace.as_str()).collect();
                let e = validate::validate(&self.file(tenants.clone())).err()?;
                let this = names.len() - 1;
                Some(Verdict::NotReady { reason, message: in_resource_words(&e, &names, settings.len().min(this), this) })
            });
            match problem {
                None => candidates.push(tenant),
                Some(verdict) => {
                    outcomes.verdicts.insert(r.name.clone(), verdict);
                }
            }
        }
        // Together: what needs two KubeflowTenants (role names, nested prefixes and roots).
        loop {
            let file = self.file(settings.iter().cloned().chain(candidates.iter().cloned()).collect());
            let e = match validate::validate(&file) {
                Ok(mut desired) => {
                    // The settings' tenants stay the file's, whatever a KubeflowTenant of their name says.
                    let declared: Vec<&TenantResource> =
                        resources.iter().copied().filter(|r| candidates.iter().any(|t| t.namespace == r.name)).collect();
                    declared_by_resources(&mut desired, &declared);
                    return Ok(desired);
                }
                Err(e) => e,
            };
            let (tenants, others) = by_tenant(&e);
            let first = settings.len();
            if !others.is_empty() || tenants.keys().any(|i| *i < first) {
                anyhow::bail!("the controller's settings file, with the KubeflowTenants, is invalid: {e}");
            }
            let names: Vec<&str> = file.tenants.iter().map(|t| t.namespace.as_str()).collect();
            // Each was valid alone and beside the settings: this is a clash between resources.
            for i in tenants.keys() {
                let mine = validate::InvalidInput {
                    problems: e.problems.iter().filter(|p| tenant_index(&p.field) == Some(*i)).cloned().collect(),
                };
                let message = in_resource_words(&mine, &names, first, *i);
                outcomes.verdicts.insert(names[*i].to_owned(), Verdict::NotReady { reason: "Conflict", message });
            }
            let bad: BTreeSet<usize> = tenants.keys().map(|i| i - first).collect();
            candidates = candidates.into_iter().enumerate().filter(|(i, _)| !bad.contains(i)).map(|(_, t)| t).collect();
        }
    }

    /// A plan of `desired`, leaving out the tenants the planner refuses
    /// (each refusal that names a tenant becomes its verdict: `Conflict`
    /// when another tenant has what it asks for, `Refused` otherwise).
    async fn plan(&self, desired: &Desired, resources: &BTreeSet<String>, outcomes: &mut Outcomes) -> Result<Plan> {
        let reads = ReadSet::for_desired(desired, self.run.bind_cluster);
        let observed = self.live.observe(&reads, self.run).await?;
        let mut targeted = desired.clone();
        loop {
            match plan::plan(&targeted, &observed, PlanOptions::default()) {
                Ok(plan) => return Ok(plan),
                Err(e) => {
                    // Each tenant's refusals, joined (a tenant may have several).
                    let mut refused: BTreeMap<String, (&'static str, String)> = BTreeMap::new();
                    let mut anyone_elses = false;
                    for p in &e.problems {
                        let Some(ns) = p.address.as_ref().and_then(|a| a.namespace()).filter(|ns| resources.contains(*ns)) else {
                            anyone_elses = true;
                            continue;
                        };
                        let reason = match p.refusal {
                            Refusal::Conflict => "Conflict",
                            Refusal::State => "Refused",
                        };
                        let said = format!("{}; {}", p.message, p.fix);
                        let entry = refused.entry(ns.to_owned()).or_insert((reason, String::new()));
                        entry.0 = if entry.0 == "Conflict" { "Conflict" } else { reason };
                        entry.1 = if entry.1.is_empty() { said } else { format!("{}; {said}", entry.1) };
                    }
                    if refused.is_empty() || anyone_elses {
                        anyhow::bail!("{e}");
                    }
                    for (ns, (reason, message)) in &refused {
                        outcomes.verdicts.insert(ns.clone(), Verdict::NotReady { reason, message: message.clone() });
                    }
                    let keep: Vec<String> =
                        targeted.tenants.iter().map(|t| t.namespace.clone()).filter(|ns| !refused.contains_key(ns)).collect();
                    targeted = plan::target(&targeted, &keep);
                }
            }
        }
    }

    /// Apply's options in a cycle: every wait ends after [`CYCLE_WAIT`].
    pub fn options(&self) -> ApplyOptions {
        ApplyOptions { parallelism: self.run.parallelism, wait: true, timeout: CYCLE_WAIT, stop: self.stop.clone(), ..Default::default() }
    }

    /// The tenants of `resources` that are not being deleted, planned and applied.
    pub async fn converge(&self, resources: &[TenantResource], outcomes: &mut Outcomes) -> Result<()> {
        let alive: Vec<&TenantResource> = resources.iter().filter(|r| !r.deleting).collect();
        // A resource named like a settings tenant is judged (Conflict) and
        // left out: the plan's tenant of that name is the file's.
        let own: BTreeSet<&str> = self.settings.tenants.iter().map(|t| t.namespace.as_str()).collect();
        let names: BTreeSet<String> = alive.iter().map(|r| r.name.clone()).filter(|n| !own.contains(n.as_str())).collect();
        let desired = self.valid(&alive, outcomes)?;
        let plan = self.plan(&desired, &names, outcomes).await?;
        let report = apply::apply(&plan, self.live.providers(), &self.options(), &Logged(self.lease)).await;
        let mut failed: BTreeMap<String, Vec<String>> = BTreeMap::new();
        // Tenants with a failure other than a wait that ran out.
        let mut broken: BTreeSet<String> = BTreeSet::new();
        let mut changed: BTreeMap<String, usize> = BTreeMap::new();
        for (address, (_, outcome)) in &report.outcomes {
            let Some(ns) = address.namespace() else { continue };
            let said = match outcome {
                Outcome::Done => {
                    *changed.entry(ns.to_owned()).or_default() += 1;
                    continue;
                }
                Outcome::Failed { error, kind } => {
                    if *kind != ErrorKind::Timeout {
                        broken.insert(ns.to_owned());
                    }
                    format!("{address}: {error}")
                }
                Outcome::Skipped { because } => {
                    // Waiting only when what it waits on waited; otherwise that failure is this tenant's too.
                    match report.outcomes.get(because).map(|(_, o)| o) {
                        Some(Outcome::Failed { kind: ErrorKind::Timeout, .. }) => format!("{address}: skipped, {because} failed"),
                        Some(Outcome::Failed { error, .. }) => {
                            broken.insert(ns.to_owned());
                            format!("{address}: skipped, {because} failed: {error}")
                        }
                        _ => {
                            broken.insert(ns.to_owned());
                            format!("{address}: skipped, {because} failed")
                        }
                    }
                }
                Outcome::NotStarted | Outcome::Interrupted => {
                    broken.insert(ns.to_owned());
                    format!("{address}: not finished (the controller stopped)")
                }
            };
            failed.entry(ns.to_owned()).or_default().push(said);
        }
        let applied: Vec<_> =
            desired.tenants.iter().filter(|t| names.contains(&t.namespace) && !outcomes.verdicts.contains_key(&t.namespace)).collect();
        // Ready means usable: the profile controller made the namespace and
        // its service accounts, and default-editor carries the role.
        let usable = futures_util::future::join_all(applied.iter().map(|tenant| async {
            let arn = kfp_tenant_core::kinds::desired_role(tenant, &plan.cluster).arn;
            let profile = kfp_tenant_core::kinds::desired_profile(tenant, &arn, &plan.cluster.name);
            let kube = self.live.providers().kube;
            (arn, kube.wait_ready(&profile, READY_CHECK).await)
        }))
        .await;
        for (tenant, (arn, usable)) in applied.into_iter().zip(usable) {
            let ns = &tenant.namespace;
            let waiting = |message: String| match self.waiting_since.get(ns) {
                Some(since) if since.elapsed() > self.timeout => Verdict::NotReady {
                    reason: "Failed",
                    message: format!("waited longer than {} (--timeout) for the cluster: {message}", human(self.timeout)),
                },
                _ => Verdict::NotReady { reason: "Waiting", message },
            };
            let verdict = match (failed.remove(ns), usable) {
                (Some(errors), _) if broken.contains(ns) => Verdict::NotReady { reason: "Failed", message: errors.join("; ") },
                (Some(errors), _) => waiting(errors.join("; ")),
                (None, Err(e)) => waiting(format!("applied, but the cluster does not show it usable yet: {}", e.message)),
                (None, Ok(())) => Verdict::Ready { changes: changed.get(ns).copied().unwrap_or(0) },
            };
            if !broken.contains(ns) && !matches!(verdict, Verdict::Ready { .. }) {
                outcomes.waiting.insert(ns.clone());
            }
            outcomes.roles.insert(ns.clone(), arn);
            outcomes.verdicts.insert(ns.clone(), verdict);
        }
        Ok(())
    }
}

/// A resource's status for `verdict` (None: keep the one it has).
pub fn status(resource: &TenantResource, verdict: &Verdict, role: Option<&String>, now: &str) -> Value {
    let old = &resource.status;
    let (state, reason, message) = match verdict {
        Verdict::Ready { .. } => ("True", "Applied", "the tenant is applied and in sync".to_owned()),
        Verdict::NotReady { reason, message } => ("False", *reason, message.clone()),
    };
    let previous = old["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "Ready"));
    let since = match previous {
        Some(p) if p["status"] == state => p["lastTransitionTime"].as_str().unwrap_or(now).to_owned(),
        _ => now.to_owned(),
    };
    let last_change = match verdict {
        Verdict::Ready { changes } if *changes > 0 => json!(format!("{now}: {changes} change{}", if *changes == 1 { "" } else { "s" })),
        _ => old.get("lastChange").cloned().unwrap_or(Value::Null),
    };
    let mut status = json!({
        "observedGeneration": resource.generation,
        "conditions": [{"type": "Ready", "status": state, "reason": reason, "message": message,
                        "observedGeneration": resource.generation, "lastTransitionTime": since}],
    });
    if let Some(role) = role.map(|r| json!(r)).or_else(|| old.get("roleArn").cloned()) {
        status["roleArn"] = role;
    }
    if !last_change.is_null() {
        status["lastChange"] = last_change;
    }
    status
}
