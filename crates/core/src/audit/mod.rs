//! Who can reach the pipelines bucket through this cluster: every IAM role
//! whose trust policy names its OIDC provider (IRSA) or lets EKS Pod Identity
//! hand it to this cluster's pods, whoever made the role, with what is wrong
//! about each.
//!
//! Findings, per role:
//! - `sub` matched with a wildcard, with `StringLike`, or not at all (then
//!   any service account of the cluster may assume the role);
//! - no `aud` condition;
//! - a subject in a namespace, or a service account, that does not exist: a
//!   dangling grant, which whoever creates it inherits;
//! - a subject in a tenant's namespace on a role that is not the one
//!   kfp-tenant manages for that tenant;
//! - a role kfp-tenant manages for this cluster whose tenant left the file;
//! - a Pod Identity statement not narrowed by the session tags to one
//!   cluster, namespace and service accounts (then any association of the
//!   account's clusters, or of any namespace, may hand out the role);
//! - a role kfp-tenant manages that carries permissions the file does not
//!   give (another inline policy, a managed policy not in `managedPolicies`);
//! - a tenant of kfp-tenant's role whose live `kfp-launcher` sends its runs
//!   outside the tenant's S3 grant (another store, another bucket, beside
//!   its prefix, or nowhere: KFP's MinIO default), the grant being the
//!   file's, which kfp-tenant keeps its role carrying exactly;
//! - a role that is not a tenant's whose inline policy allows S3 on the
//!   pipelines bucket, or that has one of AWS's managed policies that reach
//!   every bucket: the pods it admits reach the artifacts beyond any grant.
//!
//! The account is read in pages of 1,000 roles with their tags
//! (GetAccountAuthorizationDetails), the cluster in two listings
//! (namespaces, service accounts): a handful of calls for any account.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::kinds::live_root;
use crate::plan::ClusterContext;
use crate::policy::string_list;
use crate::ports::{AccountQuery, ConfigMap, IamApi, KubernetesApi, LAUNCHER_CONFIG, ProviderError, RoleDetail};
use crate::spec::Desired;
use crate::tags;

/// Version of `audit --json`.
pub const FORMAT_VERSION: &str = "1.0";

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Finding {
    /// `sub` under `StringLike` with `*` or `?`.
    SubWildcard { statement: usize, pattern: String },
    /// `sub` under `StringLike`, without a wildcard.
    SubStringLike { statement: usize },
    /// No `sub` condition: any service account of the cluster.
    NoSub { statement: usize },
    /// No `aud` condition.
    NoAud { statement: usize },
    /// The subject's namespace does not exist.
    DanglingNamespace { subject: String, namespace: String },
    /// The subject's service account does not exist (its namespace does).
    DanglingServiceAccount { subject: String },
    /// A tenant's namespace on a role that is not the tenant's.
    NotTheTenantRole { subject: String, tenant_role: String },
    /// kfp-tenant's role for a tenant that is no longer in the file.
    NotInFile { namespace: String },
    /// A Pod Identity statement without `aws:RequestTag/eks-cluster-arn`:
    /// an association in any cluster of the account may hand out the role.
    PodsAnyCluster { statement: usize },
    /// A Pod Identity statement without `aws:RequestTag/kubernetes-namespace`.
    PodsAnyNamespace { statement: usize },
    /// A Pod Identity statement without `aws:RequestTag/kubernetes-service-account`.
    PodsAnyServiceAccount { statement: usize },
    /// kfp-tenant's role carries permissions the file does not give.
    ExtraPermissions { inline: Vec<String>, attached: Vec<String> },
    /// A role that is not a tenant's reaches the pipelines bucket.
    ReachesBucket { policy: String },
    /// The tenant's live launcher root lies outside its role's S3 grant.
    PipelineRootOutsideGrant { namespace: String, problem: String },
}

