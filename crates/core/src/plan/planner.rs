//! The planner: desired state against observed state, resource by resource,
//! collecting every reason to refuse like a compiler collects errors. The
//! cluster-level part lives here; a tenant's resources are planned in
//! [`super::tenant`].

use std::collections::{BTreeMap, BTreeSet};

use crate::address::{Address, Kind};
use crate::kinds::observed_user;
use crate::plan::context::{ProviderNeed, context};
use crate::plan::fresh::fingerprint;
use crate::plan::{
    Action, ClusterContext, CognitoUser, FORMAT_VERSION, Listing, Mode, Plan, PlanError, PlanOptions, PlanProblem, Reason, Refusal,
    ResourceChange, State,
};
use crate::ports::{ClusterRecord, OidcProvider};
use crate::refresh::{BucketCheck, Observed};
use crate::spec::{Desired, MAX_POD_IDENTITY_ASSOCIATIONS, Road, policy_name};
use crate::tags::{self, Ownership};

static NO_REPLACEMENTS: BTreeSet<Address> = BTreeSet::new();

/// Plans the changes that make the live state match `desired`.
pub fn plan(desired: &Desired, observed: &Observed, options: PlanOptions) -> Result<Plan, PlanError> {
    // Only IRSA tenants need the OIDC provider; Pod Identity does without.
    let need = match (desired.tenants.iter().any(|t| t.road == Road::Irsa), options.create_oidc_provider) {
        (false, _) => ProviderNeed::NotNeeded,
        (true, true) => ProviderNeed::CreateIfMissing,
        (true, false) => ProviderNeed::Require,
    };
    let mut planner = Planner::new(desired, observed, need)?;
    if observed.record.is_none() {
        let record = ClusterRecord { cluster_arn: planner.cluster.arn.clone(), ..Default::default() };
        let reason = Reason::Bind { proof: observed.proof };
        planner.push(Address::ClusterIdentity, Action::Create, Some(reason), None, Some(State::ClusterRecord(record)));
    }
    planner.replace = &options.replace;
    planner.adopt = options.adopt;
    for tenant in &desired.tenants {
        planner.claimed_tenant(tenant);
    }
    planner.owners();
    if options.prune {
        planner.prune();
        let file: BTreeSet<&str> =
            desired.tenants.iter().map(|t| t.owner.as_str()).chain(desired.untargeted_owners.iter().map(String::as_str)).collect();
        planner.users_left(|email| !file.contains(email));
    } else if options.listing == Listing::Whole {
        planner.warn_not_in_file();
    }
    planner.association_quota();
    planner.bucket();
    planner.finish(Mode::Apply)
}

/// Plans deleting every tenant of `desired` that exists, with the roles it
/// had under earlier names. Never touches the cluster-level resources, nor
/// anything that is not kfp-tenant's for this cluster.
pub fn plan_destroy(desired: &Desired, observed: &Observed) -> Result<Plan, PlanError> {
    let mut planner = Planner::new(desired, observed, ProviderNeed::NotNeeded)?;
    for tenant in &desired.tenants {
        planner.destroy_claimed(tenant);
    }
    let destroyed: BTreeSet<&str> = desired.tenants.iter().map(|t| t.owner.as_str()).collect();
    planner.users_left(|email| destroyed.contains(email) && !desired.untargeted_owners.contains(email));
    planner.finish(Mode::Destroy)
}

/// Keeps only the tenants named in `targets` (all when it is empty); the
/// others are remembered as outside the target, so that they do not look
/// removed. Never prune a targeted plan.
pub fn target(desired: &Desired, targets: &[String]) -> Desired {
    let mut d = desired.clone();
    if !targets.is_empty() {
        let (kept, others): (Vec<_>, Vec<_>) = d.tenants.into_iter().partition(|t| targets.contains(&t.namespace));
        d.tenants = kept;
        d.untargeted_owners.extend(others.iter().map(|t| t.owner.clone()));
        d.untargeted.extend(others.into_iter().map(|t| t.namespace));
    }
    d
}

