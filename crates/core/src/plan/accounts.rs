//! A tenant's service accounts in the planner: kfp-tenant's own (made,
//! labelled, annotated; released or deleted when the file drops them) and
//! `default-editor`, the profile controller's, whose role annotation
//! kfp-tenant sets back itself when it differs.

use crate::address::Address;
use crate::kinds::desired_service_account;
use crate::kinds::service_account_drift;
use crate::plan::planner::Planner;
use crate::plan::{Action, Reason, State};
use crate::ports::ServiceAccount;
use crate::spec::{DEFAULT_SERVICE_ACCOUNT, Road, Tenant};
use crate::tags::{self, Ownership};

impl Planner<'_> {
    /// The observed service accounts of namespace `ns` (keyed by
    /// (namespace, name), so they are one range).
    pub(super) fn namespace_accounts<'s>(&'s self, ns: &'s str) -> impl Iterator<Item = &'s ServiceAccount> + 's {
        self.observed
            .service_accounts
            .range((ns.to_owned(), String::new())..)
            .take_while(move |((namespace, _), _)| namespace == ns)
            .map(|(_, sa)| sa)
    }

    pub(super) fn service_account(&mut self, ns: &str, name: &str, role_arn: Option<&str>, profile_action: Action) {
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
                    Ownership::Ours if drift == ["role_arn"] && want.role_arn.is_none() => {
                        (Action::Update, Some(Reason::RoadLeft { road: Road::Irsa }))
                    }
                    Ownership::Ours => (Action::Update, Some(Reason::Drift { attributes: drift })),
                    Ownership::Legacy if drift == ["labels"] => (Action::Update, Some(Reason::RecordCluster)),
                    Ownership::Legacy => (Action::Update, Some(Reason::Drift { attributes: drift })),
                    Ownership::OtherCluster(other) => {
                        if !self.adopt {
                            self.refuse_unless_adopted(
                                address.clone(),
                                format!(
                                    "service account {ns}/{name} was written by kfp-tenant for EKS cluster {other}, not {}",
                                    self.cluster.name
                                ),
                                "check the tenants file's cluster and the kubeconfig context (--context)",
                            );
                        }
                        (Action::Update, Some(Reason::AdoptFromCluster { cluster: other }))
                    }
                    Ownership::Foreign => {
                        if !self.adopt {
                            self.refuse_unless_adopted(
                                address.clone(),
                                format!(
                                    "service account {ns}/{name} exists but was not created by kfp-tenant (no {}={} label)",
                                    tags::PROFILE_LABEL,
                                    tags::MANAGER
                                ),
                                "remove it from serviceAccounts",
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
    /// state: whenever the Profile exists and the annotation differs,
    /// kfp-tenant sets it itself, so one apply converges without the
    /// controller (which would write the same value, once it runs): after a
    /// hand-edited plugin, on a move between roads (so that it is in place
    /// before the associations go), or when the tenant leaves IRSA (the
    /// controller leaves the annotation when its plugin goes, and in the AWS
    /// SDKs' credential chain IRSA wins over Pod Identity). An account the
    /// controller has not made yet is its to make: the plan says so and
    /// writes nothing (the namespace may not even exist yet).
    pub(super) fn default_editor(&mut self, ns: &str, role_arn: Option<&str>, profile_action: Action) {
        if !matches!(profile_action, Action::NoOp | Action::Update) {
            return;
        }
        let Some(live) = self.observed.service_accounts.get(&(ns.to_owned(), DEFAULT_SERVICE_ACCOUNT.to_owned())) else {
            if role_arn.is_some() && profile_action == Action::NoOp {
                self.warn(format!(
                    "Profile {ns} exists, but its service account {DEFAULT_SERVICE_ACCOUNT} does not yet (nor, perhaps, its namespace): the Kubeflow profile controller makes it with the role annotation; if this lasts, check the controller (kubectl -n kubeflow logs deploy/profiles-deployment)"
                ));
            }
            return;
        };
        let want = ServiceAccount {
            namespace: ns.to_owned(),
            name: DEFAULT_SERVICE_ACCOUNT.to_owned(),
            role_arn: role_arn.map(str::to_owned),
            managed: live.managed,
            cluster: live.cluster.clone(),
            created: false,
        };
        let (action, reason) = match () {
            () if live.role_arn == want.role_arn => (Action::NoOp, None),
            () if role_arn.is_none() => (Action::Update, Some(Reason::RoadLeft { road: Road::Irsa })),
            () if profile_action == Action::Update => (Action::Update, Some(Reason::Drift { attributes: vec!["role_arn".to_owned()] })),
            () => (Action::Update, Some(Reason::AnnotationDrift)),
        };
        let before = Some(State::ServiceAccount(live.clone()));
        self.push(Address::service_account(ns, DEFAULT_SERVICE_ACCOUNT), action, reason, before, Some(State::ServiceAccount(want)));
    }

    /// kfp-tenant's service accounts in the tenant's namespace that the file
    /// no longer names: deleted when kfp-tenant created them, released
    /// (labels and role annotation removed) when it adopted them.
    pub(super) fn dropped_service_accounts(&mut self, tenant: &Tenant) {
        let ns = tenant.namespace.as_str();
        let dropped: Vec<ServiceAccount> = self
            .namespace_accounts(ns)
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
}