impl Finding {
    pub fn message(&self) -> String {
        match self {
            Finding::SubWildcard { statement, pattern } => {
                format!(
                    "statement {statement} matches sub with the wildcard {pattern:?}: every service account that fits can assume the role"
                )
            }
            Finding::SubStringLike { statement } => {
                format!("statement {statement} matches sub with StringLike; pin the subjects with StringEquals")
            }
            Finding::NoSub { statement } => {
                format!("statement {statement} has no sub condition: any service account of the cluster can assume the role")
            }
            Finding::NoAud { statement } => format!("statement {statement} has no aud condition; pin it to sts.amazonaws.com"),
            Finding::DanglingNamespace { subject, namespace } => {
                format!("admits {subject}, but namespace {namespace} does not exist: whoever creates it gets the role")
            }
            Finding::DanglingServiceAccount { subject } => {
                format!("admits {subject}, which does not exist: whoever creates that service account gets the role")
            }
            Finding::NotTheTenantRole { subject, tenant_role } => {
                format!("admits {subject} of a tenant, but the role kfp-tenant manages for that tenant is {tenant_role}")
            }
            Finding::NotInFile { namespace } => {
                format!("kfp-tenant manages it for tenant {namespace}, which is not in the tenants file: run apply --prune to remove it")
            }
            Finding::PodsAnyCluster { statement } => format!(
                "statement {statement} lets EKS Pod Identity hand the role to pods of any cluster of the account; pin aws:RequestTag/eks-cluster-arn"
            ),
            Finding::PodsAnyNamespace { statement } => format!(
                "statement {statement} lets EKS Pod Identity hand the role to any namespace with an association; pin aws:RequestTag/kubernetes-namespace"
            ),
            Finding::ExtraPermissions { inline, attached } => {
                let mut what = Vec::new();
                if !inline.is_empty() {
                    what.push(format!("inline policies {}", inline.join(", ")));
                }
                if !attached.is_empty() {
                    what.push(format!("managed policies {}", attached.join(", ")));
                }
                format!("carries permissions the tenants file does not give ({}): kfp-tenant apply removes them", what.join("; "))
            }
            Finding::ReachesBucket { policy } => format!(
                "{policy} lets it reach the pipelines bucket: the pods it admits reach the tenants' artifacts beyond any tenant's grant"
            ),
            Finding::PipelineRootOutsideGrant { namespace, problem } => {
                format!(
                    "tenant {namespace}: {problem}; every run fails with AccessDenied or bypasses the grant (kfp-tenant apply writes the tenant's pipeline config)"
                )
            }
            Finding::PodsAnyServiceAccount { statement } => format!(
                "statement {statement} lets EKS Pod Identity hand the role to any service account with an association; pin aws:RequestTag/kubernetes-service-account"
            ),
        }
    }
}

/// One role that names the cluster's provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RoleAudit {
    pub role: String,
    pub arn: String,
    /// The tenant kfp-tenant manages the role for, on this cluster.
    pub managed_for: Option<String>,
    pub findings: Vec<Finding>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub format_version: &'static str,
    pub cluster: String,
    pub oidc_provider_arn: String,
    /// Roles read from the account.
    pub roles_read: usize,
    /// Those whose trust policy names the cluster's provider, by name.
    pub roles: Vec<RoleAudit>,
}

impl Report {
    pub fn findings(&self) -> usize {
        self.roles.iter().map(|r| r.findings.len()).sum()
    }
}

/// The report as text: a block per role that names the cluster's provider.
impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "Audited {} IAM roles: {} trust the OIDC provider of cluster {} ({}) or EKS Pod Identity for it",
            self.roles_read,
            self.roles.len(),
            self.cluster,
            self.oidc_provider_arn
        )?;
        for role in &self.roles {
            let whose = role.managed_for.as_ref().map_or_else(|| "not kfp-tenant's".to_owned(), |ns| format!("kfp-tenant's, tenant {ns}"));
            let verdict = if role.findings.is_empty() { "ok" } else { "findings" };
            writeln!(f, "\n{} ({whose}): {verdict}", role.role)?;
            for finding in &role.findings {
                writeln!(f, "  - {}", finding.message())?;
            }
        }
        match self.findings() {
            0 => writeln!(f, "\nNo findings."),
            n => writeln!(f, "\n{n} findings."),
        }
    }
}

