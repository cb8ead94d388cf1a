//! The planner: desired state against observed state, resource by resource,
//! collecting every reason to refuse like a compiler collects errors.

use std::collections::BTreeMap;

use crate::address::{Address, Kind};
use crate::plan::fresh::fingerprint;
use crate::plan::{Action, ClusterContext, FORMAT_VERSION, Mode, Plan, PlanError, PlanOptions, PlanProblem, Reason, ResourceChange, State};
use crate::policy;
use crate::ports::{InlinePolicy, OidcProvider, Profile, ProfilePlugin, Role, ServiceAccount};
use crate::refresh::Observed;
use crate::spec::{Desired, Tenant, policy_name};
use crate::tags;

/// Plans the changes that make the live state match `desired`.
pub fn plan(desired: &Desired, observed: &Observed, options: PlanOptions) -> Result<Plan, PlanError> {
    let need = if options.create_oidc_provider { ProviderNeed::CreateIfMissing } else { ProviderNeed::Require };
    let mut planner = Planner::new(desired, observed, need)?;
    for tenant in &desired.tenants {
        planner.tenant(tenant, options.adopt);
    }
    if options.prune {
        planner.prune();
    }
    planner.finish(Mode::Apply)
}

/// Plans deleting every tenant of `desired` that exists. Never touches the
/// cluster-level data sources, nor anything without kfp-tenant's markers.
pub fn plan_destroy(desired: &Desired, observed: &Observed) -> Result<Plan, PlanError> {
    let mut planner = Planner::new(desired, observed, ProviderNeed::NotNeeded)?;
    for tenant in &desired.tenants {
        planner.delete_tenant(&tenant.namespace, &tenant.role_name, &tenant.policy_name, Reason::Destroy);
    }
    planner.finish(Mode::Destroy)
}

/// What a plan needs of the account's IAM OIDC provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProviderNeed {
    /// Roles trust it: it must exist.
    Require,
    /// It must exist, or be created first (`--create-oidc-provider`).
    CreateIfMissing,
    /// Deleting tenants does not need it, so a missing provider never keeps
    /// kfp-tenant from removing what it made.
    NotNeeded,
}

/// The cluster-level facts, and whether the provider is to be created.
pub(crate) fn context(
    name: &str,
    region: &str,
    bucket: &str,
    observed: &Observed,
    need: ProviderNeed,
) -> Result<(ClusterContext, bool), PlanProblem> {
    let host = observed.oidc.issuer_host();
    let (provider_arn, create) = match (&observed.oidc.provider_arn, need) {
        (Some(arn), _) => (arn.clone(), false),
        (None, ProviderNeed::NotNeeded) => (String::new(), false),
        (None, ProviderNeed::CreateIfMissing) => {
            (format!("arn:{}:iam::{}:oidc-provider/{host}", observed.identity.partition, observed.identity.account_id), true)
        }
        (None, ProviderNeed::Require) => {
            return Err(PlanProblem {
                address: Some(Address::ClusterOidc),
                message: format!(
                    "the account {} has no IAM OIDC provider for the cluster's issuer {}, so no pod could assume a tenant role",
                    observed.identity.account_id, observed.oidc.issuer_url
                ),
                fix: format!(
                    "create it with `eksctl utils associate-iam-oidc-provider --cluster {name} --region {region} --approve`, or let kfp-tenant create it with --create-oidc-provider"
                ),
            });
        }
    };
    let cluster = ClusterContext {
        name: name.to_owned(),
        region: region.to_owned(),
        bucket: bucket.to_owned(),
        account_id: observed.identity.account_id.clone(),
        partition: observed.identity.partition.clone(),
        oidc_issuer: observed.oidc.issuer_url.clone(),
        oidc_provider_arn: provider_arn,
    };
    Ok((cluster, create))
}

/// The role as kfp-tenant creates it for `tenant`.
pub fn desired_role(tenant: &Tenant, cluster: &ClusterContext) -> Role {
    let issuer_host = cluster.oidc_issuer.strip_prefix("https://").unwrap_or(&cluster.oidc_issuer);
    Role {
        name: tenant.role_name.clone(),
        path: tenant.role_path.clone(),
        arn: format!("arn:{}:iam::{}:role{}{}", cluster.partition, cluster.account_id, tenant.role_path, tenant.role_name),
        trust_policy: policy::trust_policy(
            &cluster.partition,
            &cluster.account_id,
            issuer_host,
            &tenant.namespace,
            &tenant.service_accounts,
        ),
        description: Some(format!("Kubeflow tenant {} on EKS cluster {} (managed by kfp-tenant)", tenant.namespace, cluster.name)),
        tags: tags::role_tags(&tenant.tags, &cluster.name, &tenant.namespace),
        max_session_duration: tenant.max_session_duration.unwrap_or(crate::spec::DEFAULT_MAX_SESSION_DURATION),
        permissions_boundary: tenant.permissions_boundary.clone(),
    }
}

