//! Reading live state through the ports: the only place planning touches IO.
//!
//! A [`ReadSet`] says what to read: derived from a [`Desired`] for a new plan,
//! or from a saved plan ([`crate::plan::reads_of`]) to check that it is still
//! fresh. [`refresh`] reads in three rounds:
//! 1. the cluster: the caller, DescribeCluster, kfp-tenant's identity record
//!    in the Kubernetes API. Then the Kubernetes API must be shown to be the
//!    file's cluster ([`crate::identity::prove`]) before anything is listed.
//! 2. two reads side by side:
//!    - IAM: the roles kfp-tenant manages for this cluster and each tenant's
//!      role and inline policy, per role or in bulk (`roles`, chosen by
//!      [`RefreshMode`]);
//!    - Kubernetes: every Profile, kfp-tenant's service accounts, every
//!      `default-editor`; then the namespace of each tenant without a
//!      Profile and the service accounts it names that were not listed.
//!
//! At most `parallelism` calls are in flight at any time: every call waits
//! for one of the run's slots (a semaphore), whichever round it belongs to.

use std::collections::{BTreeMap, BTreeSet};

use std::future::Future;

mod roles;
pub use roles::{RefreshMode, choose as choose_refresh_mode};

use futures_util::{StreamExt, TryStreamExt, stream};
use tokio::sync::Semaphore;

use crate::identity::{self, Proof, WrongCluster};
use crate::policy::PolicyDocument;
use crate::ports::{
    ARTIFACT_REPOSITORIES, AccountQuery, CallerIdentity, ClusterApi, ClusterRecord, ConfigMap, DirectoryUser, EksCluster, KubernetesApi,
    LAUNCHER_CONFIG, Namespace, PodIdentityApi, PodIdentityAssociation, Profile, ProviderError, Providers, Role, ServiceAccount,
    UserDirectoryApi,
};
use crate::spec::{DEFAULT_SERVICE_ACCOUNT, Desired, Road};
use crate::tags;

/// What one refresh reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadSet {
    pub cluster: String,
    /// (role name, inline policy name) per tenant.
    pub roles: BTreeSet<(String, String)>,
    /// Namespaces whose Profile matters; a missing one makes refresh read
    /// the namespace itself.
    pub namespaces: BTreeSet<String>,
    /// The owner the file gives each namespace's Profile: a live Profile
    /// with another owner makes refresh read its namespace too (its owner
    /// annotation decides whether a patch can change the owner).
    pub owners: BTreeMap<String, String>,
    /// (namespace, name) of the service accounts the tenants name besides
    /// `default-editor`.
    pub service_accounts: BTreeSet<(String, String)>,
    /// The operator vouches that the Kubernetes API is the file's cluster
    /// (`--bind-cluster`).
    pub vouched: bool,
    /// A tenant uses EKS Pod Identity: the cluster's associations are read.
    /// They are also read, whatever this says, when a role read trusts Pod
    /// Identity (a tenant that left it may have associations left).
    pub pod_identity: bool,
    /// The file's Cognito pool, and the owners to look up in it.
    pub cognito: Option<UserReads>,
    /// The file's bucket, checked once (HeadBucket) for the plan's warnings.
    pub bucket: Option<String>,
    /// The tenants' pipeline ConfigMaps (`kfp-launcher`, `artifact-repositories`):
    /// one listing of each name, cluster-wide.
    pub config_maps: bool,
}

/// What S3 said of the file's bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum BucketCheck {
    /// Not asked (a saved plan's refresh).
    #[default]
    NotRead,
    Missing,
    /// It exists, in this region.
    In(String),
    /// S3 did not say (the error, in one line): a plan goes on without it.
    Unknown(String),
}

/// The Cognito users a plan needs: the owners of its tenants, and, when
/// users may be deleted, every user the identity record says kfp-tenant
/// created in the pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserReads {
    pub user_pool_id: String,
    pub emails: BTreeSet<String>,
    pub delete_users: bool,
}

