//! What IAM, S3, Cognito and Kubernetes allow, as numbers and names: the
//! limits validation holds a file to, and the namespaces that are the
//! cluster's own.

pub const MAX_ROLE_NAME: usize = 64;
pub const MAX_POLICY_NAME: usize = 128;
pub const MAX_ROLE_PATH: usize = 512;
pub const MAX_INLINE_POLICIES: usize = 10_240;
pub const MAX_TAGS: usize = 50;
/// Managed policies attached to one role: 10 unless the quota was raised, 20 at most.
pub const MAX_MANAGED_POLICIES: usize = 20;
/// Cognito's `UserPoolId`: `[\w-]+_[0-9a-zA-Z]+`, at most 55 characters.
pub const MAX_USER_POOL_ID: usize = 55;
/// S3 object keys, and so prefixes, are at most 1,024 bytes.
pub const MAX_S3_KEY: usize = 1024;

/// Namespaces that belong to the cluster itself: Kubernetes', Kubeflow's and
/// its dependencies' (Istio, Dex/oauth2-proxy in `auth`, cert-manager,
/// Knative). A Profile for one would hand a user the cluster's machinery.
/// The manifests' example Profile `kubeflow-user-example-com` stays allowed.
pub const RESERVED_NAMESPACES: &[&str] = &[
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "default",
    "kubeflow",
    "istio-system",
    "auth",
    "cert-manager",
    "knative-serving",
    "knative-eventing",
];
