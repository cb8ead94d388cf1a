//! What the operator asks for: the tenants file as written ([`TenantsFile`]),
//! and the same after validation with every default filled in ([`Desired`]).
//!
//! Only [`crate::validate::validate`] turns the first into the second, so a
//! `Desired` is always valid: names fit IAM's limits, no two tenants collide.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::policy::S3Access;

/// The JSON Schema's patterns (`kfp-tenant schema`): what editors check as
/// you type. Each says as much of [`crate::validate`]'s rule as a regular
/// expression can; validation stays the authority (lengths of derived names,
/// sizes of documents, duplicates and everything that needs two fields).
/// They keep to the subset that ECMA-262 without flags, Python's `re` and
/// Rust's regex read alike: no `\p{..}` classes, no `\w`, no look-around
/// (a test runs them in two engines).
mod pattern {
    pub const CLUSTER: &str = r"^[A-Za-z0-9][A-Za-z0-9_-]*$";
    pub const REGION: &str = r"^[a-z0-9]+-[a-z0-9]+(-[a-z0-9]+)*-[0-9]+$";
    pub const BUCKET: &str = r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$";
    pub const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
    pub const DNS_SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
    pub const EMAIL: &str = r"^[^@\s]+@[^@\s.]([^@\s]*[^@\s.])?$";
    pub const EMAIL_DOMAIN_DOT: &str = r"@.*\.";
    pub const IAM_NAME: &str = r"^[A-Za-z0-9+=,.@_-]+$";
    pub const ROLE_PATH: &str = r"^/([!-.0-~]+/)*$";
    /// Printable ASCII but `*` and `?` (IAM's wildcards), not starting with `/`.
    pub const KEY_PREFIX: &str = r"^[!-)+-.0->@-~][!-)+->@-~]*$";
    /// What a key prefix must not contain: `.`/`..` segments, an empty
    /// segment, an IAM policy variable, a control character (also for
    /// Python, whose `$` matches before a final newline).
    pub const KEY_PREFIX_SECOND_MEANING: &str = r"(^|/)\.\.?(/|$)|//|\$\{|[\x00-\x1f\x7f]";
    pub const PREFIX_TEMPLATE: &str = r"^(\{namespace\}|[!-)+-.0->@-z|~][!-)+->@-z|~]*\{namespace\})([!-)+->@-z|~]|\{namespace\})*$";
    /// Kubernetes' quantity grammar, without a sign (quotas are never negative).
    pub const QUANTITY: &str = r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[mkMGTPE]|[eE][-+]?[0-9]+)?$";
    /// A resource a ResourceQuota limits: a standard name, a hugepage size, or a qualified name.
    pub const QUOTA_RESOURCE: &str = r"^((requests\.|limits\.)?(cpu|memory|ephemeral-storage)|pods|services|replicationcontrollers|resourcequotas|secrets|configmaps|persistentvolumeclaims|services\.nodeports|services\.loadbalancers|requests\.storage|(requests\.|limits\.)?hugepages-[0-9.]+[KMGTPE]?i?|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$";
    /// IAM's tag characters say Unicode letters and digits, which the
    /// portable subset cannot: the ASCII characters IAM refuses are left out.
    pub const TAG_CHARS: &str = r##"^[^\x00-\x1f\x7f!"#$%&'()*,;<>?\[\\\]^`{|}~]*$"##;
    pub const POLICY_ARN: &str = r"^arn:[^:]*:iam:[^:]*:[^:]*:policy/";
    /// `pipelineRoot`: an `s3://` URI with a bucket name and, optionally, a key
    /// of printable ASCII without wildcards (the rest is validate's).
    pub const PIPELINE_ROOT: &str = r"^s3://[a-z0-9][a-z0-9.-]*[a-z0-9](/[!-)+->@-~]*)?$";
    /// A root's key with a second meaning: `.`/`..` or empty segments after
    /// the bucket, a policy variable.
    pub const PIPELINE_ROOT_SECOND_MEANING: &str = r"^s3://[^/]*/(.*/)?\.\.?(/|$)|^s3://.+//|\$\{";
    pub const USER_POOL_ID: &str = r"^[A-Za-z0-9_-]+_[0-9a-zA-Z]+$";
}