impl ReadSet {
    /// What planning to delete `desired`'s tenants reads: what a plan reads
    /// but the bucket, which a destroy does not need.
    pub fn for_destroy(desired: &Desired, vouched: bool) -> Self {
        ReadSet { bucket: None, config_maps: false, ..Self::for_desired(desired, vouched) }
    }

    pub fn for_desired(desired: &Desired, vouched: bool) -> Self {
        ReadSet {
            cluster: desired.cluster.name.clone(),
            roles: desired.tenants.iter().map(|t| (t.role_name.clone(), t.policy_name.clone())).collect(),
            namespaces: desired.tenants.iter().map(|t| t.namespace.clone()).collect(),
            owners: desired.tenants.iter().map(|t| (t.namespace.clone(), t.owner.clone())).collect(),
            service_accounts: desired
                .tenants
                .iter()
                .flat_map(|t| t.extra_service_accounts().map(|sa| (t.namespace.clone(), sa.to_owned())))
                .collect(),
            vouched,
            pod_identity: desired.tenants.iter().any(|t| t.road == Road::PodIdentity),
            cognito: desired.cognito.as_ref().map(|c| UserReads {
                user_pool_id: c.user_pool_id.clone(),
                emails: desired.tenants.iter().map(|t| t.owner.clone()).collect(),
                delete_users: c.delete_users,
            }),
            bucket: Some(desired.cluster.bucket.clone()),
            config_maps: !desired.tenants.is_empty(),
        }
    }
}

/// Live state as read, the input of [`crate::plan::plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub identity: CallerIdentity,
    pub cluster: EksCluster,
    /// How the Kubernetes API was shown to be this cluster.
    pub proof: Proof,
    /// kfp-tenant's identity record, when the cluster has one.
    pub record: Option<ClusterRecord>,
    /// Roles that exist, by name.
    pub roles: BTreeMap<String, Role>,
    /// Every inline policy of the roles read, by (role, policy).
    pub policies: BTreeMap<(String, String), PolicyDocument>,
    /// The managed policies attached to the roles read, by role.
    pub attachments: BTreeMap<String, BTreeSet<String>>,
    /// Every Profile of the cluster, by name.
    pub profiles: BTreeMap<String, Profile>,
    /// Namespaces read, that exist: those of the tenants without a Profile,
    /// and those of the Profiles whose owner differs from the file's.
    pub namespaces: BTreeMap<String, Namespace>,
    /// Service accounts by (namespace, name): kfp-tenant's, every
    /// `default-editor`, and those the tenants name.
    pub service_accounts: BTreeMap<(String, String), ServiceAccount>,
    /// The roles tagged as kfp-tenant's for this cluster.
    pub managed_roles: Vec<Role>,
    /// EKS Pod Identity associations, described (role and tags), by
    /// (namespace, service account): those in the namespaces of the file's
    /// tenants and of kfp-tenant's roles. Empty when none was read.
    pub associations: BTreeMap<(String, String), PodIdentityAssociation>,
    /// How many associations the cluster has in all (EKS's per-cluster quota).
    pub association_count: usize,
    /// The users of the file's Cognito pool, by the e-mail looked up (an
    /// e-mail with none maps to an empty list). Empty without a pool.
    pub users: BTreeMap<String, Vec<DirectoryUser>>,
    /// The file's bucket, as S3 answered.
    pub bucket: BucketCheck,
    /// The pipeline ConfigMaps of every namespace, by (namespace, name),
    /// when they were read.
    pub config_maps: BTreeMap<(String, String), ConfigMap>,
}

impl Observed {
    /// A role's inline policies other than `except`, and its attached
    /// managed policies, as refresh read them.
    pub(crate) fn role_permissions(&self, role: &str, except: Option<&str>) -> (Vec<crate::ports::InlinePolicy>, Vec<String>) {
        let inline = self
            .policies
            .range((role.to_owned(), String::new())..)
            .take_while(|((r, _), _)| r == role)
            .filter(|((_, name), _)| Some(name.as_str()) != except)
            .map(|((r, name), document)| crate::ports::InlinePolicy {
                role_name: r.clone(),
                policy_name: name.clone(),
                document: document.clone(),
            })
            .collect();
        let attached = self.attachments.get(role).into_iter().flatten().cloned().collect();
        (inline, attached)
    }
}