/// What `audit` reads besides the cluster facts.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    /// Every role of the account.
    pub roles: Vec<RoleDetail>,
    pub namespaces: BTreeSet<String>,
    pub service_accounts: BTreeSet<(String, String)>,
    /// Every `kfp-launcher` ConfigMap of the cluster, by namespace.
    pub launchers: BTreeMap<String, ConfigMap>,
}

/// Reads what audit needs and audits it: the cluster as `observed` (a
/// refresh) found it, the account's roles, the cluster's namespaces and
/// service accounts.
pub async fn run(
    desired: &Desired,
    observed: &crate::refresh::Observed,
    iam: &dyn IamApi,
    kube: &dyn KubernetesApi,
) -> Result<Report, ProviderError> {
    let c = &desired.cluster;
    let (cluster, _) =
        crate::plan::context::context(&c.name, &c.region, &c.bucket, observed, crate::plan::context::ProviderNeed::NotNeeded)
            .expect("invariant: a context that needs no provider cannot be refused");
    let inventory = read(iam, kube).await?;
    Ok(audit(&cluster, desired, &inventory))
}

/// Reads the account's roles and the cluster's namespaces and service accounts.
pub async fn read(iam: &dyn IamApi, kube: &dyn KubernetesApi) -> Result<Inventory, ProviderError> {
    let (roles, namespaces, accounts, launchers) = futures_util::try_join!(
        iam.account_roles(),
        kube.list_namespaces(),
        kube.list_service_accounts(AccountQuery::All),
        kube.list_config_maps(LAUNCHER_CONFIG)
    )?;
    Ok(Inventory {
        roles,
        namespaces: namespaces.into_iter().map(|n| n.name).collect(),
        service_accounts: accounts.into_iter().map(|sa| (sa.namespace, sa.name)).collect(),
        launchers: launchers.into_iter().map(|l| (l.namespace.clone(), l)).collect(),
    })
}

/// The values of condition key `key` under operators whose name contains `operator`.
fn condition_values(statement: &Value, operator: &str, key: &str) -> Option<Vec<String>> {
    let conditions = statement.get("Condition")?.as_object()?;
    let mut found = None;
    for keys in conditions.iter().filter(|(op, _)| op.contains(operator) && !op.contains("Not")).map(|(_, keys)| keys) {
        for (k, v) in keys.as_object().into_iter().flatten() {
            if k.eq_ignore_ascii_case(key) {
                found.get_or_insert_with(Vec::new).extend(string_list(v));
            }
        }
    }
    found
}

/// `(namespace, name)` of `system:serviceaccount:<ns>:<name>`.
fn subject_parts(subject: &str) -> Option<(&str, &str)> {
    let rest = subject.strip_prefix("system:serviceaccount:")?;
    rest.split_once(':')
}

/// The statements that let EKS Pod Identity (`pods.eks.amazonaws.com`) hand
/// the role to this cluster's pods: those pinned to this cluster's ARN, and
/// those pinned to none.
fn pod_identity_statements<'s>(statements: &'s [Value], cluster_arn: &str) -> Vec<(usize, &'s Value)> {
    statements
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            s["Effect"] == "Allow" && string_list(&s["Principal"]["Service"]).iter().any(|p| p == crate::policy::POD_IDENTITY_PRINCIPAL)
        })
        .filter(|(_, s)| {
            let clusters = condition_values(s, "String", "aws:RequestTag/eks-cluster-arn");
            clusters.is_none_or(|arns| arns.iter().any(|a| a == cluster_arn || crate::trust::like(a, cluster_arn)))
        })
        .collect()
}