/// `tags`: IAM's tag keys (not `aws:`, not kfp-tenant's own markers) and values.
fn tag_map(schema: &mut schemars::Schema) {
    let chars = pattern::TAG_CHARS;
    schema.insert(
        "propertyNames".into(),
        serde_json::json!({
            "minLength": 1, "maxLength": 128, "pattern": chars,
            "not": {"anyOf": [{"pattern": "^[aA][wW][sS]:"}, {"pattern": "^kfp-tenant/"}]}
        }),
    );
    schema.insert("additionalProperties".into(), serde_json::json!({"type": "string", "maxLength": 256, "pattern": chars}));
    schema.insert("maxProperties".into(), serde_json::json!(crate::limits::MAX_TAGS - crate::tags::MARKER_COUNT));
}

/// A namespace that can be a tenant's: a DNS-1123 label, not the cluster's own.
fn tenant_namespace(schema: &mut schemars::Schema) {
    schema.insert("not".into(), serde_json::json!({"enum": crate::limits::RESERVED_NAMESPACES}));
}

/// `serviceAccounts`: at least one, each a DNS-1123 subdomain (no wildcards).
fn service_account_list(schema: &mut schemars::Schema) {
    schema.insert("minItems".into(), serde_json::json!(1));
    schema
        .insert("items".into(), serde_json::json!({"type": "string", "minLength": 1, "maxLength": 253, "pattern": pattern::DNS_SUBDOMAIN}));
}

/// `resourceQuota.hard`: resource names and quantities as Kubernetes reads them.
fn quantities(schema: &mut schemars::Schema) {
    schema.insert("propertyNames".into(), serde_json::json!({"pattern": pattern::QUOTA_RESOURCE}));
    schema.insert("additionalProperties".into(), serde_json::json!({"type": "string", "pattern": pattern::QUANTITY}));
}

/// `s3Prefix`: printable ASCII without wildcards, and no segment or
/// variable with a second meaning.
fn key_prefix(schema: &mut schemars::Schema) {
    schema.insert("pattern".into(), serde_json::json!(pattern::KEY_PREFIX));
    schema.insert("not".into(), serde_json::json!({"pattern": pattern::KEY_PREFIX_SECOND_MEANING}));
}

/// `pipelineRoot`: an `s3://` URI whose key has no second meaning.
fn pipeline_root(schema: &mut schemars::Schema) {
    schema.insert("pattern".into(), serde_json::json!(pattern::PIPELINE_ROOT));
    schema.insert("not".into(), serde_json::json!({"pattern": pattern::PIPELINE_ROOT_SECOND_MEANING}));
}

/// `defaults.s3Prefix`: a prefix template, with the same exclusions.
fn prefix_template(schema: &mut schemars::Schema) {
    schema.insert("pattern".into(), serde_json::json!(pattern::PREFIX_TEMPLATE));
    schema.insert("not".into(), serde_json::json!({"pattern": pattern::KEY_PREFIX_SECOND_MEANING}));
}

/// `managedPolicies`: IAM policy ARNs, at most IAM's 20 per role.
fn policy_arn_list(schema: &mut schemars::Schema) {
    schema.insert("maxItems".into(), serde_json::json!(crate::limits::MAX_MANAGED_POLICIES));
    schema.insert("items".into(), serde_json::json!({"type": "string", "pattern": pattern::POLICY_ARN}));
}

/// An e-mail as validation takes one: something, `@`, a dotted domain.
fn email(schema: &mut schemars::Schema) {
    schema.insert("allOf".into(), serde_json::json!([{"pattern": pattern::EMAIL}, {"pattern": pattern::EMAIL_DOMAIN_DOT}]));
}

/// The tenants file (YAML or JSON), field for field. Unknown fields are errors.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "kfp-tenant tenants file")]
pub struct TenantsFile {
    /// EKS cluster name (the page's CLUSTER_NAME).
    #[schemars(length(min = 1, max = 100), pattern(pattern::CLUSTER), example = &"kubeflow-prod")]
    pub cluster: String,
    /// AWS region of the cluster (CLUSTER_REGION).
    #[schemars(pattern(pattern::REGION), example = &"us-west-2")]
    pub region: String,
    /// The S3 bucket Kubeflow Pipelines uses (S3_BUCKET).
    #[schemars(length(min = 3, max = 63), pattern(pattern::BUCKET), example = &"my-kfp-artifacts")]
    pub bucket: String,
    /// Applied to every tenant that does not say otherwise.
    #[serde(default)]
    #[schemars(example = serde_json::json!({"s3Access": "scoped", "tags": {"team": "ml"}}))]
    pub defaults: TenantDefaults,
    /// Largest trust policy IAM accepts in this account, in characters
    /// (2,048 unless the quota was raised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2048, max = 4096), example = 4096)]
    pub trust_policy_quota: Option<usize>,
    /// Where the owners sign in: with `cognito`, each tenant's owner is a
    /// user of that pool, made if missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = serde_json::json!({"cognito": {"userPoolId": "us-west-2_aBcDeFgHi"}}))]
    pub identity_provider: Option<IdentityProvider>,
    /// The tenants: one Kubeflow Profile each. An empty list is valid (with
    /// `--prune` it removes every tenant of the cluster).
    #[serde(default)]
    #[schemars(example = serde_json::json!([{"namespace": "team-a", "owner": "alice@example.com"}]))]
    pub tenants: Vec<TenantInput>,
}