/// Refresh stopped; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("cannot read {what}")]
    Read {
        /// What was being read, e.g. `IAM role team-a-kf-role`.
        what: String,
        #[source]
        source: ProviderError,
    },
    #[error(transparent)]
    WrongCluster(#[from] Box<WrongCluster>),
}

fn reading(what: impl Into<String>) -> impl FnOnce(ProviderError) -> RefreshError {
    let what = what.into();
    move |source| RefreshError::Read { what, source }
}

/// Runs `call` once one of the run's call slots is free.
async fn limited<T>(slots: &Semaphore, call: impl Future<Output = T>) -> T {
    let _slot = slots.acquire().await.expect("invariant: the semaphore is never closed");
    call.await
}

/// The cluster's facts alone (who calls, the EKS cluster, its identity
/// record, the proof that the Kubernetes API is that cluster): no tenant is
/// read. For the commands that read the account their own way (`audit`).
pub async fn refresh_cluster(
    name: &str,
    vouched: bool,
    cluster: &dyn ClusterApi,
    kube: &dyn KubernetesApi,
) -> Result<Observed, RefreshError> {
    let (identity, eks, record) = futures_util::try_join!(
        async { cluster.caller_identity().await.map_err(reading("the caller identity")) },
        async { cluster.describe_cluster(name).await.map_err(reading(format!("EKS cluster {name}"))) },
        async { kube.cluster_record().await.map_err(reading("kfp-tenant's identity record (ConfigMap kube-system/kfp-tenant-cluster)")) },
    )?;
    let proof = identity::prove(&eks, &kube.endpoint(), record.as_ref(), vouched)?;
    Ok(Observed {
        identity,
        cluster: eks,
        proof,
        record,
        roles: BTreeMap::new(),
        policies: BTreeMap::new(),
        attachments: BTreeMap::new(),
        profiles: BTreeMap::new(),
        namespaces: BTreeMap::new(),
        service_accounts: BTreeMap::new(),
        config_maps: BTreeMap::new(),
        managed_roles: Vec::new(),
        associations: BTreeMap::new(),
        association_count: 0,
        users: BTreeMap::new(),
        bucket: BucketCheck::NotRead,
    })
}

/// Reads everything in `reads`, at most `parallelism` calls at a time,
/// the roles the way `mode` says (`roles`).
pub async fn refresh(reads: &ReadSet, ports: Providers<'_>, parallelism: usize, mode: RefreshMode) -> Result<Observed, RefreshError> {
    let slots = Semaphore::new(parallelism.max(1));
    let slots = &slots;
    let name = reads.cluster.as_str();
    // Nothing is listed before the Kubernetes API is shown to be this cluster.
    let facts = refresh_cluster(name, reads.vouched, ports.cluster, ports.kube).await?;
    let bucket = async {
        Ok(match &reads.bucket {
            None => BucketCheck::NotRead,
            Some(bucket) => match limited(slots, ports.cluster.bucket_region(bucket)).await {
                Ok(Some(region)) => BucketCheck::In(region),
                Ok(None) => BucketCheck::Missing,
                Err(e) => BucketCheck::Unknown(e.to_string()),
            },
        })
    };
    let (roles, (kubernetes, users), bucket) = futures_util::try_join!(
        roles::read(&reads.roles, name, ports.iam, slots, parallelism, mode),
        async {
            let kubernetes = read_kubernetes(reads, ports.kube, slots, parallelism).await?;
            let users = read_users(reads, facts.record.as_ref(), ports.directory, slots, parallelism).await?;
            Ok::<_, RefreshError>((kubernetes, users))
        },
        bucket,
    )?;
    // After both: a pruned tenant's associations are found by its role or its Profile.
    let associations = read_associations(reads, &roles, &kubernetes, ports.pod_identity, slots, parallelism).await?;
    Ok(Observed {
        roles: roles.roles,
        policies: roles.policies,
        attachments: roles.attachments,
        managed_roles: roles.managed,
        association_count: associations.count,
        associations: associations.described,
        users,
        bucket,
        ..kubernetes.into_observed(facts)
    })
}

