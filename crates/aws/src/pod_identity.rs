//! [`PodIdentityApi`] on aws-sdk-eks: EKS Pod Identity associations.
//! ListPodIdentityAssociations pages summaries without the role;
//! DescribePodIdentityAssociation gives the role and the tags.

use async_trait::async_trait;
use aws_sdk_eks::types::{PodIdentityAssociation as SdkAssociation, PodIdentityAssociationSummary};
use kfp_tenant_core::ports::{ErrorKind, PodIdentityApi, PodIdentityAssociation, ProviderResult};

use crate::Aws;
use crate::errors::{missing, provider_error};

fn from_summary(operation: &str, s: PodIdentityAssociationSummary) -> ProviderResult<PodIdentityAssociation> {
    Ok(PodIdentityAssociation {
        id: s.association_id.ok_or_else(|| missing(operation, "a Pod Identity association", "associationId"))?,
        namespace: s.namespace.unwrap_or_default(),
        service_account: s.service_account.unwrap_or_default(),
        role_arn: None,
        tags: Default::default(),
    })
}

fn from_sdk(operation: &str, a: SdkAssociation) -> ProviderResult<PodIdentityAssociation> {
    Ok(PodIdentityAssociation {
        id: a.association_id.ok_or_else(|| missing(operation, "a Pod Identity association", "associationId"))?,
        namespace: a.namespace.unwrap_or_default(),
        service_account: a.service_account.unwrap_or_default(),
        role_arn: a.role_arn,
        tags: a.tags.unwrap_or_default().into_iter().collect(),
    })
}

#[async_trait]
impl PodIdentityApi for Aws {
    async fn list_pod_identity_associations(&self, cluster: &str) -> ProviderResult<Vec<PodIdentityAssociation>> {
        const OPERATION: &str = "ListPodIdentityAssociations";
        let target = format!("EKS cluster {cluster}");
        // EKS pages at most 100; tests set less to see the paging.
        let page = self.page_size.clamp(1, 100);
        let mut pages = self.eks.list_pod_identity_associations().cluster_name(cluster).max_results(page).into_paginator().send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| provider_error(OPERATION, &target, e))?;
            for summary in page.associations.unwrap_or_default() {
                found.push(from_summary(OPERATION, summary)?);
            }
        }
        Ok(found)
    }

    async fn describe_pod_identity_association(&self, cluster: &str, id: &str) -> ProviderResult<Option<PodIdentityAssociation>> {
        const OPERATION: &str = "DescribePodIdentityAssociation";
        match self.eks.describe_pod_identity_association().cluster_name(cluster).association_id(id).send().await {
            Ok(out) => out.association.map(|a| from_sdk(OPERATION, a)).transpose(),
            Err(e) => match provider_error(OPERATION, &format!("Pod Identity association {id}"), e) {
                e if e.kind == ErrorKind::NotFound => Ok(None),
                e => Err(e),
            },
        }
    }

    async fn create_pod_identity_association(
        &self,
        cluster: &str,
        association: &PodIdentityAssociation,
    ) -> ProviderResult<PodIdentityAssociation> {
        const OPERATION: &str = "CreatePodIdentityAssociation";
        let target = format!("Pod Identity association {}/{}", association.namespace, association.service_account);
        let out = self
            .eks
            .create_pod_identity_association()
            .cluster_name(cluster)
            .namespace(&association.namespace)
            .service_account(&association.service_account)
            .set_role_arn(association.role_arn.clone())
            .set_tags(Some(association.tags.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|e| provider_error(OPERATION, &target, e))?;
        from_sdk(OPERATION, out.association.ok_or_else(|| missing(OPERATION, &target, "association"))?)
    }

    async fn update_pod_identity_association(&self, cluster: &str, id: &str, role_arn: &str) -> ProviderResult<()> {
        self.eks
            .update_pod_identity_association()
            .cluster_name(cluster)
            .association_id(id)
            .role_arn(role_arn)
            .send()
            .await
            .map(drop)
            .map_err(|e| provider_error("UpdatePodIdentityAssociation", &format!("Pod Identity association {id}"), e))
    }

    async fn delete_pod_identity_association(&self, cluster: &str, id: &str) -> ProviderResult<()> {
        self.eks
            .delete_pod_identity_association()
            .cluster_name(cluster)
            .association_id(id)
            .send()
            .await
            .map(drop)
            .map_err(|e| provider_error("DeletePodIdentityAssociation", &format!("Pod Identity association {id}"), e))
    }
}
