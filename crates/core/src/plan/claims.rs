//! Whose a tenant's roles are. A role kfp-tenant manages belongs to the
//! tenant its tags name: the cluster and namespace, and the KubeflowTenant
//! that declares it (no tag: a tenants file). A tenant is never planned
//! onto another tenant's role, and a file never changes a KubeflowTenant's
//! tenant nor a KubeflowTenant a file's, with or without `--adopt`, which
//! takes over only what kfp-tenant does not manage.

use crate::address::{Address, Kind};
use crate::plan::Reason;
use crate::plan::planner::Planner;
use crate::ports::Role;
use crate::spec::{Source, Tenant};
use crate::tags;

/// Whether a tenant may be planned, as [`Planner::claim`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Claim {
    /// Its roles are its own, or there are none yet.
    Own,
    /// Its `roleName` is another tenant's role (what to say of it): refused
    /// in a plan; a destroy leaves that role alone and deletes the rest.
    OthersRole(String),
    /// Declared the other way (file or KubeflowTenant) than its roles say: refused.
    Refused,
}

/// The tenant a role's kfp-tenant tags name, when they name one other than
/// tenant `ns` of `cluster`: `(cluster, namespace)`.
fn other_tenant<'r>(role: &'r Role, cluster: &str, ns: &str) -> Option<(&'r str, &'r str)> {
    if role.tags.get(tags::MANAGED_BY).map(String::as_str) != Some(tags::MANAGER) {
        return None;
    }
    let (of_cluster, of_ns) = (role.tags.get(tags::CLUSTER)?, role.tags.get(tags::NAMESPACE)?);
    (of_cluster != cluster || of_ns != ns).then_some((of_cluster.as_str(), of_ns.as_str()))
}

impl Planner<'_> {
    /// The tenant planned, unless its roles are another's.
    pub(super) fn claimed_tenant(&mut self, tenant: &Tenant) {
        match self.claim(tenant) {
            Claim::Own => self.tenant(tenant),
            Claim::OthersRole(message) => {
                let fix = format!("give tenant {} a roleName of its own", tenant.namespace);
                self.conflict(Address::tenant(&tenant.namespace, Kind::IamRole), message, fix);
            }
            Claim::Refused => {}
        }
    }

    /// The tenant's deletion planned, unless it is declared the other way;
    /// another tenant's role that its `roleName` names stays.
    pub(super) fn destroy_claimed(&mut self, tenant: &Tenant) {
        match self.claim(tenant) {
            Claim::Own => self.delete_tenant(&tenant.namespace, Some(&tenant.role_name), Reason::Destroy),
            Claim::OthersRole(message) => {
                self.warn(format!("{message}; destroying tenant {} leaves it", tenant.namespace));
                self.delete_tenant(&tenant.namespace, None, Reason::Destroy);
            }
            Claim::Refused => {}
        }
    }

    /// Whose the tenant's roles are: every role kfp-tenant made for its
    /// namespace on this cluster (a tenant declared the other way is
    /// refused here, first: its destroy must not go on), then the role its
    /// `roleName` names.
    fn claim(&mut self, tenant: &Tenant) -> Claim {
        let ns = tenant.namespace.as_str();
        let cluster = self.cluster.name.clone();
        let roles: Vec<&Role> = self.managed_by_namespace.get(ns).into_iter().flatten().copied().collect();
        for role in roles {
            let declared_by = tags::kubeflow_tenant(&role.tags);
            let problem = match (&tenant.source, declared_by) {
                (Source::File, Some(resource)) => Some((
                    format!(
                        "tenant {ns} is declared by KubeflowTenant {resource}, which the controller manages (IAM role {} has tag {}={resource})",
                        role.name,
                        tags::KUBEFLOW_TENANT
                    ),
                    format!(
                        "leave it to the controller and remove tenant {ns} from the tenants file, or change it with kubectl edit kubeflowtenant {resource}"
                    ),
                )),
                (Source::KubeflowTenant { claims }, None) if claims.as_deref() != Some(role.name.as_str()) => Some((
                    format!("tenant {ns} is managed from a tenants file (IAM role {} has no {} tag)", role.name, tags::KUBEFLOW_TENANT),
                    format!(
                        "delete this KubeflowTenant; or, to hand the tenant to the controller, remove it from its tenants file and tag its role: aws iam tag-role --role-name {} --tags Key={},Value={ns}",
                        role.name,
                        tags::KUBEFLOW_TENANT
                    ),
                )),
                _ => None,
            };
            if let Some((message, fix)) = problem {
                self.conflict(Address::tenant(ns, Kind::IamRole), message, fix);
                return Claim::Refused;
            }
        }
        let named = self.observed.roles.get(&tenant.role_name);
        if let Some((role, (of_cluster, of_ns))) = named.and_then(|r| Some((r, other_tenant(r, &cluster, ns)?))) {
            let whose =
                if of_cluster == cluster { format!("tenant {of_ns}") } else { format!("tenant {of_ns} of EKS cluster {of_cluster}") };
            return Claim::OthersRole(format!(
                "IAM role {} is {whose}'s (its tags {} and {}), not tenant {ns}'s: a role kfp-tenant manages is never moved between tenants",
                role.name,
                tags::CLUSTER,
                tags::NAMESPACE
            ));
        }
        Claim::Own
    }
}