/// The owners' users in the file's Cognito pool: one lookup by e-mail per
/// owner (ListUsers with an `email` filter), so pools whose usernames are
/// e-mails and pools with separate usernames are read alike.
async fn read_users(
    reads: &ReadSet,
    record: Option<&ClusterRecord>,
    directory: &dyn UserDirectoryApi,
    slots: &Semaphore,
    parallelism: usize,
) -> Result<BTreeMap<String, Vec<DirectoryUser>>, RefreshError> {
    let Some(wanted) = &reads.cognito else {
        return Ok(BTreeMap::new());
    };
    let mut emails = wanted.emails.clone();
    if wanted.delete_users {
        // The users kfp-tenant created: a prune or destroy may delete those that own no tenant left.
        let created = record.into_iter().flat_map(|r| &r.cognito_users);
        emails.extend(created.filter(|(pool, _)| *pool == wanted.user_pool_id).map(|(_, email)| email.clone()));
    }
    let pool = wanted.user_pool_id.as_str();
    let found = stream::iter(emails.into_iter().map(|email| {
        limited(slots, async move {
            let users = directory.find_users(pool, &email).await.map_err(|source| RefreshError::Read {
                what: format!(
                    "the users of Cognito user pool {pool} (identityProvider.cognito.userPoolId): check the pool id and region, and that the caller may cognito-idp:ListUsers on it"
                ),
                source,
            })?;
            Ok::<_, RefreshError>((email, users))
        })
    }))
    .buffer_unordered(parallelism.max(1))
    .try_collect::<Vec<_>>()
    .await?;
    Ok(found.into_iter().collect())
}

struct Associations {
    count: usize,
    described: BTreeMap<(String, String), PodIdentityAssociation>,
}

/// The cluster's Pod Identity associations, when a tenant uses Pod
/// Identity, a role read trusts it, or one of kfp-tenant's Profiles that
/// the file no longer has lacks IRSA's plugin (a Pod Identity tenant's): one listing (summaries, paged), then
/// a Describe (role, tags) for each one in a namespace the plan concerns
/// (the file's, and those of kfp-tenant's roles and Profiles).
/// A file of IRSA tenants whose roles trust nothing else makes no EKS call
/// (and needs no EKS permission).
async fn read_associations(
    reads: &ReadSet,
    roles: &roles::RoleState,
    kubernetes: &KubernetesState,
    pods: &dyn PodIdentityApi,
    slots: &Semaphore,
    parallelism: usize,
) -> Result<Associations, RefreshError> {
    let trusted = roles.roles.values().chain(&roles.managed).any(|r| crate::policy::admits_pod_identity(&r.trust_policy));
    // A Pod Identity tenant that left the file: kfp-tenant's Profile without IRSA's plugin.
    let profiled = kubernetes.profiles.values().any(|p| p.managed && p.role_arn().is_none() && !reads.namespaces.contains(&p.name));
    if !reads.pod_identity && !trusted && !profiled {
        return Ok(Associations { count: 0, described: BTreeMap::new() });
    }
    let cluster = reads.cluster.as_str();
    let listed = limited(slots, pods.list_pod_identity_associations(cluster))
        .await
        .map_err(reading(format!("the EKS Pod Identity associations of cluster {cluster}")))?;
    let concerned: BTreeSet<&str> = reads
        .namespaces
        .iter()
        .map(String::as_str)
        .chain(roles.managed.iter().filter_map(|r| r.tags.get(tags::NAMESPACE).map(String::as_str)))
        .chain(kubernetes.profiles.values().filter(|p| p.managed).map(|p| p.name.as_str()))
        .collect();
    let described = stream::iter(listed.iter().filter(|a| concerned.contains(a.namespace.as_str())).map(|a| {
        limited(slots, async move {
            pods.describe_pod_identity_association(cluster, &a.id)
                .await
                .map_err(reading(format!("EKS Pod Identity association {} ({}/{})", a.id, a.namespace, a.service_account)))
        })
    }))
    .buffer_unordered(parallelism.max(1))
    .try_collect::<Vec<_>>()
    .await?;
    Ok(Associations {
        count: listed.len(),
        described: described.into_iter().flatten().map(|a| ((a.namespace.clone(), a.service_account.clone()), a)).collect(),
    })
}