/// The auth provider the Profiles' owners sign in with (the page's step 6).
/// Only Cognito: Dex keeps its users in a ConfigMap of static passwords,
/// which is not kfp-tenant's to write.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentityProvider {
    /// The Cognito user pool the owners sign in with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = serde_json::json!({"userPoolId": "us-west-2_aBcDeFgHi", "invite": true}))]
    pub cognito: Option<CognitoInput>,
}

/// An Amazon Cognito user pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CognitoInput {
    /// The pool's id, `<region>_<id>`, e.g. `us-west-2_aBcDeFgHi`.
    #[schemars(length(min = 1, max = 55), pattern(pattern::USER_POOL_ID), example = &"us-west-2_aBcDeFgHi")]
    pub user_pool_id: String,
    /// The pool's region; default the cluster's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(pattern::REGION), example = &"us-west-2")]
    pub region: Option<String>,
    /// Cognito e-mails its invitation to a user kfp-tenant creates (default
    /// true); `false` creates the user silently (`MessageAction=SUPPRESS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = true)]
    pub invite: Option<bool>,
    /// Destroy and prune delete the users kfp-tenant created and that own
    /// no tenant left in the file (default false: people outlive tenants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = false)]
    pub delete_users: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantDefaults {
    /// How the tenants' pods get their role: `irsa` (the default) or `podIdentity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = Road::Irsa)]
    pub identity: Option<Road>,
    /// What the tenants' roles may do on the bucket (default `scoped`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = S3AccessMode::Scoped)]
    pub s3_access: Option<S3AccessMode>,
    /// The key prefix of tenants with `s3Access: prefix` that set none, as a
    /// template: `{namespace}` becomes the tenant's namespace, e.g.
    /// `private-artifacts/{namespace}/` (upstream multi-user KFP's layout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024), transform = prefix_template, example = &"private-artifacts/{namespace}/")]
    pub s3_prefix: Option<String>,
    /// The service accounts every tenant's role is granted to (default `[default-editor]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = service_account_list, example = ["default-editor", "pipeline-runner"])]
    pub service_accounts: Option<Vec<String>>,
    /// The IAM path of the tenants' roles (default `/`); changing it replaces the roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512), pattern(pattern::ROLE_PATH), example = &"/kubeflow/")]
    pub role_path: Option<String>,
    /// Tags on every tenant's role, beside kfp-tenant's three ownership tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(transform = tag_map, example = BTreeMap::from([("team", "ml")]))]
    pub tags: BTreeMap<String, String>,
    /// Managed policies attached to every tenant's role (overridden, not
    /// merged, by a tenant's own list). Nothing else is attached: a policy
    /// attached by hand is removed by the next apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = policy_arn_list, example = ["arn:aws:iam::aws:policy/AmazonSageMakerReadOnly"])]
    pub managed_policies: Option<Vec<String>>,
    /// A managed policy ARN set as every tenant role's permissions boundary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(pattern::POLICY_ARN), example = &"arn:aws:iam::123456789012:policy/kubeflow-boundary")]
    pub permissions_boundary: Option<String>,
    /// The roles' maximum session, in seconds (IAM: 3600-43200; default 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 3600, max = 43200), example = 3600)]
    pub max_session_duration: Option<u32>,
    /// kfp-tenant writes each tenant's pipeline config (default true): the
    /// root and S3 provider keys of the `kfp-launcher` ConfigMap and the
    /// default repository of Argo's `artifact-repositories`, so that the
    /// tenant's pipelines write their artifacts inside its grant. `false`
    /// leaves both ConfigMaps to you (and gives back keys kfp-tenant wrote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = true)]
    pub pipeline_config: Option<bool>,
}

/// How a tenant's pods get its role: the road from a service account to AWS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Road {
    /// IAM roles for service accounts (the page's way): the role trusts the
    /// cluster's IAM OIDC provider, and the service accounts carry the
    /// `eks.amazonaws.com/role-arn` annotation (the Profile's
    /// `AwsIamForServiceAccount` plugin writes it on `default-editor`).
    #[default]
    Irsa,
    /// EKS Pod Identity: the role trusts `pods.eks.amazonaws.com`, and an
    /// EKS association binds each service account to it; no OIDC provider,
    /// no annotation. Needs the eks-pod-identity-agent add-on.
    PodIdentity,
}

