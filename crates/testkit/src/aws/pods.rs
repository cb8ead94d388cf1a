//! EKS Pod Identity in memory, on [`FakeIam`]: the associations live with
//! the roles because EKS checks them in IAM, eventual consistency included.

use std::collections::BTreeMap;

use async_trait::async_trait;
use kfp_tenant_core::ports::{ErrorKind, PodIdentityApi, PodIdentityAssociation, ProviderError, ProviderResult};

use super::{FakeIam, IamState};
use crate::lock;

/// EKS Pod Identity as EKS answers it, its roles checked in this fake IAM:
/// a role that is not visible yet "does not exist", a role whose trust does
/// not admit `pods.eks.amazonaws.com` is refused, a taken pair is in use.
#[async_trait]
impl PodIdentityApi for FakeIam {
    async fn list_pod_identity_associations(&self, cluster: &str) -> ProviderResult<Vec<PodIdentityAssociation>> {
        self.meter.enter("ListPodIdentityAssociations", cluster).await?;
        Ok(lock(&self.state)
            .associations
            .values()
            .filter(|(c, _)| c == cluster)
            .map(|(_, a)| PodIdentityAssociation { role_arn: None, tags: BTreeMap::new(), ..a.clone() })
            .collect())
    }

    async fn describe_pod_identity_association(&self, cluster: &str, id: &str) -> ProviderResult<Option<PodIdentityAssociation>> {
        self.meter.enter("DescribePodIdentityAssociation", id).await?;
        Ok(lock(&self.state).associations.get(id).filter(|(c, _)| c == cluster).map(|(_, a)| a.clone()))
    }

    async fn create_pod_identity_association(
        &self,
        cluster: &str,
        association: &PodIdentityAssociation,
    ) -> ProviderResult<PodIdentityAssociation> {
        let target = format!("Pod Identity association {}/{}", association.namespace, association.service_account);
        self.meter.enter("CreatePodIdentityAssociation", &target).await?;
        let role_arn = association.role_arn.clone().unwrap_or_default();
        let mut state = lock(&self.state);
        self.check_pod_identity_role(&state, "CreatePodIdentityAssociation", &target, &role_arn)?;
        let taken = state
            .associations
            .values()
            .any(|(c, a)| c == cluster && a.namespace == association.namespace && a.service_account == association.service_account);
        if taken {
            return Err(ProviderError::new(ErrorKind::AlreadyExists, "CreatePodIdentityAssociation", target, "Association already exists"));
        }
        state.next_association += 1;
        let made = PodIdentityAssociation { id: format!("a-{:017x}", state.next_association), ..association.clone() };
        state.associations.insert(made.id.clone(), (cluster.to_owned(), made.clone()));
        Ok(made)
    }

    async fn update_pod_identity_association(&self, cluster: &str, id: &str, role_arn: &str) -> ProviderResult<()> {
        let target = format!("Pod Identity association {id}");
        self.meter.enter("UpdatePodIdentityAssociation", &target).await?;
        let mut state = lock(&self.state);
        self.check_pod_identity_role(&state, "UpdatePodIdentityAssociation", &target, role_arn)?;
        match state.associations.get_mut(id).filter(|(c, _)| c == cluster) {
            Some((_, a)) => {
                a.role_arn = Some(role_arn.to_owned());
                Ok(())
            }
            None => {
                Err(ProviderError::new(ErrorKind::NotFound, "UpdatePodIdentityAssociation", target, format!("Association {id} not found.")))
            }
        }
    }

    async fn delete_pod_identity_association(&self, cluster: &str, id: &str) -> ProviderResult<()> {
        let target = format!("Pod Identity association {id}");
        self.meter.enter("DeletePodIdentityAssociation", &target).await?;
        let mut state = lock(&self.state);
        if state.associations.get(id).is_none_or(|(c, _)| c != cluster) {
            return Err(ProviderError::new(
                ErrorKind::NotFound,
                "DeletePodIdentityAssociation",
                target,
                format!("Association {id} not found."),
            ));
        }
        state.associations.remove(id);
        Ok(())
    }
}

impl FakeIam {
    /// What EKS says of a role it is asked to hand to pods.
    fn check_pod_identity_role(&self, state: &IamState, operation: &str, target: &str, role_arn: &str) -> ProviderResult<()> {
        let name = role_arn.rsplit('/').next().unwrap_or_default();
        let refuse = |message: &str| Err(ProviderError::new(ErrorKind::InvalidInput, operation, target, message));
        match state.visible(name, self.meter.invisible_for()) {
            None => refuse("Role provided in the request does not exist"),
            Some(role) if !kfp_tenant_core::policy::admits_pod_identity(&role.trust_policy) => {
                refuse("Trust policy of the role provided is invalid")
            }
            Some(_) => Ok(()),
        }
    }
}