pub(super) struct Planner<'a> {
    pub(super) desired: &'a Desired,
    pub(super) observed: &'a Observed,
    pub(super) cluster: ClusterContext,
    pub(super) changes: BTreeMap<Address, ResourceChange>,
    problems: Vec<PlanProblem>,
    warnings: Vec<String>,
    /// The file's namespaces, targeted or not: asked once per live object.
    in_file: BTreeSet<&'a str>,
    /// The roles kfp-tenant manages for this cluster, by their namespace tag.
    pub(super) managed_by_namespace: BTreeMap<&'a str, Vec<&'a crate::ports::Role>>,
    /// What the operator named with `--replace`.
    pub(super) replace: &'a BTreeSet<Address>,
    /// `--adopt`: take over what lacks kfp-tenant's markers.
    pub(super) adopt: bool,
}

impl<'a> Planner<'a> {
    fn new(desired: &'a Desired, observed: &'a Observed, need: ProviderNeed) -> Result<Self, PlanError> {
        let c = &desired.cluster;
        let (cluster, create) = context(&c.name, &c.region, &c.bucket, observed, need).map_err(|p| PlanError { problems: vec![p] })?;
        let in_file = desired.tenants.iter().map(|t| t.namespace.as_str()).chain(desired.untargeted.iter().map(String::as_str)).collect();
        let mut managed_by_namespace: BTreeMap<&str, Vec<&crate::ports::Role>> = BTreeMap::new();
        for role in &observed.managed_roles {
            if let Some(ns) = role.tags.get(tags::NAMESPACE) {
                managed_by_namespace.entry(ns.as_str()).or_default().push(role);
            }
        }
        let mut planner = Planner {
            desired,
            observed,
            cluster,
            changes: BTreeMap::new(),
            problems: Vec::new(),
            warnings: Vec::new(),
            in_file,
            managed_by_namespace,
            replace: &NO_REPLACEMENTS,
            adopt: false,
        };
        if create {
            let provider =
                OidcProvider { issuer_url: observed.cluster.oidc.issuer_url.clone(), arn: planner.cluster.oidc_provider_arn.clone() };
            planner.push(Address::OidcProvider, Action::Create, Some(Reason::Missing), None, Some(State::OidcProvider(provider)));
        }
        Ok(planner)
    }

    /// A no-op keeps only what was observed (its fingerprint holds a saved
    /// plan to it): nothing reads the state it would have after, and at
    /// 10,000 tenants those copies were half the plan's memory.
    pub(super) fn push(&mut self, address: Address, action: Action, reason: Option<Reason>, before: Option<State>, after: Option<State>) {
        let after = if action == Action::NoOp && before.is_some() { None } else { after };
        let observed_fingerprint = fingerprint(before.as_ref());
        self.changes.insert(address.clone(), ResourceChange { address, action, reason, before, after, observed_fingerprint });
    }

    /// Keeps what a kind planned.
    pub(super) fn push_planned(&mut self, planned: Vec<crate::kinds::Planned>) {
        for p in planned {
            self.push(p.address, p.action, p.reason, p.before, p.after);
        }
    }

    pub(super) fn refuse(&mut self, address: Address, message: String, fix: impl Into<String>) {
        self.problems.push(PlanProblem { address: Some(address), message, fix: fix.into(), refusal: Refusal::State, adoptable: false });
    }

    /// A refusal that `--adopt` would lift (the CLI's display says so).
    pub(super) fn refuse_unless_adopted(&mut self, address: Address, message: String, fix: impl Into<String>) {
        self.problems.push(PlanProblem { address: Some(address), message, fix: fix.into(), refusal: Refusal::State, adoptable: true });
    }

    /// A refusal because another tenant has what this one asks for.
    pub(super) fn conflict(&mut self, address: Address, message: String, fix: impl Into<String>) {
        self.problems.push(PlanProblem { address: Some(address), message, fix: fix.into(), refusal: Refusal::Conflict, adoptable: false });
    }

