//! In-memory fakes of kfp-tenant's provider ports, for the engine's tests,
//! fault injection and benchmarks.
//!
//! They behave like the real services where the engine's correctness depends
//! on it: IAM refuses a second role of the same name and a role deletion while
//! inline policies remain; a deleted Profile takes its namespace with it. Each
//! fake counts calls per API operation (named as the real API names them), and
//! takes [`Faults`]: latency per call, failing the Nth call of an operation,
//! throttling with a probability from a seeded generator, and eventual
//! consistency (a created role invisible to reads for a while). Time is tokio's,
//! so tests on a paused clock do not sleep for real.
//!
//! The fakes are not a stand-in for the real clients: those are tested over
//! HTTP against moto and the Kubernetes API fake.
//! - [`aws`]: [`FakeCluster`] (STS, EKS) and [`FakeIam`];
//! - [`kube`]: [`FakeKube`], the Kubernetes API with an instant controller;
//! - [`faults`]: what they do besides answering;
//! - [`apiserver`], [`controller`], [`backend`]: a Kubernetes API over HTTP,
//!   a profile controller on kube-runtime, and the choice between the fake
//!   and a real kube-apiserver for the real client's tests.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use kfp_tenant_core::policy::PolicyDocument;
use kfp_tenant_core::ports::{ClusterApi, IamApi, KubernetesApi, PodIdentityApi, Role, UserDirectoryApi};

pub mod apiserver;
pub mod aws;
pub mod backend;
pub mod controller;
pub mod faults;
mod http1;
pub mod kube;
pub mod paging_proxy;
pub mod partition;
pub mod pod_identity;
pub mod recording_proxy;
pub mod signing_proxy;
pub mod world;

pub use crate::aws::{FakeCluster, FakeDirectory, FakeIam};
pub use crate::faults::{Calls, Faults, WRITES};
pub use crate::kube::FakeKube;

pub const ACCOUNT_ID: &str = "123456789012";
pub const ISSUER: &str = "https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";

// Each fake implements its ports (every port of `Providers`); this fails to
// compile if one stops doing so.
const _: fn() = || {
    fn implements<C: ClusterApi, D: UserDirectoryApi, I: IamApi + PodIdentityApi, K: KubernetesApi>() {}
    implements::<FakeCluster, FakeDirectory, FakeIam, FakeKube>();
};

/// A role someone made by hand: no kfp-tenant markers, an empty trust policy.
pub fn unmanaged_role(name: &str) -> Role {
    Role {
        name: name.to_owned(),
        path: "/".to_owned(),
        arn: String::new(),
        trust_policy: PolicyDocument::new(serde_json::json!({"Version": "2012-10-17", "Statement": []})),
        description: None,
        tags: BTreeMap::new(),
        max_session_duration: 3600,
        permissions_boundary: None,
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
