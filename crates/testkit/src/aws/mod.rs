//! AWS in memory: [`FakeCluster`] (STS, EKS; in `cluster`),
//! [`FakeDirectory`] (Cognito; in `directory`) and [`FakeIam`] (IAM here,
//! and EKS Pod Identity in `pods`, since EKS checks its roles in IAM and
//! the retry wrapper shares what it saw created between the two).
//!
//! IAM behaves like the real service where the engine's correctness depends
//! on it: a second role of the same name is refused (names are
//! case-insensitive), a role with inline policies cannot be deleted, and a
//! role just created can stay invisible to reads for a while.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kfp_tenant_core::policy::PolicyDocument;
use kfp_tenant_core::ports::{
    ErrorKind, IamApi, InlinePolicy, OidcProviderDetails, PodIdentityAssociation, ProviderError, ProviderResult, Role, RoleDetail,
    RoleListing,
};
use tokio::time::Instant;

use crate::faults::{Calls, Faults, Meter};
use crate::{ACCOUNT_ID, ISSUER, lock};

mod cluster;
mod directory;
mod pods;
pub use cluster::{FakeCluster, THUMBPRINT, fake_ca, fake_endpoint};
pub use directory::FakeDirectory;

/// IAM roles and inline policies in memory.
#[derive(Clone, Debug)]
pub struct FakeIam {
    meter: Meter,
    state: Arc<Mutex<IamState>>,
}

#[derive(Debug, Default)]
struct IamState {
    /// By lower-cased name: IAM role names are case-insensitive.
    roles: BTreeMap<String, (Role, Instant)>,
    policies: BTreeMap<(String, String), PolicyDocument>,
    /// Managed policies attached, by (role, policy ARN).
    attachments: BTreeSet<(String, String)>,
    /// OIDC providers changed by a test (`None`: deleted); the cluster's is there otherwise.
    oidc_providers: BTreeMap<String, Option<OidcProviderDetails>>,
    /// EKS Pod Identity associations by id, with their cluster. They live
    /// here because EKS checks their roles in IAM, eventual consistency
    /// included.
    associations: BTreeMap<String, (String, PodIdentityAssociation)>,
    next_association: u64,
}

/// Calls IAM needs to list `items` at 1,000 a page (at least one).
fn pages(items: usize) -> usize {
    items.div_ceil(1000).max(1)
}

impl IamState {
    fn visible(&self, name: &str, invisible_for: Duration) -> Option<&Role> {
        self.roles.get(&name.to_ascii_lowercase()).filter(|(_, created)| created.elapsed() >= invisible_for).map(|(r, _)| r)
    }

    fn exists(&self, name: &str) -> bool {
        self.roles.contains_key(&name.to_ascii_lowercase())
    }
}

impl FakeIam {
    pub fn new(calls: Calls) -> Self {
        FakeIam { meter: Meter::new(calls, Faults::default()), state: Arc::default() }
    }

    pub fn set_faults(&self, faults: Faults) {
        self.meter.set_faults(faults);
    }

    /// Puts a role in place behind the tool's back (no call counted).
    pub fn insert_role(&self, mut role: Role) {
        role.arn = format!("arn:aws:iam::{ACCOUNT_ID}:role{}{}", role.path, role.name);
        let past = Instant::now().checked_sub(Duration::from_secs(3600)).unwrap_or_else(Instant::now);
        lock(&self.state).roles.insert(role.name.to_ascii_lowercase(), (role, past));
    }

    /// Changes a role behind the tool's back.
    pub fn edit_role(&self, name: &str, edit: impl FnOnce(&mut Role)) {
        if let Some((role, _)) = lock(&self.state).roles.get_mut(&name.to_ascii_lowercase()) {
            edit(role);
        }
    }

    /// Changes (or with `None` deletes) an IAM OIDC provider behind the tool's back.
    pub fn set_oidc_provider(&self, arn: &str, details: Option<OidcProviderDetails>) {
        lock(&self.state).oidc_providers.insert(arn.to_owned(), details);
    }

    /// Puts an inline policy behind the tool's back.
    pub fn insert_policy(&self, role: &str, policy: &str, document: PolicyDocument) {
        lock(&self.state).policies.insert((role.to_owned(), policy.to_owned()), document);
    }