/// What refresh reads in the Kubernetes API.
struct KubernetesState {
    profiles: BTreeMap<String, Profile>,
    namespaces: BTreeMap<String, Namespace>,
    service_accounts: BTreeMap<(String, String), ServiceAccount>,
    config_maps: BTreeMap<(String, String), ConfigMap>,
}

impl KubernetesState {
    fn into_observed(self, facts: Observed) -> Observed {
        Observed {
            profiles: self.profiles,
            namespaces: self.namespaces,
            service_accounts: self.service_accounts,
            config_maps: self.config_maps,
            ..facts
        }
    }
}

/// The listings (every Profile, kfp-tenant's service accounts, every
/// `default-editor`), then what they did not answer: the namespaces of
/// tenants without a Profile or whose Profile has another owner than the
/// file's, and the service accounts not listed.
async fn read_kubernetes(
    reads: &ReadSet,
    kube: &dyn KubernetesApi,
    slots: &Semaphore,
    parallelism: usize,
) -> Result<KubernetesState, RefreshError> {
    let config_maps = |name: &'static str| {
        limited(slots, async move {
            if !reads.config_maps {
                return Ok(Vec::new());
            }
            kube.list_config_maps(name).await.map_err(reading(format!("the {name} ConfigMaps")))
        })
    };
    let (profiles, managed_accounts, editors, launchers, repositories) = futures_util::try_join!(
        limited(slots, async { kube.list_profiles().await.map_err(reading("Profiles")) }),
        limited(slots, async { kube.list_service_accounts(AccountQuery::Managed).await.map_err(reading("kfp-tenant's service accounts")) }),
        limited(slots, async {
            kube.list_service_accounts(AccountQuery::Named(DEFAULT_SERVICE_ACCOUNT))
                .await
                .map_err(reading("the default-editor service accounts"))
        }),
        config_maps(LAUNCHER_CONFIG),
        config_maps(ARTIFACT_REPOSITORIES),
    )?;
    let profiles: BTreeMap<String, Profile> = profiles.into_iter().map(|p| (p.name.clone(), p)).collect();
    let mut service_accounts: BTreeMap<(String, String), ServiceAccount> =
        managed_accounts.into_iter().chain(editors).map(|sa| ((sa.namespace.clone(), sa.name.clone()), sa)).collect();

    let namespaces = stream::iter(
        reads
            .namespaces
            .iter()
            .filter(|ns| profiles.get(*ns).is_none_or(|p| reads.owners.get(*ns).is_some_and(|owner| *owner != p.owner)))
            .map(|ns| limited(slots, async move { kube.get_namespace(ns).await.map_err(reading(format!("namespace {ns}"))) })),
    )
    .buffer_unordered(parallelism.max(1))
    .try_collect::<Vec<_>>();
    let accounts = stream::iter(reads.service_accounts.iter().filter(|key| !service_accounts.contains_key(*key)).map(|(ns, sa)| {
        limited(slots, async move { kube.get_service_account(ns, sa).await.map_err(reading(format!("service account {ns}/{sa}"))) })
    }))
    .buffer_unordered(parallelism.max(1))
    .try_collect::<Vec<_>>();
    let (namespaces, accounts) = futures_util::try_join!(namespaces, accounts)?;
    service_accounts.extend(accounts.into_iter().flatten().map(|sa| ((sa.namespace.clone(), sa.name.clone()), sa)));
    Ok(KubernetesState {
        namespaces: namespaces.into_iter().flatten().map(|ns| (ns.name.clone(), ns)).collect(),
        profiles,
        service_accounts,
        config_maps: launchers.into_iter().chain(repositories).map(|c| ((c.namespace.clone(), c.name.clone()), c)).collect(),
    })
}