    pub(super) fn warn(&mut self, warning: String) {
        self.warnings.push(warning);
    }

    /// Whether `ns` is a tenant of the file (targeted or not).
    fn in_file(&self, ns: &str) -> bool {
        self.in_file.contains(ns)
    }

    /// This cluster's tenants that the file no longer names: their roles
    /// (by tag) and Profiles (by label), by namespace; a namespace with only
    /// kfp-tenant's Pod Identity associations left counts too. A tenant
    /// that a KubeflowTenant declares (by its role's tag) is the
    /// controller's, never the file's to name.
    fn not_in_file(&self) -> BTreeMap<String, (Vec<String>, bool)> {
        let controllers: BTreeSet<&str> = self
            .managed_by_namespace
            .iter()
            .filter(|(_, roles)| roles.iter().any(|r| tags::kubeflow_tenant(&r.tags).is_some()))
            .map(|(ns, _)| *ns)
            .collect();
        let named = |ns: &str| self.in_file(ns) || controllers.contains(ns);
        let mut found: BTreeMap<String, (Vec<String>, bool)> = BTreeMap::new();
        for ((ns, _), association) in &self.observed.associations {
            if !named(ns) && tags::is_managed_role(&association.tags, &self.cluster.name) {
                found.entry(ns.clone()).or_default();
            }
        }
        for role in &self.observed.managed_roles {
            if let Some(ns) = role.tags.get(tags::NAMESPACE).filter(|ns| !named(ns)) {
                found.entry(ns.clone()).or_default().0.push(role.name.clone());
            }
        }
        for profile in self.observed.profiles.values().filter(|p| !named(&p.name)) {
            if tags::ownership(profile.managed, profile.cluster.as_deref(), &self.cluster.name) == Ownership::Ours {
                found.entry(profile.name.clone()).or_default().1 = true;
            }
        }
        found
    }

    /// Without `--prune`, every plan still says which tenants of this
    /// cluster keep their grants although the file dropped them.
    fn warn_not_in_file(&mut self) {
        for (ns, (roles, profile)) in self.not_in_file() {
            let mut what: Vec<String> = roles.iter().map(|r| format!("IAM role {r}")).collect();
            if profile {
                what.push(format!("Profile {ns}"));
            }
            if what.is_empty() {
                what.push("EKS Pod Identity associations".to_owned());
            }
            self.warn(format!(
                "tenant {ns} is not in the tenants file but is still granted ({}): run with --prune to remove it",
                what.join(", ")
            ));
        }
        self.warn_unrecorded_profiles();
    }

    /// Profiles an earlier kfp-tenant wrote without their cluster are never
    /// pruned: nothing shows which cluster they were for.
    fn warn_unrecorded_profiles(&mut self) {
        let legacy: Vec<String> = self
            .observed
            .profiles
            .values()
            .filter(|p| !self.in_file(&p.name) && tags::ownership(p.managed, p.cluster.as_deref(), &self.cluster.name) == Ownership::Legacy)
            .map(|p| p.name.clone())
            .collect();
        for name in legacy {
            self.warn(format!(
                "Profile {name} was written by an earlier kfp-tenant and records no EKS cluster, so it is never pruned: add its tenant to the file (the plan then records the cluster), or delete it yourself"
            ));
        }
    }

    fn prune(&mut self) {
        for (ns, (roles, _profile)) in self.not_in_file() {
            // One of its roles stands for the tenant; the others go as deposed.
            self.delete_tenant(&ns, roles.first().map(String::as_str), Reason::Pruned);
        }
        self.warn_unrecorded_profiles();
    }