pub fn desired_s3_policy(tenant: &Tenant, cluster: &ClusterContext) -> InlinePolicy {
    InlinePolicy {
        role_name: tenant.role_name.clone(),
        policy_name: tenant.policy_name.clone(),
        document: policy::s3_policy(&cluster.partition, &cluster.bucket, &tenant.s3_access),
    }
}

pub fn desired_profile(tenant: &Tenant, role_arn: &str) -> Profile {
    Profile {
        name: tenant.namespace.clone(),
        owner: tenant.owner.clone(),
        plugins: vec![ProfilePlugin::aws_iam(role_arn)],
        resource_quota: tenant.resource_quota.clone(),
        managed: true,
    }
}

struct Planner<'a> {
    desired: &'a Desired,
    observed: &'a Observed,
    cluster: ClusterContext,
    changes: BTreeMap<Address, ResourceChange>,
    problems: Vec<PlanProblem>,
    warnings: Vec<String>,
}

impl<'a> Planner<'a> {
    fn new(desired: &'a Desired, observed: &'a Observed, need: ProviderNeed) -> Result<Self, PlanError> {
        let c = &desired.cluster;
        let (cluster, create) = context(&c.name, &c.region, &c.bucket, observed, need).map_err(|p| PlanError { problems: vec![p] })?;
        let mut planner = Planner { desired, observed, cluster, changes: BTreeMap::new(), problems: Vec::new(), warnings: Vec::new() };
        if create {
            let provider = OidcProvider { issuer_url: observed.oidc.issuer_url.clone(), arn: planner.cluster.oidc_provider_arn.clone() };
            planner.push(Address::OidcProvider, Action::Create, Some(Reason::Missing), None, Some(State::OidcProvider(provider)));
        }
        Ok(planner)
    }

    fn push(&mut self, address: Address, action: Action, reason: Option<Reason>, before: Option<State>, after: Option<State>) {
        let observed = fingerprint(before.as_ref());
        self.changes.insert(address.clone(), ResourceChange { address, action, reason, before, after, observed });
    }

    fn refuse(&mut self, address: Address, message: String, fix: impl Into<String>) {
        self.problems.push(PlanProblem { address: Some(address), message, fix: fix.into() });
    }