/// What is wide open in one Pod Identity statement, and whose namespaces it names.
fn pod_identity_findings(
    index: usize,
    statement: &Value,
    role: &RoleDetail,
    tenant_roles: &BTreeMap<&str, &str>,
    inventory: &Inventory,
    findings: &mut BTreeSet<Finding>,
) {
    let tag = |name: &str| condition_values(statement, "String", &format!("aws:RequestTag/{name}"));
    if tag("eks-cluster-arn").is_none() {
        findings.insert(Finding::PodsAnyCluster { statement: index });
    }
    let namespaces = tag("kubernetes-namespace");
    if namespaces.is_none() {
        findings.insert(Finding::PodsAnyNamespace { statement: index });
    }
    if tag("kubernetes-service-account").is_none() {
        findings.insert(Finding::PodsAnyServiceAccount { statement: index });
    }
    for ns in namespaces.into_iter().flatten() {
        let subject = format!("namespace {ns} (EKS Pod Identity)");
        if !inventory.namespaces.contains(&ns) {
            findings.insert(Finding::DanglingNamespace { subject: subject.clone(), namespace: ns.clone() });
        }
        if let Some(tenant_role) = tenant_roles.get(ns.as_str()).filter(|r| !r.eq_ignore_ascii_case(&role.name)) {
            findings.insert(Finding::NotTheTenantRole { subject, tenant_role: (*tenant_role).to_owned() });
        }
    }
}

/// AWS managed policies that allow S3 on every bucket.
const BUCKET_WIDE_MANAGED: &[&str] = &["AdministratorAccess", "PowerUserAccess", "AmazonS3FullAccess", "AmazonS3ReadOnlyAccess"];

/// What lets `role` reach `bucket`: each inline policy with an allowed S3
/// action (or `*`) on a resource that matches the bucket or its objects
/// (`NotResource` counts), and each of AWS's bucket-wide managed policies.
/// Customer managed policies are not read (GetAccountAuthorizationDetails
/// lists them by ARN only).
fn bucket_grants(role: &RoleDetail, partition: &str, bucket: &str) -> Vec<String> {
    let targets = [format!("arn:{partition}:s3:::{bucket}"), format!("arn:{partition}:s3:::{bucket}/any-key")];
    let mut found = Vec::new();
    for policy in &role.inline_policies {
        let reaches = policy.document.statements().iter().any(|s| {
            s["Effect"] == "Allow"
                && string_list(&s["Action"]).iter().any(|a| a == "*" || a.to_ascii_lowercase().starts_with("s3:"))
                && (s.get("NotResource").is_some()
                    || string_list(&s["Resource"]).iter().any(|r| targets.iter().any(|t| r == t || crate::trust::like(r, t))))
        });
        if reaches {
            found.push(format!("inline policy {}", policy.policy_name));
        }
    }
    for arn in &role.attached_policies {
        if BUCKET_WIDE_MANAGED.iter().any(|name| arn.ends_with(&format!(":iam::aws:policy/{name}"))) {
            found.push(format!("managed policy {arn}"));
        }
    }
    found
}

