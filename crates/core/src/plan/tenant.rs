//! One tenant's resources in the planner: its role and exactly its
//! permissions, its Profile (and when it may be replaced), its Pod Identity
//! associations, what it no longer grants, the road to AWS it leaves, and the
//! roles it had under earlier names. Its service accounts are `accounts`'.

use std::collections::BTreeSet;

use crate::address::{Address, Kind};
use crate::kinds::profile_drift;
use crate::kinds::role_drift;
use crate::kinds::{association_tags, bridge_trust, desired_profile, desired_role, desired_s3_policy, road_trust};
use crate::plan::planner::Planner;
use crate::plan::{Action, DeposedRole, PolicyAttachment, Reason, State, TrustStatement};
use crate::ports::{InlinePolicy, PodIdentityAssociation};
use crate::spec::{DEFAULT_SERVICE_ACCOUNT, Road, Tenant, policy_name};
use crate::tags::{self, Ownership};

impl Planner<'_> {
    /// A tenant moving from one road to the other keeps the old road's
    /// trust statement while the new road's grants are made and the old
    /// road's are revoked; the statement goes last (`trust_statement`).
    /// Apply orders the grants before the revocations, so at every step one
    /// road admits the tenant's service accounts, and a rerun after a
    /// failure plans the rest of the move from what it finds.
    pub(super) fn tenant(&mut self, tenant: &Tenant) {
        let ns = tenant.namespace.as_str();
        let road = tenant.road;
        let mut want_role = desired_role(tenant, &self.cluster);
        let only_road = want_role.trust_policy.clone();
        let leaving = Some(road.other()).filter(|old| self.road_in_use(tenant, *old));
        let old_statement = leaving.map(|old| road_trust(old, tenant, &self.cluster));
        if let Some(old) = &old_statement {
            want_role.trust_policy = bridge_trust(&only_road, old);
        }
        let role_action = self.role(tenant, &want_role);
        self.s3_policy(tenant, role_action);
        self.role_permissions(tenant, role_action);
        let arn = want_role.arn.clone();
        let profile_action = self.profile(tenant, &arn);

        let annotation = (road == Road::Irsa).then_some(arn.as_str());
        for name in tenant.extra_service_accounts() {
            self.service_account(ns, name, annotation, profile_action);
        }
        self.default_editor(ns, annotation, profile_action);
        self.push_planned(crate::kinds::plan_pipeline_config(tenant, profile_action, self.observed, &self.cluster));
        if road == Road::PodIdentity {
            self.pod_identities(tenant, &arn);
        }
        self.dropped_associations(ns, tenant.service_accounts.as_slice(), road);
        self.dropped_service_accounts(tenant);
        if let (Some(old), Some(statement)) = (leaving, old_statement) {
            let retired = TrustStatement { role_name: tenant.role_name.clone(), road: old, statement, remaining: only_road };
            let reason = Reason::RoadLeft { road: old };
            self.push(Address::trust_statement(ns, old), Action::Delete, Some(reason), Some(State::TrustStatement(retired)), None);
        }
        self.deposed_roles(ns, &tenant.role_name, Reason::Deposed { by: want_role.name.clone() });
    }

    /// Whether `road` still carries the tenant's pods: for IRSA, the
    /// Profile's plugin or a role annotation on `default-editor` or on one
    /// of kfp-tenant's service accounts in the namespace (and the account
    /// has the OIDC provider its statement names); for Pod Identity, an
    /// association kfp-tenant made in the namespace.
    fn road_in_use(&self, tenant: &Tenant, road: Road) -> bool {
        let ns = tenant.namespace.as_str();
        match road {
            Road::Irsa => {
                let plugin = self.observed.profiles.get(ns).is_some_and(|p| p.role_arn().is_some());
                let annotated = self.namespace_accounts(ns).any(|sa| {
                    sa.role_arn.is_some()
                        && (sa.name == DEFAULT_SERVICE_ACCOUNT
                            || matches!(
                                tags::ownership(sa.managed, sa.cluster.as_deref(), &self.cluster.name),
                                Ownership::Ours | Ownership::Legacy
                            ))
                });
                (plugin || annotated) && !self.cluster.oidc_provider_arn.is_empty()
            }
            Road::PodIdentity => self.our_associations(ns).next().is_some(),
        }
    }

    /// The associations in namespace `ns` that carry kfp-tenant's markers for this cluster.
    pub(super) fn our_associations<'s>(&'s self, ns: &'s str) -> impl Iterator<Item = &'s PodIdentityAssociation> + 's {
        self.observed
            .associations
            .range((ns.to_owned(), String::new())..)
            .take_while(move |((namespace, _), _)| namespace == ns)
            .map(|(_, a)| a)
            .filter(|a| tags::is_managed_role(&a.tags, &self.cluster.name))
    }

    /// One association per service account the tenant grants. EKS allows
    /// one per service account, so another's is refused unless adopted;
    /// adopting recreates it with kfp-tenant's tags (EKS's update cannot
    /// set tags).
    fn pod_identities(&mut self, tenant: &Tenant, role_arn: &str) {
        let ns = tenant.namespace.as_str();
        for sa in &tenant.service_accounts {
            let address = Address::pod_identity(ns, sa);
            let mut want = PodIdentityAssociation {
                id: String::new(),
                namespace: ns.to_owned(),
                service_account: sa.clone(),
                role_arn: Some(role_arn.to_owned()),
                tags: association_tags(&self.cluster.name, ns),
            };
            let Some(live) = self.observed.associations.get(&(ns.to_owned(), sa.clone())) else {
                self.push(address, Action::Create, Some(Reason::Missing), None, Some(State::PodIdentity(want)));
                continue;
            };
            if !tags::is_managed_role(&live.tags, &self.cluster.name) {
                if !self.adopt {
                    self.refuse_unless_adopted(
                        address.clone(),
                        format!(
                            "service account {ns}/{sa} already has EKS Pod Identity association {} (role {}), not made by kfp-tenant for cluster {}, and EKS allows one per service account",
                            live.id,
                            live.role_arn.as_deref().unwrap_or("unknown"),
                            self.cluster.name
                        ),
                        format!(
                            "delete it (aws eks delete-pod-identity-association --cluster-name {} --association-id {})",
                            self.cluster.name, live.id
                        ),
                    );
                }
                self.push(
                    address,
                    Action::Replace,
                    Some(Reason::Adopt),
                    Some(State::PodIdentity(live.clone())),
                    Some(State::PodIdentity(want)),
                );
                continue;
            }
            want.id = live.id.clone();
            let (action, reason) = if live.role_arn == want.role_arn {
                (Action::NoOp, None)
            } else {
                (Action::Update, Some(Reason::Drift { attributes: vec!["role_arn".to_owned()] }))
            };
            self.push(address, action, reason, Some(State::PodIdentity(live.clone())), Some(State::PodIdentity(want)));
        }
    }

    /// kfp-tenant's associations in the namespace for service accounts the
    /// tenant no longer grants, or all of them when it left Pod Identity.
    fn dropped_associations(&mut self, ns: &str, granted: &[String], road: Road) {
        let dropped: Vec<PodIdentityAssociation> =
            self.our_associations(ns).filter(|a| road != Road::PodIdentity || !granted.contains(&a.service_account)).cloned().collect();
        let reason = match road {
            Road::PodIdentity => Reason::Dropped,
            Road::Irsa => Reason::RoadLeft { road: Road::PodIdentity },
        };
        for association in dropped {
            let address = Address::pod_identity(ns, &association.service_account);
            self.push(address, Action::Delete, Some(reason.clone()), Some(State::PodIdentity(association)), None);
        }
    }

    fn role(&mut self, tenant: &Tenant, want: &crate::ports::Role) -> Action {
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
        if !managed && !self.adopt {
            self.refuse_unless_adopted(
                address.clone(),
                format!(
                    "IAM role {} exists but was not created by kfp-tenant for cluster {} (tags: {})",
                    live.name,
                    self.cluster.name,
                    describe_tags(&live.tags)
                ),
                "choose another roleName",
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

    /// A tenant's role carries exactly the file's permissions, as
    /// Terraform's `aws_iam_role_policies_exclusive` and
    /// `..._attachments_exclusive` keep a role: its one S3 policy and the
    /// managed policies `managedPolicies` lists. Any other inline policy
    /// (shown with its document) or attachment found on the role is removed;
    /// a listed policy not attached is attached.
    fn role_permissions(&mut self, tenant: &Tenant, role_action: Action) {
        let ns = tenant.namespace.as_str();
        let role = tenant.role_name.as_str();
        let attached: BTreeSet<String> = match role_action {
            // A new role has nothing yet.
            Action::Create => BTreeSet::new(),
            _ => {
                let (extra, attached) = self.observed.role_permissions(role, Some(&tenant.policy_name));
                for policy in extra {
                    let address = Address::inline_policy(ns, &policy.policy_name);
                    self.push(address, Action::Delete, Some(Reason::NotInFile), Some(State::InlinePolicy(policy)), None);
                }
                attached.into_iter().collect()
            }
        };
        for arn in attached.iter().filter(|arn| !tenant.managed_policies.contains(arn)) {
            let state = PolicyAttachment { role_name: role.to_owned(), policy_arn: arn.clone() };
            self.push(
                Address::policy_attachment(ns, arn),
                Action::Delete,
                Some(Reason::NotInFile),
                Some(State::PolicyAttachment(state)),
                None,
            );
        }
        for arn in &tenant.managed_policies {
            let state = PolicyAttachment { role_name: role.to_owned(), policy_arn: arn.clone() };
            let address = Address::policy_attachment(ns, arn);
            match (attached.contains(arn), role_action) {
                // The old role's attachments go with it.
                (_, Action::Replace) => {
                    self.push(address, Action::Create, Some(Reason::RoleReplaced), None, Some(State::PolicyAttachment(state)))
                }
                (true, _) => self.push(
                    address,
                    Action::NoOp,
                    None,
                    Some(State::PolicyAttachment(state.clone())),
                    Some(State::PolicyAttachment(state)),
                ),
                (false, _) => self.push(address, Action::Create, Some(Reason::Missing), None, Some(State::PolicyAttachment(state))),
            }
        }
    }

    fn profile(&mut self, tenant: &Tenant, role_arn: &str) -> Action {
        let ns = tenant.namespace.as_str();
        let address = Address::tenant(ns, Kind::Profile);
        let want = desired_profile(tenant, role_arn, &self.cluster.name);
        let Some(live) = self.observed.profiles.get(ns) else {
            let reason = match self.observed.namespaces.get(ns) {
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
            Ownership::Foreign if !self.adopt => self.refuse_unless_adopted(
                address.clone(),
                format!("Profile {ns} exists but was not created by kfp-tenant (no {}={} label)", tags::PROFILE_LABEL, tags::MANAGER),
                "choose another namespace",
            ),
            Ownership::OtherCluster(other) if !self.adopt => self.refuse_unless_adopted(
                address.clone(),
                format!("Profile {ns} was written by kfp-tenant for EKS cluster {other}, not {}", self.cluster.name),
                "check the tenants file's cluster and the kubeconfig context (--context)",
            ),
            _ => {}
        }
        let drift = profile_drift(live, &want);
        // No plan deletes a namespace that the operator did not name.
        let owner_needs_replace = live.owner != want.owner && !self.patch_changes_owner(ns, &want.owner);
        let (action, reason) = if self.replace.contains(&address) {
            (Action::Replace, if owner_needs_replace { Reason::OwnerChanged } else { Reason::ReplaceRequested })
        } else if owner_needs_replace {
            let annotated = match self.observed.namespaces.get(ns).and_then(|n| n.owner.as_deref()) {
                Some(owner) => format!("names {owner}"),
                None => "names no owner".to_owned(),
            };
            self.refuse(
                address.clone(),
                format!(
                    "the owner changes from {} to {}, and namespace {ns}'s owner annotation {annotated}: the profile controller keeps a namespace only for the owner it names, so only replacing the Profile converges, which deletes the namespace and everything in it (notebooks, volumes, runs)",
                    live.owner, want.owner
                ),
                format!(
                    "to keep the namespace, annotate it with the new owner first (kubectl annotate --overwrite namespace {ns} owner={}) and plan again; to delete and recreate it, name it: --replace '{address}'",
                    want.owner
                ),
            );
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

    /// Whether patching the Profile's owner converges: the profile
    /// controller serves an existing namespace only when its `owner`
    /// annotation names the Profile's owner (and makes a missing one).
    fn patch_changes_owner(&self, ns: &str, owner: &str) -> bool {
        // Refresh reads the namespace of every Profile whose owner differs
        // from the file's: not found, it does not exist.
        self.observed.namespaces.get(ns).is_none_or(|namespace| namespace.owner.as_deref() == Some(owner))
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
            let (other_policies, attached_policies) =
                self.observed.role_permissions(&role.name, policy.as_ref().map(|p| p.policy_name.as_str()));
            let address = Address::deposed_role(ns, &role.name);
            let deposed = DeposedRole { role, policy, other_policies, attached_policies };
            self.push(address, Action::Delete, Some(reason.clone()), Some(State::DeposedRole(deposed)), None);
        }
    }
}

fn describe_tags(tags: &std::collections::BTreeMap<String, String>) -> String {
    if tags.is_empty() {
        return "none".to_owned();
    }
    tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}