    /// Attaches a managed policy behind the tool's back.
    pub fn insert_attachment(&self, role: &str, policy_arn: &str) {
        lock(&self.state).attachments.insert((role.to_owned(), policy_arn.to_owned()));
    }

    /// Every (role, policy ARN) attachment.
    pub fn attachments(&self) -> BTreeSet<(String, String)> {
        lock(&self.state).attachments.clone()
    }

    /// Deletes an inline policy behind the tool's back.
    pub fn delete_policy(&self, role: &str, policy: &str) {
        lock(&self.state).policies.remove(&(role.to_owned(), policy.to_owned()));
    }

    /// Every role, by name (for comparing whole states).
    pub fn roles(&self) -> BTreeMap<String, Role> {
        lock(&self.state).roles.values().map(|(r, _)| (r.name.clone(), r.clone())).collect()
    }

    /// Every inline policy, by (role, policy).
    pub fn policies(&self) -> BTreeMap<(String, String), PolicyDocument> {
        lock(&self.state).policies.clone()
    }

    pub fn role(&self, name: &str) -> Option<Role> {
        lock(&self.state).roles.get(&name.to_ascii_lowercase()).map(|(r, _)| r.clone())
    }

    pub fn role_names(&self) -> Vec<String> {
        lock(&self.state).roles.values().map(|(r, _)| r.name.clone()).collect()
    }

    pub fn policy(&self, role: &str, policy: &str) -> Option<PolicyDocument> {
        lock(&self.state).policies.get(&(role.to_owned(), policy.to_owned())).cloned()
    }

    /// Every (role, policy) pair that exists.
    pub fn policy_names(&self) -> Vec<(String, String)> {
        lock(&self.state).policies.keys().cloned().collect()
    }

    /// Every Pod Identity association of `cluster`, described (role, tags).
    pub fn associations(&self, cluster: &str) -> Vec<PodIdentityAssociation> {
        lock(&self.state).associations.values().filter(|(c, _)| c == cluster).map(|(_, a)| a.clone()).collect()
    }

    /// Makes a Pod Identity association behind the tool's back (no call
    /// counted, no check of the role); returns its id.
    pub fn insert_association(&self, cluster: &str, association: PodIdentityAssociation) -> String {
        let mut state = lock(&self.state);
        state.next_association += 1;
        let id = format!("a-{:017x}", state.next_association);
        state.associations.insert(id.clone(), (cluster.to_owned(), PodIdentityAssociation { id: id.clone(), ..association }));
        id
    }

    /// Changes, or with `false` from `edit` deletes, every association behind the tool's back.
    pub fn edit_associations(&self, mut edit: impl FnMut(&mut PodIdentityAssociation) -> bool) {
        lock(&self.state).associations.retain(|_, (_, a)| edit(a));
    }

    fn no_role(op: &str, name: &str) -> ProviderError {
        ProviderError::new(ErrorKind::NotFound, op, format!("role {name}"), format!("The role with name {name} cannot be found."))
    }

    fn write_role(&self, op: &'static str, name: &str, edit: impl FnOnce(&mut Role)) -> ProviderResult<()> {
        let mut state = lock(&self.state);
        let (role, _) = state.roles.get_mut(&name.to_ascii_lowercase()).ok_or_else(|| Self::no_role(op, name))?;
        edit(role);
        Ok(())
    }
}

#[async_trait]
impl IamApi for FakeIam {
    async fn get_role(&self, name: &str) -> ProviderResult<Option<Role>> {
        self.meter.enter("GetRole", name).await?;
        Ok(lock(&self.state).visible(name, self.meter.invisible_for()).cloned())
    }

    async fn create_role(&self, role: &Role) -> ProviderResult<Role> {
        self.meter.enter("CreateRole", &role.name).await?;
        let mut state = lock(&self.state);
        if state.exists(&role.name) {
            return Err(ProviderError::new(
                ErrorKind::AlreadyExists,
                "CreateRole",
                format!("role {}", role.name),
                format!("Role with name {} already exists.", role.name),
            ));
        }
        let mut created = role.clone();
        created.arn = format!("arn:aws:iam::{ACCOUNT_ID}:role{}{}", role.path, role.name);
        state.roles.insert(role.name.to_ascii_lowercase(), (created.clone(), Instant::now()));
        if self.meter.loses_create_response() {
            return Err(ProviderError::new(
                ErrorKind::Transient,
                "CreateRole",
                format!("role {}", role.name),
                "connection reset (injected, after the write)",
            ));
        }
        Ok(created)
    }

