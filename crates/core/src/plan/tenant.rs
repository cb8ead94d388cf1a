//! One tenant's resources in the planner: its role, inline policy, Profile
//! and service accounts, the service accounts it no longer grants, and the
//! roles it had under earlier names.

use crate::address::{Address, Kind};
use crate::plan::desired::{
    desired_profile, desired_role, desired_s3_policy, desired_service_account, profile_drift, role_drift, service_account_drift,
};
use crate::plan::planner::Planner;
use crate::plan::{Action, DeposedRole, Reason, State};
use crate::ports::{InlinePolicy, ServiceAccount};
use crate::spec::{DEFAULT_SERVICE_ACCOUNT, Tenant, policy_name};
use crate::tags::{self, Ownership};

impl Planner<'_> {
    pub(super) fn tenant(&mut self, tenant: &Tenant, adopt: bool) {
        let ns = tenant.namespace.as_str();
        let want_role = desired_role(tenant, &self.cluster);
        let role_action = self.role(tenant, &want_role, adopt);
        self.s3_policy(tenant, role_action);
        let profile_action = self.profile(tenant, &want_role.arn, adopt);

        for name in tenant.extra_service_accounts() {
            self.service_account(ns, name, &want_role.arn, profile_action, adopt);
        }
        self.default_editor(ns, &want_role.arn, profile_action);
        self.dropped_service_accounts(tenant);
        self.deposed_roles(ns, &tenant.role_name, Reason::Deposed { by: want_role.name.clone() });
    }

    fn role(&mut self, tenant: &Tenant, want: &crate::ports::Role, adopt: bool) -> Action {
        let ns = tenant.namespace.as_str();
        let address = Address::tenant(ns, Kind::IamRole);
        let quota = self.desired.cluster.trust_policy_quota;
        if want.trust_policy.minified_len() > quota {
            self.refuse(
                Address::tenant(ns, Kind::TrustPolicy),
                format!(
                    "the trust policy is {} characters with the cluster's issuer, over the quota of {quota}",
                    want.trust_policy.minified_len()
                ),
                "list fewer service accounts, or raise the IAM quota and set trustPolicyQuota",
            );
        }
        let Some(live) = self.observed.roles.get(&tenant.role_name) else {
            self.push(address, Action::Create, Some(Reason::Missing), None, Some(State::Role(want.clone())));
            return Action::Create;
        };
        let managed = tags::is_managed_role(&live.tags, &self.cluster.name);
        if !managed && !adopt {
            self.refuse(
                address.clone(),
                format!(
                    "IAM role {} exists but was not created by kfp-tenant for cluster {} (tags: {})",
                    live.name,
                    self.cluster.name,
                    describe_tags(&live.tags)
                ),
                "choose another roleName, or take it over with --adopt",
            );
        }
        if live.path != want.path {
            if !managed {
                self.refuse(
                    address.clone(),
                    format!("IAM role {} has path {} but the tenant asks for {}", live.name, live.path, want.path),
                    format!("set rolePath: {} to adopt it", live.path),
                );
            }
            self.push(
                address,
                Action::Replace,
                Some(Reason::PathChanged),
                Some(State::Role(live.clone())),
                Some(State::Role(want.clone())),
            );
            return Action::Replace;
        }
        // An unchanged document is held once, shared by before and after.
        let mut want = want.clone();
        if live.trust_policy == want.trust_policy {
            want.trust_policy = live.trust_policy.clone();
        }
        let drift = role_drift(live, &want);
        let (action, reason) = match (drift.is_empty(), managed) {
            (true, _) => (Action::NoOp, None),
            (false, true) => (Action::Update, Some(Reason::Drift { attributes: drift })),
            (false, false) => (Action::Update, Some(Reason::Adopt)),
        };
        self.push(address, action, reason, Some(State::Role(live.clone())), Some(State::Role(want)));
        action
    }

    fn s3_policy(&mut self, tenant: &Tenant, role_action: Action) {
        let mut want = desired_s3_policy(tenant, &self.cluster);
        let live = self.observed.policies.get(&(tenant.role_name.clone(), tenant.policy_name.clone())).map(|d| InlinePolicy {
            role_name: tenant.role_name.clone(),
            policy_name: tenant.policy_name.clone(),
            document: d.clone(),
        });
        let (action, reason) = match (&live, role_action) {
            (_, Action::Replace) => (Action::Create, Some(Reason::RoleReplaced)),
            (None, _) => (Action::Create, Some(Reason::Missing)),
            (Some(live), _) if live.document == want.document => {
                want.document = live.document.clone();
                (Action::NoOp, None)
            }
            (Some(_), _) => (Action::Update, Some(Reason::Drift { attributes: vec!["document".to_owned()] })),
        };
        let address = Address::tenant(&tenant.namespace, Kind::S3Policy);
        self.push(address, action, reason, live.map(State::S3Policy), Some(State::S3Policy(want)));
    }

    fn profile(&mut self, tenant: &Tenant, role_arn: &str, adopt: bool) -> Action {
        let ns = tenant.namespace.as_str();
        let address = Address::tenant(ns, Kind::Profile);
        let want = desired_profile(tenant, role_arn, &self.cluster.name);
        let Some(live) = self.observed.profiles.get(ns) else {
            let reason = match self.observed.bare_namespaces.get(ns) {
                None => Reason::Missing,
                Some(existing) if existing.terminating => {
                    self.refuse(
                        address.clone(),
                        format!("namespace {ns} is still being deleted"),
                        format!("wait until it is gone (kubectl get namespace {ns}), then run again"),
                    );
                    Reason::Missing
                }
                Some(existing) if existing.owner.as_deref() == Some(tenant.owner.as_str()) => Reason::TakeOverNamespace,
                Some(existing) => {
                    let owner = existing.owner.as_ref().map_or_else(|| "no owner annotation".to_owned(), |o| format!("owner {o}"));
                    self.refuse(
                        address.clone(),
                        format!(
                            "namespace {ns} exists without a Profile ({owner}), and the profile controller takes over an existing namespace only when its owner annotation names the Profile's owner"
                        ),
                        format!(
                            "if the namespace is meant to be this tenant's, annotate it first (kubectl annotate --overwrite namespace {ns} owner={}); otherwise choose another namespace for this tenant",
                            tenant.owner
                        ),
                    );
                    Reason::Missing
                }
            };
            self.push(address, Action::Create, Some(reason), None, Some(State::Profile(want)));
            return Action::Create;
        };
        let ownership = tags::ownership(live.managed, live.cluster.as_deref(), &self.cluster.name);
        match &ownership {
            Ownership::Foreign if !adopt => self.refuse(
                address.clone(),
                format!("Profile {ns} exists but was not created by kfp-tenant (no {}={} label)", tags::PROFILE_LABEL, tags::MANAGER),
                "choose another namespace, or take it over with --adopt",
            ),
            Ownership::OtherCluster(other) if !adopt => self.refuse(
                address.clone(),
                format!("Profile {ns} was written by kfp-tenant for EKS cluster {other}, not {}", self.cluster.name),
                "check the tenants file's cluster and the kubeconfig context (--context); if the Profile really is this cluster's tenant, take it over with --adopt",
            ),
            _ => {}
        }
        let drift = profile_drift(live, &want);
        let (action, reason) = if live.owner != want.owner {
            (Action::Replace, Reason::OwnerChanged)
        } else if drift.is_empty() {
            self.push(address, Action::NoOp, None, Some(State::Profile(live.clone())), Some(State::Profile(want)));
            return Action::NoOp;
        } else {
            match ownership {
                Ownership::Ours => (Action::Update, Reason::Drift { attributes: drift }),
                Ownership::Legacy if drift == ["labels"] => (Action::Update, Reason::RecordCluster),
                Ownership::Legacy => (Action::Update, Reason::Drift { attributes: drift }),
                Ownership::OtherCluster(cluster) => (Action::Update, Reason::AdoptFromCluster { cluster }),
                Ownership::Foreign => (Action::Update, Reason::Adopt),
            }
        };
        self.push(address, action, Some(reason), Some(State::Profile(live.clone())), Some(State::Profile(want)));
        action
    }

    fn service_account(&mut self, ns: &str, name: &str, role_arn: &str, profile_action: Action, adopt: bool) {
        let address = Address::service_account(ns, name);
        let live = self.observed.service_accounts.get(&(ns.to_owned(), name.to_owned()));
        let want = desired_service_account(ns, name, role_arn, &self.cluster.name, live);
        let (action, reason) = match live {
            _ if profile_action == Action::Replace => (Action::Create, Some(Reason::NamespaceRecreated)),
            None => (Action::Create, Some(Reason::Missing)),
            Some(live) => {
                let drift = service_account_drift(live, &want);
                match tags::ownership(live.managed, live.cluster.as_deref(), &self.cluster.name) {
                    _ if drift.is_empty() => (Action::NoOp, None),
                    Ownership::Ours => (Action::Update, Some(Reason::Drift { attributes: drift })),
                    Ownership::Legacy if drift == ["labels"] => (Action::Update, Some(Reason::RecordCluster)),
                    Ownership::Legacy => (Action::Update, Some(Reason::Drift { attributes: drift })),
                    Ownership::OtherCluster(other) => {
                        if !adopt {
                            self.refuse(
                                address.clone(),
                                format!(
                                    "service account {ns}/{name} was written by kfp-tenant for EKS cluster {other}, not {}",
                                    self.cluster.name
                                ),
                                "check the tenants file's cluster and the kubeconfig context (--context), or take it over with --adopt",
                            );
                        }
                        (Action::Update, Some(Reason::AdoptFromCluster { cluster: other }))
                    }
                    Ownership::Foreign => {
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
                }
            }
        };
        self.push(address, action, reason, live.cloned().map(State::ServiceAccount), Some(State::ServiceAccount(want)));
    }

    /// `default-editor` is the profile controller's: it makes the account
    /// and writes its role annotation. Its annotation is still observed
    /// state: when the Profile stands as it is and the annotation differs,
    /// kfp-tenant restores it (the controller would write the same value).
    /// When the Profile changes, the controller does it.
    fn default_editor(&mut self, ns: &str, role_arn: &str, profile_action: Action) {
        if profile_action != Action::NoOp {
            return;
        }
        let live = self.observed.service_accounts.get(&(ns.to_owned(), DEFAULT_SERVICE_ACCOUNT.to_owned()));
        let want = ServiceAccount {
            namespace: ns.to_owned(),
            name: DEFAULT_SERVICE_ACCOUNT.to_owned(),
            role_arn: Some(role_arn.to_owned()),
            managed: false,
            cluster: None,
            created: false,
        };
        let (action, reason) = match live {
            Some(live) if live.role_arn == want.role_arn => (Action::NoOp, None),
            Some(_) => (Action::Update, Some(Reason::AnnotationDrift)),
            None => (Action::Create, Some(Reason::AnnotationDrift)),
        };
        let want = ServiceAccount { managed: live.is_some_and(|l| l.managed), cluster: live.and_then(|l| l.cluster.clone()), ..want };
        let before = live.cloned().map(State::ServiceAccount);
        self.push(Address::service_account(ns, DEFAULT_SERVICE_ACCOUNT), action, reason, before, Some(State::ServiceAccount(want)));
    }

    /// kfp-tenant's service accounts in the tenant's namespace that the file
    /// no longer names: deleted when kfp-tenant created them, released
    /// (labels and role annotation removed) when it adopted them.
    fn dropped_service_accounts(&mut self, tenant: &Tenant) {
        let ns = tenant.namespace.as_str();
        // Keyed by (namespace, name): this namespace's accounts are one range.
        let dropped: Vec<ServiceAccount> = self
            .observed
            .service_accounts
            .range((ns.to_owned(), String::new())..)
            .take_while(|((namespace, _), _)| namespace == ns)
            .map(|(_, sa)| sa)
            .filter(|sa| sa.name != DEFAULT_SERVICE_ACCOUNT && !tenant.service_accounts.contains(&sa.name))
            .filter(|sa| {
                matches!(tags::ownership(sa.managed, sa.cluster.as_deref(), &self.cluster.name), Ownership::Ours | Ownership::Legacy)
            })
            .cloned()
            .collect();
        for sa in dropped {
            let address = Address::service_account(ns, &sa.name);
            if sa.created {
                self.push(address, Action::Delete, Some(Reason::Dropped), Some(State::ServiceAccount(sa)), None);
            } else {
                let released = ServiceAccount { role_arn: None, managed: false, cluster: None, ..sa.clone() };
                self.push(
                    address,
                    Action::Update,
                    Some(Reason::Dropped),
                    Some(State::ServiceAccount(sa)),
                    Some(State::ServiceAccount(released)),
                );
            }
        }
    }

    /// The roles kfp-tenant made for tenant `ns` of this cluster under
    /// another name than `current`: each goes, with its inline policy, once
    /// the Profile and the service accounts no longer point at it.
    pub(super) fn deposed_roles(&mut self, ns: &str, current: &str, reason: Reason) {
        let deposed: Vec<crate::ports::Role> = self
            .managed_by_namespace
            .get(ns)
            .into_iter()
            .flatten()
            .filter(|r| !r.name.eq_ignore_ascii_case(current))
            .map(|r| (*r).clone())
            .collect();
        let policy = policy_name(ns);
        for role in deposed {
            let document = self.observed.policies.get(&(role.name.clone(), policy.clone()));
            let policy = document.map(|d| InlinePolicy { role_name: role.name.clone(), policy_name: policy.clone(), document: d.clone() });
            let address = Address::deposed_role(ns, &role.name);
            self.push(address, Action::Delete, Some(reason.clone()), Some(State::DeposedRole(DeposedRole { role, policy })), None);
        }
    }
}

fn describe_tags(tags: &std::collections::BTreeMap<String, String>) -> String {
    if tags.is_empty() {
        return "none".to_owned();
    }
    tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}