/// The audit of the account against the file and the cluster.
pub fn audit(cluster: &ClusterContext, desired: &Desired, inventory: &Inventory) -> Report {
    let host = cluster.oidc_issuer.trim_start_matches("https://");
    let provider = &cluster.oidc_provider_arn;
    let tenant_roles: BTreeMap<&str, &str> = desired.tenants.iter().map(|t| (t.namespace.as_str(), t.role_name.as_str())).collect();
    let in_file = |ns: &str| tenant_roles.contains_key(ns) || desired.untargeted.contains(ns);
    let mut roles = Vec::new();
    for role in &inventory.roles {
        let statements = role.trust_policy.statements();
        let naming: Vec<(usize, &Value)> = statements
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s["Effect"] == "Allow"
                    && string_list(&s["Principal"]["Federated"])
                        .iter()
                        .any(|p| p == provider || p.ends_with(&format!("oidc-provider/{host}")))
            })
            .collect();
        let managed_for = tags::is_managed_role(&role.tags, &cluster.name).then(|| role.tags.get(tags::NAMESPACE).cloned()).flatten();
        let pods = pod_identity_statements(&statements, &cluster.arn);
        if naming.is_empty() && pods.is_empty() && managed_for.is_none() {
            continue;
        }
        let mut findings = BTreeSet::new();
        for (index, statement) in pods {
            pod_identity_findings(index, statement, role, &tenant_roles, inventory, &mut findings);
        }
        for (index, statement) in naming {
            let exact = condition_values(statement, "StringEquals", &format!("{host}:sub"));
            let like = condition_values(statement, "StringLike", &format!("{host}:sub"));
            match (&exact, &like) {
                (None, None) => {
                    findings.insert(Finding::NoSub { statement: index });
                }
                (_, Some(patterns)) => {
                    for pattern in patterns {
                        if pattern.contains(['*', '?']) {
                            findings.insert(Finding::SubWildcard { statement: index, pattern: pattern.clone() });
                            // The tenants' service accounts the pattern lets in.
                            for tenant in desired.tenants.iter().filter(|t| !t.role_name.eq_ignore_ascii_case(&role.name)) {
                                for sa in &tenant.service_accounts {
                                    let subject = format!("system:serviceaccount:{}:{sa}", tenant.namespace);
                                    if crate::trust::like(pattern, &subject) {
                                        findings.insert(Finding::NotTheTenantRole { subject, tenant_role: tenant.role_name.clone() });
                                    }
                                }
                            }
                        } else {
                            findings.insert(Finding::SubStringLike { statement: index });
                        }
                    }
                }
                _ => {}
            }
            if condition_values(statement, "String", &format!("{host}:aud")).is_none() {
                findings.insert(Finding::NoAud { statement: index });
            }
            let subjects = exact.into_iter().flatten().chain(like.into_iter().flatten().filter(|p| !p.contains(['*', '?'])));
            for subject in subjects {
                let Some((ns, sa)) = subject_parts(&subject) else { continue };
                if !inventory.namespaces.contains(ns) {
                    findings.insert(Finding::DanglingNamespace { subject: subject.clone(), namespace: ns.to_owned() });
                } else if !inventory.service_accounts.contains(&(ns.to_owned(), sa.to_owned())) {
                    findings.insert(Finding::DanglingServiceAccount { subject: subject.clone() });
                }
                if let Some(tenant_role) = tenant_roles.get(ns).filter(|r| !r.eq_ignore_ascii_case(&role.name)) {
                    findings.insert(Finding::NotTheTenantRole { subject: subject.clone(), tenant_role: (*tenant_role).to_owned() });
                }
            }
        }
        // A KubeflowTenant's tenant is the controller's: the file neither
        // lists it nor knows the permissions its spec gives.
        let controllers = managed_for.as_ref().is_some_and(|ns| !in_file(ns)) && tags::kubeflow_tenant(&role.tags).is_some();
        if let Some(ns) = &managed_for
            && !in_file(ns)
            && !controllers
        {
            findings.insert(Finding::NotInFile { namespace: ns.clone() });
        }
        match &managed_for {
            Some(_) if controllers => {}
            Some(ns) => {
                let own = crate::spec::policy_name(ns);
                let listed = desired.tenants.iter().find(|t| &t.namespace == ns).map(|t| t.managed_policies.as_slice()).unwrap_or_default();
                let inline: Vec<String> = role.inline_policies.iter().map(|p| p.policy_name.clone()).filter(|name| *name != own).collect();
                let attached: Vec<String> = role.attached_policies.iter().filter(|arn| !listed.contains(arn)).cloned().collect();
                if !inline.is_empty() || !attached.is_empty() {
                    findings.insert(Finding::ExtraPermissions { inline, attached });
                }
                // Opted out without a launcher config: nothing says where its runs go.
                let tenant = desired.tenants.iter().find(|t| &t.namespace == ns);
                let launcher = inventory.launchers.get(ns);
                if let Some(tenant) = tenant.filter(|t| t.pipeline_root.is_some() || launcher.is_some())
                    && let Err(problem) = live_root(launcher, &cluster.bucket, &tenant.s3_access)
                {
                    findings.insert(Finding::PipelineRootOutsideGrant { namespace: ns.clone(), problem });
                }
            }
            None => {
                for policy in bucket_grants(role, &cluster.partition, &cluster.bucket) {
                    findings.insert(Finding::ReachesBucket { policy });
                }
            }
        }
        roles.push(RoleAudit { role: role.name.clone(), arn: role.arn.clone(), managed_for, findings: findings.into_iter().collect() });
    }
    roles.sort_by(|a, b| a.role.cmp(&b.role));
    Report {
        format_version: FORMAT_VERSION,
        cluster: cluster.name.clone(),
        oidc_provider_arn: provider.clone(),
        roles_read: inventory.roles.len(),
        roles,
    }
}

#[cfg(test)]
mod tests;