    async fn update_trust_policy(&self, name: &str, document: &PolicyDocument) -> ProviderResult<()> {
        self.meter.enter("UpdateAssumeRolePolicy", name).await?;
        self.write_role("UpdateAssumeRolePolicy", name, |r| r.trust_policy = document.clone())
    }

    async fn update_role(&self, name: &str, description: Option<&str>, max_session_duration: u32) -> ProviderResult<()> {
        self.meter.enter("UpdateRole", name).await?;
        self.write_role("UpdateRole", name, |r| {
            r.description = description.map(str::to_owned);
            r.max_session_duration = max_session_duration;
        })
    }

    async fn set_permissions_boundary(&self, name: &str, arn: Option<&str>) -> ProviderResult<()> {
        let op = if arn.is_some() { "PutRolePermissionsBoundary" } else { "DeleteRolePermissionsBoundary" };
        self.meter.enter(op, name).await?;
        self.write_role(op, name, |r| r.permissions_boundary = arn.map(str::to_owned))
    }

    async fn tag_role(&self, name: &str, tags: &BTreeMap<String, String>) -> ProviderResult<()> {
        self.meter.enter("TagRole", name).await?;
        self.write_role("TagRole", name, |r| r.tags.extend(tags.clone()))
    }

    async fn untag_role(&self, name: &str, keys: &[String]) -> ProviderResult<()> {
        self.meter.enter("UntagRole", name).await?;
        self.write_role("UntagRole", name, |r| r.tags.retain(|k, _| !keys.contains(k)))
    }

    async fn delete_role(&self, name: &str) -> ProviderResult<()> {
        self.meter.enter("DeleteRole", name).await?;
        let mut state = lock(&self.state);
        if !state.exists(name) {
            return Err(Self::no_role("DeleteRole", name));
        }
        if state.policies.keys().any(|(role, _)| role.eq_ignore_ascii_case(name)) {
            return Err(ProviderError::new(
                ErrorKind::Conflict,
                "DeleteRole",
                format!("role {name}"),
                "Cannot delete entity, must delete policies first.",
            ));
        }
        if state.attachments.iter().any(|(role, _)| role.eq_ignore_ascii_case(name)) {
            return Err(ProviderError::new(
                ErrorKind::Conflict,
                "DeleteRole",
                format!("role {name}"),
                "Cannot delete entity, must detach all policies first.",
            ));
        }
        state.roles.remove(&name.to_ascii_lowercase());
        Ok(())
    }

    async fn get_role_policy(&self, role: &str, policy: &str) -> ProviderResult<Option<PolicyDocument>> {
        self.meter.enter("GetRolePolicy", role).await?;
        let state = lock(&self.state);
        if state.visible(role, self.meter.invisible_for()).is_none() {
            return Ok(None);
        }
        Ok(state.policies.get(&(role.to_owned(), policy.to_owned())).cloned())
    }

    async fn put_role_policy(&self, role: &str, policy: &str, document: &PolicyDocument) -> ProviderResult<()> {
        self.meter.enter("PutRolePolicy", role).await?;
        let mut state = lock(&self.state);
        if state.visible(role, self.meter.invisible_for()).is_none() {
            return Err(Self::no_role("PutRolePolicy", role));
        }
        state.policies.insert((role.to_owned(), policy.to_owned()), document.clone());
        Ok(())
    }

    async fn delete_role_policy(&self, role: &str, policy: &str) -> ProviderResult<()> {
        self.meter.enter("DeleteRolePolicy", role).await?;
        let mut state = lock(&self.state);
        match state.policies.remove(&(role.to_owned(), policy.to_owned())) {
            Some(_) => Ok(()),
            None => Err(ProviderError::new(
                ErrorKind::NotFound,
                "DeleteRolePolicy",
                format!("role {role}"),
                format!("The role policy with name {policy} cannot be found."),
            )),
        }
    }

    async fn list_role_policies(&self, role: &str) -> ProviderResult<Vec<String>> {
        self.meter.enter("ListRolePolicies", role).await?;
        let state = lock(&self.state);
        if state.visible(role, self.meter.invisible_for()).is_none() {
            return Ok(Vec::new());
        }
        // One range of the (role, policy) map, as the other reads: not a scan of every role's.
        Ok(state
            .policies
            .range((role.to_owned(), String::new())..)
            .take_while(|((r, _), _)| r == role)
            .map(|((_, p), _)| p.clone())
            .collect())
    }