impl Road {
    /// The other road: where a tenant comes from when it moves.
    pub fn other(self) -> Road {
        match self {
            Road::Irsa => Road::PodIdentity,
            Road::PodIdentity => Road::Irsa,
        }
    }

    /// As in the tenants file.
    pub fn as_str(self) -> &'static str {
        match self {
            Road::Irsa => "irsa",
            Road::PodIdentity => "podIdentity",
        }
    }
}

/// What the tenant's role may do on the bucket, as the file says it: the
/// prefix sits in a separate field. Validation turns it into
/// [`crate::policy::S3Access`], where a prefix mode without a prefix cannot
/// be written down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum S3AccessMode {
    /// Object read/write, ListBucket and GetBucketLocation (the page's recommendation).
    Scoped,
    /// `s3:*` on the bucket and its objects (the page's example).
    Full,
    /// Objects under `s3Prefix` only; needs a key layout with the namespace in it.
    Prefix,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantInput {
    /// Profile name and namespace (PROFILE_NAMESPACE): a DNS-1123 label, not one of the cluster's own namespaces.
    #[schemars(length(min = 1, max = 63), pattern(pattern::DNS_LABEL), transform = tenant_namespace, example = &"team-a")]
    pub namespace: String,
    /// Owner's e-mail as the auth provider knows it (PROFILE_USER).
    #[schemars(transform = email, example = &"alice@example.com")]
    pub owner: String,
    /// The IAM role's name (default `<namespace>-<cluster>-role`, the page's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), pattern(pattern::IAM_NAME), example = &"team-a-pipelines")]
    pub role_name: Option<String>,
    /// Overrides `defaults.rolePath`; changing it replaces the role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512), pattern(pattern::ROLE_PATH), example = &"/kubeflow/")]
    pub role_path: Option<String>,
    /// Overrides `defaults.identity`. Changing it moves the tenant from one
    /// road to the other as a plan, without a moment where neither works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = Road::PodIdentity)]
    pub identity: Option<Road>,
    /// The service accounts granted the role, exactly (overrides `defaults.serviceAccounts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = service_account_list, example = ["default-editor", "pipeline-runner"])]
    pub service_accounts: Option<Vec<String>>,
    /// What the role may do on the bucket (overrides `defaults.s3Access`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = S3AccessMode::Prefix)]
    pub s3_access: Option<S3AccessMode>,
    /// With `s3Access: prefix`: the key prefix the role may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), transform = key_prefix, example = &"private-artifacts/team-a/")]
    pub s3_prefix: Option<String>,
    /// The Profile's `spec.resourceQuotaSpec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = serde_json::json!({"hard": {"cpu": "8", "memory": "16Gi"}}))]
    pub resource_quota: Option<ResourceQuota>,
    /// Merged over `defaults.tags`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(transform = tag_map, example = BTreeMap::from([("cost-center", "ml-1234")]))]
    pub tags: BTreeMap<String, String>,
    /// Managed policy ARNs to attach to the role, exactly (overrides
    /// `defaults.managedPolicies`; `[]` attaches none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = policy_arn_list, example = ["arn:aws:iam::123456789012:policy/team-a-extra"])]
    pub managed_policies: Option<Vec<String>>,
    /// Overrides `defaults.permissionsBoundary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(pattern::POLICY_ARN), example = &"arn:aws:iam::123456789012:policy/kubeflow-boundary")]
    pub permissions_boundary: Option<String>,
    /// Overrides `defaults.maxSessionDuration` (seconds, 3600-43200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 3600, max = 43200), example = 7200)]
    pub max_session_duration: Option<u32>,
    /// Overrides `defaults.pipelineConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = false)]
    pub pipeline_config: Option<bool>,
    /// Where the tenant's pipelines write artifacts (KFP's
    /// `defaultPipelineRoot`): an `s3://` URI in the file's bucket, inside the
    /// tenant's grant. Default: `s3://<bucket>/<s3Prefix>v2/artifacts` for
    /// `prefix` tenants, else KFP's multi-user layout
    /// `s3://<bucket>/private-artifacts/<namespace>/v2/artifacts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 8, max = 1100), transform = pipeline_root, example = &"s3://kubeflow-pipelines-artifacts/private-artifacts/team-a/v2/artifacts")]
    pub pipeline_root: Option<String>,
}