    fn tenant(&mut self, tenant: &Tenant, adopt: bool) {
        let ns = tenant.namespace.as_str();
        let role_addr = Address::tenant(ns, Kind::IamRole);
        let want_role = desired_role(tenant, &self.cluster);
        let quota = self.desired.cluster.trust_policy_quota;
        if want_role.trust_policy.minified_len() > quota {
            self.refuse(
                Address::tenant(ns, Kind::TrustPolicy),
                format!(
                    "the trust policy is {} characters with the cluster's issuer, over the quota of {quota}",
                    want_role.trust_policy.minified_len()
                ),
                "list fewer service accounts, or raise the IAM quota and set trustPolicyQuota",
            );
        }
        let live_role = self.observed.roles.get(&tenant.role_name);
        let role_action = match live_role {
            None => {
                self.push(role_addr, Action::Create, Some(Reason::Missing), None, Some(State::Role(want_role.clone())));
                Action::Create
            }
            Some(live) => {
                let managed = tags::is_managed_role(&live.tags, &self.cluster.name);
                if !managed && !adopt {
                    self.refuse(
                        role_addr.clone(),
                        format!(
                            "IAM role {} exists but was not created by kfp-tenant for cluster {} (tags: {})",
                            live.name,
                            self.cluster.name,
                            describe_tags(&live.tags)
                        ),
                        "choose another roleName, or take it over with --adopt",
                    );
                }
                if live.path != want_role.path {
                    if !managed {
                        self.refuse(
                            role_addr.clone(),
                            format!("IAM role {} has path {} but the tenant asks for {}", live.name, live.path, want_role.path),
                            format!("set rolePath: {} to adopt it", live.path),
                        );
                    }
                    self.push(
                        role_addr,
                        Action::Replace,
                        Some(Reason::PathChanged),
                        Some(State::Role(live.clone())),
                        Some(State::Role(want_role.clone())),
                    );
                    Action::Replace
                } else {
                    // An unchanged document is held once, shared by before and after.
                    let mut want_role = want_role.clone();
                    if live.trust_policy == want_role.trust_policy {
                        want_role.trust_policy = live.trust_policy.clone();
                    }
                    let drift = role_drift(live, &want_role);
                    let (action, reason) = match (drift.is_empty(), managed) {
                        (true, _) => (Action::NoOp, None),
                        (false, true) => (Action::Update, Some(Reason::Drift { attributes: drift })),
                        (false, false) => (Action::Update, Some(Reason::Adopt)),
                    };
                    self.push(role_addr, action, reason, Some(State::Role(live.clone())), Some(State::Role(want_role.clone())));
                    action
                }
            }
        };

        let mut want_policy = desired_s3_policy(tenant, &self.cluster);
        let live_policy = self.observed.policies.get(&(tenant.role_name.clone(), tenant.policy_name.clone())).map(|d| InlinePolicy {
            role_name: tenant.role_name.clone(),
            policy_name: tenant.policy_name.clone(),
            document: d.clone(),
        });
        let (action, reason) = match (&live_policy, role_action) {
            (_, Action::Replace) => (Action::Create, Some(Reason::RoleReplaced)),
            (None, _) => (Action::Create, Some(Reason::Missing)),
            (Some(live), _) if live.document == want_policy.document => {
                want_policy.document = live.document.clone();
                (Action::NoOp, None)
            }
            (Some(_), _) => (Action::Update, Some(Reason::Drift { attributes: vec!["document".to_owned()] })),
        };
        self.push(
            Address::tenant(ns, Kind::S3Policy),
            action,
            reason,
            live_policy.map(State::S3Policy),
            Some(State::S3Policy(want_policy)),
        );

        let profile_addr = Address::tenant(ns, Kind::Profile);
        let want_profile = desired_profile(tenant, &want_role.arn);
        let profile_action = match self.observed.profiles.get(ns) {
            None => {
                if self.observed.bare_namespaces.contains(ns) {
                    self.refuse(
                        profile_addr.clone(),
                        format!(
                            "namespace {ns} exists without a Profile, and the profile controller takes over an existing namespace only when its owner annotation names the Profile's owner"
                        ),
                        format!(
                            "if the namespace is meant to be this tenant's, annotate it first (kubectl annotate namespace {ns} owner={}); otherwise choose another namespace for this tenant",
                            tenant.owner
                        ),
                    );
                }
                self.push(profile_addr, Action::Create, Some(Reason::Missing), None, Some(State::Profile(want_profile)));
                Action::Create
            }
            Some(live) => {
                if !live.managed && !adopt {
                    self.refuse(
                        profile_addr.clone(),
                        format!(
                            "Profile {ns} exists but was not created by kfp-tenant (no {}={} label)",
                            tags::PROFILE_LABEL,
                            tags::MANAGER
                        ),
                        "choose another namespace, or take it over with --adopt",
                    );
                }
                let drift = profile_drift(live, &want_profile);
                let (action, reason) = if live.owner != want_profile.owner {
                    (Action::Replace, Some(Reason::OwnerChanged))
                } else if drift.is_empty() {
                    (Action::NoOp, None)
                } else if live.managed {
                    (Action::Update, Some(Reason::Drift { attributes: drift }))
                } else {
                    (Action::Update, Some(Reason::Adopt))
                };
                self.push(profile_addr, action, reason, Some(State::Profile(live.clone())), Some(State::Profile(want_profile)));
                action
            }
        };

        for name in tenant.extra_service_accounts() {
            let address = Address::service_account(ns, name);
            let want =
                ServiceAccount { namespace: ns.to_owned(), name: name.to_owned(), role_arn: Some(want_role.arn.clone()), managed: true };
            let live = self.observed.service_accounts.get(&(ns.to_owned(), name.to_owned()));
            let (action, reason) = match live {
                _ if profile_action == Action::Replace => (Action::Create, Some(Reason::NamespaceRecreated)),
                None => (Action::Create, Some(Reason::Missing)),
                Some(live) if *live == want => (Action::NoOp, None),
                Some(live) if live.managed => (Action::Update, Some(Reason::Drift { attributes: vec!["role_arn".to_owned()] })),
                Some(_) => {
                    if !adopt {
                        self.refuse(
                            address.clone(),
                            format!(
                                "service account {ns}/{name} exists but was not created by kfp-tenant (no {}={} label)",
                                tags::PROFILE_LABEL,
                                tags::MANAGER
                            ),
                            "remove it from serviceAccounts, or take it over with --adopt",
                        );
                    }
                    (Action::Update, Some(Reason::Adopt))
                }
            };
            self.push(address, action, reason, live.cloned().map(State::ServiceAccount), Some(State::ServiceAccount(want)));
        }
    }