    /// Deletes what kfp-tenant made for tenant `ns`: its Profile, its role
    /// `role_name` (with the inline policy), and every role it had before.
    pub(super) fn delete_tenant(&mut self, ns: &str, role_name: Option<&str>, reason: Reason) {
        if let Some(live) = self.observed.profiles.get(ns) {
            let addr = Address::tenant(ns, Kind::Profile);
            match tags::ownership(live.managed, live.cluster.as_deref(), &self.cluster.name) {
                Ownership::Ours => self.push(addr, Action::Delete, Some(reason.clone()), Some(State::Profile(live.clone())), None),
                Ownership::Legacy => self.refuse(
                    addr,
                    format!("Profile {ns} was written by an earlier kfp-tenant and does not record its EKS cluster, so it is not deleted"),
                    "run kfp-tenant apply once with this tenant in the file (the plan records the cluster), then destroy",
                ),
                Ownership::OtherCluster(other) => self.refuse(
                    addr,
                    format!(
                        "Profile {ns} was written by kfp-tenant for EKS cluster {other}, not {}, so it is not deleted",
                        self.cluster.name
                    ),
                    "check the tenants file's cluster and the kubeconfig context (--context)",
                ),
                Ownership::Foreign => self.refuse(
                    addr,
                    format!("Profile {ns} was not created by kfp-tenant, so it is not deleted"),
                    "delete it yourself, or remove the tenant from the file",
                ),
            }
        }
        let associations: Vec<_> = self.our_associations(ns).cloned().collect();
        for association in associations {
            let address = Address::pod_identity(ns, &association.service_account);
            self.push(address, Action::Delete, Some(reason.clone()), Some(State::PodIdentity(association)), None);
        }
        let policy = policy_name(ns);
        if let Some(role_name) = role_name
            && let Some(role) = self.observed.roles.get(role_name)
        {
            let addr = Address::tenant(ns, Kind::IamRole);
            if !tags::is_managed_role(&role.tags, &self.cluster.name) {
                self.refuse(
                    addr,
                    format!("IAM role {role_name} was not created by kfp-tenant for cluster {}, so it is not deleted", self.cluster.name),
                    "delete it yourself, or remove the tenant from the file",
                );
            } else {
                if let Some(document) = self.observed.policies.get(&(role_name.to_owned(), policy.clone())) {
                    let live = crate::ports::InlinePolicy {
                        role_name: role_name.to_owned(),
                        policy_name: policy.clone(),
                        document: document.clone(),
                    };
                    self.push(Address::tenant(ns, Kind::S3Policy), Action::Delete, Some(reason.clone()), Some(State::S3Policy(live)), None);
                }
                // Whatever else the role carries goes before it, shown in the plan:
                // IAM refuses to delete a role with policies.
                let (extra, attached) = self.observed.role_permissions(role_name, Some(&policy));
                for p in extra {
                    let address = Address::inline_policy(ns, &p.policy_name);
                    self.push(address, Action::Delete, Some(reason.clone()), Some(State::InlinePolicy(p)), None);
                }
                for arn in attached {
                    let state = crate::plan::PolicyAttachment { role_name: role_name.to_owned(), policy_arn: arn.clone() };
                    let address = Address::policy_attachment(ns, &arn);
                    self.push(address, Action::Delete, Some(reason.clone()), Some(State::PolicyAttachment(state)), None);
                }
                self.push(addr, Action::Delete, Some(reason.clone()), Some(State::Role(role.clone())), None);
            }
        }
        self.deposed_roles(ns, role_name.unwrap_or_default(), reason);
    }

    /// The Cognito user of each owner of the planned tenants: used as it
    /// is when the pool has one with that e-mail (never modified), created
    /// when it has none.
    fn owners(&mut self) {
        let Some(cognito) = &self.desired.cognito else { return };
        let owners: BTreeSet<&str> = self.desired.tenants.iter().map(|t| t.owner.as_str()).collect();
        for email in owners {
            let address = Address::CognitoUser { email: email.to_owned() };
            match observed_user(self.observed, &cognito.user_pool_id, email) {
                Some(user) => {
                    let found = self.observed.users.get(email).map_or(0, Vec::len);
                    if found > 1 {
                        self.warn(format!(
                            "Cognito user pool {} has {found} users with e-mail {email}; kfp-tenant uses them as they are, and the Profiles name the e-mail",
                            cognito.user_pool_id
                        ));
                    }
                    self.push(address, Action::NoOp, None, Some(State::CognitoUser(user.clone())), Some(State::CognitoUser(user)));
                }
                None => {
                    let user = CognitoUser {
                        user_pool_id: cognito.user_pool_id.clone(),
                        email: email.to_owned(),
                        username: None,
                        created_by_kfp_tenant: true,
                        invite: cognito.invite,
                    };
                    self.push(address, Action::Create, Some(Reason::Missing), None, Some(State::CognitoUser(user)));
                }
            }
        }
    }

