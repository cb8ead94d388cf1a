//! kfp-tenant's engine: tenants as a resource graph with a plan / apply /
//! destroy life cycle.
//!
//! A Kubeflow tenant on EKS is a handful of things that depend on each
//! other: the cluster's OIDC issuer (and the account's IAM OIDC provider for
//! it), a trust policy derived from it (IRSA's, or EKS Pod Identity's), an
//! IAM role carrying that policy and exactly the file's permissions (its
//! inline S3 policy, the managed policies listed), a Profile whose
//! `AwsIamForServiceAccount` plugin names the role, the service accounts
//! granted the role, and with Pod Identity one association per account; the
//! owners may be users of a Cognito pool. The engine models them as nodes of
//! a dependency graph ([`address::Address`]) and keeps
//! one decision central: **planning is a pure function**. [`refresh`] reads
//! the live state through the provider ports ([`ports`]); [`plan::plan`] turns
//! desired and observed state into a [`plan::Plan`], plain serde data that
//! fixes every name, ARN and document; [`apply::apply`] walks the graph and
//! carries the plan out, choosing nothing. Applying and planning again yields
//! only no-ops.
//!
//! The crate does no IO of its own and knows nothing of the AWS SDK or kube:
//! providers implement the ports in other crates.

pub mod address;
pub mod apply;
pub mod audit;
pub mod crd;
pub mod fnv;
pub mod graph;
pub mod identity;
pub mod kinds;
pub mod limits;
pub mod order;
pub mod permissions;
pub mod plan;
pub mod policy;
pub mod ports;
pub mod refresh;
pub mod render;
pub mod resilience;
pub mod spec;
pub mod tags;
pub mod trust;
pub mod validate;
pub mod verify;

pub use address::{Address, Kind};
pub use plan::{Action, Plan, PlanOptions, plan, plan_destroy};
pub use spec::{Desired, TenantsFile};
pub use validate::validate;