    fn delete_tenant(&mut self, ns: &str, role_name: &str, policy: &str, reason: Reason) {
        if let Some(live) = self.observed.profiles.get(ns) {
            let addr = Address::tenant(ns, Kind::Profile);
            if live.managed {
                self.push(addr, Action::Delete, Some(reason.clone()), Some(State::Profile(live.clone())), None);
            } else {
                self.refuse(
                    addr,
                    format!("Profile {ns} was not created by kfp-tenant, so it is not deleted"),
                    "delete it yourself, or remove the tenant from the file",
                );
            }
        }
        let Some(role) = self.observed.roles.get(role_name) else { return };
        let addr = Address::tenant(ns, Kind::IamRole);
        if !tags::is_managed_role(&role.tags, &self.cluster.name) {
            self.refuse(
                addr,
                format!("IAM role {role_name} was not created by kfp-tenant for cluster {}, so it is not deleted", self.cluster.name),
                "delete it yourself, or remove the tenant from the file",
            );
            return;
        }
        if let Some(document) = self.observed.policies.get(&(role_name.to_owned(), policy.to_owned())) {
            let live = InlinePolicy { role_name: role_name.to_owned(), policy_name: policy.to_owned(), document: document.clone() };
            self.push(Address::tenant(ns, Kind::S3Policy), Action::Delete, Some(reason.clone()), Some(State::S3Policy(live)), None);
        }
        self.push(addr, Action::Delete, Some(reason), Some(State::Role(role.clone())), None);
    }

    fn prune(&mut self) {
        let wanted: BTreeMap<&str, &Tenant> = self.desired.tenants.iter().map(|t| (t.namespace.as_str(), t)).collect();
        for role in &self.observed.managed_roles {
            let Some(ns) = role.tags.get(tags::NAMESPACE) else { continue };
            match wanted.get(ns.as_str()) {
                None => self.delete_tenant(ns, &role.name, &policy_name(ns), Reason::Pruned),
                Some(t) if t.role_name != role.name => self.warnings.push(format!(
                    "IAM role {} is tagged for tenant {ns}, which now uses role {}; it is left in place: delete it with `aws iam delete-role-policy --role-name {} --policy-name {}` and `aws iam delete-role --role-name {}`",
                    role.name, t.role_name, role.name, policy_name(ns), role.name
                )),
                Some(_) => {}
            }
        }
        for profile in self.observed.profiles.values() {
            let addr = Address::tenant(&profile.name, Kind::Profile);
            if profile.managed && !wanted.contains_key(profile.name.as_str()) && !self.changes.contains_key(&addr) {
                self.push(addr, Action::Delete, Some(Reason::Pruned), Some(State::Profile(profile.clone())), None);
            }
        }
    }

    fn finish(self, mode: Mode) -> Result<Plan, PlanError> {
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

fn describe_tags(tags: &BTreeMap<String, String>) -> String {
    if tags.is_empty() {
        return "none".to_owned();
    }
    tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

/// The attributes of a role that differ, by name. The ARN is IAM's to assign.
pub fn role_drift(live: &Role, want: &Role) -> Vec<String> {
    let mut drift = Vec::new();
    if live.trust_policy != want.trust_policy {
        drift.push("trust_policy");
    }
    if live.description != want.description {
        drift.push("description");
    }
    if live.max_session_duration != want.max_session_duration {
        drift.push("max_session_duration");
    }
    if live.permissions_boundary != want.permissions_boundary {
        drift.push("permissions_boundary");
    }
    if live.tags != want.tags {
        drift.push("tags");
    }
    drift.into_iter().map(str::to_owned).collect()
}

pub fn profile_drift(live: &Profile, want: &Profile) -> Vec<String> {
    let mut drift = Vec::new();
    if live.owner != want.owner {
        drift.push("owner");
    }
    if live.plugins != want.plugins {
        drift.push("plugins");
    }
    if live.resource_quota != want.resource_quota {
        drift.push("resource_quota");
    }
    if live.managed != want.managed {
        drift.push("labels");
    }
    drift.into_iter().map(str::to_owned).collect()
}

/// Keeps only the tenants named in `targets` (all when it is empty). Never
/// prune a targeted plan: every tenant outside the target would look removed.
pub fn target(desired: &Desired, targets: &[String]) -> Desired {
    let mut d = desired.clone();
    if !targets.is_empty() {
        d.tenants.retain(|t| targets.contains(&t.namespace));
    }
    d
}