    /// With `deleteUsers`, the users kfp-tenant created (by the identity
    /// record) that `left` says own no tenant any more are deleted; without
    /// it, nothing (people outlive tenants).
    fn users_left(&mut self, left: impl Fn(&str) -> bool) {
        let Some(cognito) = self.desired.cognito.as_ref().filter(|c| c.delete_users) else { return };
        let created = self.observed.record.iter().flat_map(|r| &r.cognito_users).filter(|(pool, _)| *pool == cognito.user_pool_id);
        let gone: Vec<CognitoUser> =
            created.filter(|(_, email)| left(email)).filter_map(|(pool, email)| observed_user(self.observed, pool, email)).collect();
        for user in gone {
            let address = Address::CognitoUser { email: user.email.clone() };
            self.push(address, Action::Delete, Some(Reason::UserLeft), Some(State::CognitoUser(user)), None);
        }
    }

    /// The file's bucket, as S3 answered: a warning, never a refusal (the
    /// pipeline that applies the tenants may make the bucket too).
    fn bucket(&mut self) {
        let (bucket, region) = (&self.desired.cluster.bucket, &self.desired.cluster.region);
        match &self.observed.bucket {
            BucketCheck::NotRead => {}
            BucketCheck::In(found) if found == region => {}
            BucketCheck::In(found) => self.warn(format!(
                "bucket {bucket} is in region {found}, not the file's {region}: the tenants' pipelines reach it across regions; check the tenants file's region and bucket"
            )),
            BucketCheck::Missing => self.warn(format!(
                "bucket {bucket} does not exist, so the tenants' pipelines have nowhere to write: create it (aws s3 mb s3://{bucket} --region {region}) unless something else makes it"
            )),
            BucketCheck::Unknown(error) => self.warn(format!("could not check that bucket {bucket} exists ({error})")),
        }
    }

    /// EKS's associations per cluster, counted as the plan leaves them:
    /// every association of the cluster, plus those created, minus those deleted.
    fn association_quota(&mut self) {
        let existing = self.observed.association_count;
        let (mut created, mut deleted) = (0, 0);
        for change in self.changes.values().filter(|c| c.address.kind() == Some(Kind::PodIdentity)) {
            match change.action {
                Action::Create => created += 1,
                Action::Delete => deleted += 1,
                _ => {}
            }
        }
        let after = (existing + created).saturating_sub(deleted);
        if created > 0 && after > MAX_POD_IDENTITY_ASSOCIATIONS {
            self.problems.push(PlanProblem {
                address: None,
                message: format!(
                    "the cluster would have {after} EKS Pod Identity associations ({existing} now, {created} to create, {deleted} to delete), over EKS's {MAX_POD_IDENTITY_ASSOCIATIONS} per cluster (not adjustable)"
                ),
                fix: "move some tenants to identity: irsa, grant fewer service accounts, or remove associations the cluster no longer needs".to_owned(),
                refusal: Refusal::State,
                adoptable: false,
            });
        }
    }

    pub(super) fn finish(self, mode: Mode) -> Result<Plan, PlanError> {
        if !self.problems.is_empty() {
            return Err(PlanError { problems: self.problems });
        }
        Ok(Plan {
            format_version: FORMAT_VERSION.to_owned(),
            mode,
            cluster: self.cluster,
            changes: self.changes.into_values().collect(),
            warnings: self.warnings,
        })
    }
}