    async fn list_attached_role_policies(&self, role: &str) -> ProviderResult<Vec<String>> {
        self.meter.enter("ListAttachedRolePolicies", role).await?;
        let state = lock(&self.state);
        if state.visible(role, self.meter.invisible_for()).is_none() {
            return Ok(Vec::new());
        }
        Ok(state.attachments.range((role.to_owned(), String::new())..).take_while(|(r, _)| r == role).map(|(_, p)| p.clone()).collect())
    }

    async fn attach_role_policy(&self, role: &str, policy_arn: &str) -> ProviderResult<()> {
        self.meter.enter("AttachRolePolicy", role).await?;
        let mut state = lock(&self.state);
        if state.visible(role, self.meter.invisible_for()).is_none() {
            return Err(Self::no_role("AttachRolePolicy", role));
        }
        state.attachments.insert((role.to_owned(), policy_arn.to_owned()));
        Ok(())
    }

    async fn detach_role_policy(&self, role: &str, policy_arn: &str) -> ProviderResult<()> {
        self.meter.enter("DetachRolePolicy", role).await?;
        match lock(&self.state).attachments.remove(&(role.to_owned(), policy_arn.to_owned())) {
            true => Ok(()),
            false => Err(ProviderError::new(
                ErrorKind::NotFound,
                "DetachRolePolicy",
                format!("role {role}"),
                format!("Policy {policy_arn} was not found."),
            )),
        }
    }

    async fn account_roles(&self) -> ProviderResult<Vec<RoleDetail>> {
        // One call per page of 1,000, as IAM pages it.
        let roles = lock(&self.state).roles.len();
        for _ in 0..pages(roles) {
            self.meter.enter("GetAccountAuthorizationDetails", "roles").await?;
        }
        let state = lock(&self.state);
        Ok(state
            .roles
            .values()
            .map(|(r, _)| RoleDetail {
                name: r.name.clone(),
                path: r.path.clone(),
                arn: r.arn.clone(),
                trust_policy: r.trust_policy.clone(),
                tags: r.tags.clone(),
                inline_policies: state
                    .policies
                    .range((r.name.clone(), String::new())..)
                    .take_while(|((role, _), _)| *role == r.name)
                    .map(|((role, name), document)| InlinePolicy {
                        role_name: role.clone(),
                        policy_name: name.clone(),
                        document: document.clone(),
                    })
                    .collect(),
                attached_policies: state
                    .attachments
                    .range((r.name.clone(), String::new())..)
                    .take_while(|(role, _)| *role == r.name)
                    .map(|(_, p)| p.clone())
                    .collect(),
                permissions_boundary: r.permissions_boundary.clone(),
            })
            .collect())
    }

    async fn list_roles(&self, path_prefix: &str) -> ProviderResult<Vec<RoleListing>> {
        let listed: Vec<RoleListing> = lock(&self.state)
            .roles
            .values()
            .map(|(r, _)| r)
            .filter(|r| r.path.starts_with(path_prefix))
            .map(|r| RoleListing {
                name: r.name.clone(),
                path: r.path.clone(),
                arn: r.arn.clone(),
                description: r.description.clone(),
                max_session_duration: r.max_session_duration,
            })
            .collect();
        for _ in 0..pages(listed.len()) {
            self.meter.enter("ListRoles", path_prefix).await?;
        }
        Ok(listed)
    }

    async fn role_count(&self) -> ProviderResult<u64> {
        self.meter.enter("GetAccountSummary", "the account").await?;
        Ok(lock(&self.state).roles.len() as u64)
    }

    async fn get_oidc_provider(&self, arn: &str) -> ProviderResult<Option<OidcProviderDetails>> {
        self.meter.enter("GetOpenIDConnectProvider", arn).await?;
        let state = lock(&self.state);
        if let Some(details) = state.oidc_providers.get(arn) {
            return Ok(details.clone());
        }
        let host = ISSUER.trim_start_matches("https://");
        Ok(arn.ends_with(&format!("oidc-provider/{host}")).then(|| OidcProviderDetails {
            url: host.to_owned(),
            client_ids: vec!["sts.amazonaws.com".to_owned()],
            thumbprints: vec![crate::aws::THUMBPRINT.to_owned()],
        }))
    }
}