/// `spec.resourceQuotaSpec` of the Profile (a core/v1 ResourceQuotaSpec; only
/// `hard` is modelled).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceQuota {
    /// Resource names and quantities, e.g. `cpu: "8"`, `memory: 16Gi`.
    #[serde(default)]
    #[schemars(transform = quantities, example = BTreeMap::from([("cpu", "8"), ("memory", "16Gi")]))]
    pub hard: BTreeMap<String, String>,
}

/// A validated request: one cluster and its tenants, defaults resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub cluster: ClusterSpec,
    /// Sorted by namespace.
    pub tenants: Vec<Tenant>,
    /// Tenants of the file left out by `--target`: not planned, and not
    /// taken for tenants the file dropped.
    pub untargeted: BTreeSet<String>,
    /// The Cognito pool whose users own the Profiles, when the file names one.
    pub cognito: Option<Cognito>,
    /// The owners of the tenants left out by `--target`: a user who owns
    /// one of them is never deleted.
    pub untargeted_owners: BTreeSet<String>,
}

/// A validated [`CognitoInput`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cognito {
    pub user_pool_id: String,
    pub region: String,
    pub invite: bool,
    pub delete_users: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSpec {
    pub name: String,
    pub region: String,
    pub bucket: String,
    pub trust_policy_quota: usize,
}

/// One tenant with every name fixed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    pub namespace: String,
    pub owner: String,
    pub role_name: String,
    pub role_path: String,
    pub policy_name: String,
    /// How its pods reach AWS (the file's `identity`).
    pub road: Road,
    /// Sorted, unique, always non-empty.
    pub service_accounts: Vec<String>,
    pub s3_access: S3Access,
    pub resource_quota: Option<ResourceQuota>,
    /// The operator's tags, without kfp-tenant's ownership markers.
    pub tags: BTreeMap<String, String>,
    /// The managed policies attached to the role, sorted and unique: all of them.
    pub managed_policies: Vec<String>,
    pub permissions_boundary: Option<String>,
    pub max_session_duration: Option<u32>,
    /// The key (no trailing '/') under the file's bucket where its pipelines
    /// write, which kfp-tenant writes into the tenant's `kfp-launcher` and
    /// `artifact-repositories`; `None` when the tenant opted out
    /// (`pipelineConfig: false`).
    pub pipeline_root: Option<String>,
    /// Where the tenant is declared; its role records it.
    pub source: Source,
}

/// Where a tenant is declared, and so who manages it: a tenants file (the
/// CLI's, or the controller's settings), or a KubeflowTenant that the
/// controller reconciles. A KubeflowTenant's role carries the tag
/// [`crate::tags::KUBEFLOW_TENANT`]; a file's carries none. A run never
/// changes or deletes a tenant declared the other way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Source {
    #[default]
    File,
    /// A KubeflowTenant. `claims`: the role its status names, which the
    /// controller applied before roles were tagged with their
    /// KubeflowTenant, so it may tag that role (and only that one) now.
    KubeflowTenant { claims: Option<String> },
}

pub const DEFAULT_TRUST_POLICY_QUOTA: usize = 2048;
/// The largest trust policy quota IAM grants (a raised quota; not adjustable beyond).
pub const MAX_TRUST_POLICY_QUOTA: usize = 4096;
/// The annotation that gives a service account its IAM role (IRSA): the
/// profile controller writes it on `default-editor`, kfp-tenant on the others.
pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default-editor";
pub const DEFAULT_MAX_SESSION_DURATION: u32 = 3600;
/// EKS Pod Identity associations per cluster: 5,000, not adjustable (the
/// EKS user guide's service quotas; older pages said 1,000).
pub const MAX_POD_IDENTITY_ASSOCIATIONS: usize = 5000;

impl Tenant {
    /// The service accounts kfp-tenant must annotate itself: all but
    /// `default-editor`, which the Kubeflow plugin annotates.
    pub fn extra_service_accounts(&self) -> impl Iterator<Item = &str> {
        self.service_accounts.iter().map(String::as_str).filter(|sa| *sa != DEFAULT_SERVICE_ACCOUNT)
    }
}

/// The seed page's role name: `<namespace>-<cluster>-role`.
pub fn default_role_name(namespace: &str, cluster: &str) -> String {
    format!("{namespace}-{cluster}-role")
}

/// The seed page's inline policy name: `kf-<namespace>-pipeline-s3`.
pub fn policy_name(namespace: &str) -> String {
    format!("kf-{namespace}-pipeline-s3")
}
