//! [`IamApi`] on IAM: roles with their tags, inline policies, kfp-tenant's
//! roles found by ListRoles and the description core writes, OIDC providers.

use std::collections::BTreeMap;

use async_trait::async_trait;
use kfp_tenant_core::policy::PolicyDocument;
use kfp_tenant_core::ports::{ErrorKind, IamApi, OidcProviderDetails, ProviderError, ProviderResult, Role, RoleDetail, RoleListing};

use crate::errors::{decode_document, missing, provider_error};
use crate::{Aws, account};

pub(crate) fn tag(key: &str, value: &str) -> ProviderResult<aws_sdk_iam::types::Tag> {
    aws_sdk_iam::types::Tag::builder()
        .key(key)
        .value(value)
        .build()
        .map_err(|e| ProviderError::new(ErrorKind::InvalidInput, "Tag", key, e.to_string()))
}

fn role_from_sdk(operation: &str, role: aws_sdk_iam::types::Role) -> ProviderResult<Role> {
    let target = format!("role {}", role.role_name);
    let trust = role.assume_role_policy_document.as_deref().ok_or_else(|| missing(operation, &target, "AssumeRolePolicyDocument"))?;
    Ok(Role {
        trust_policy: decode_document(operation, &target, trust)?,
        name: role.role_name,
        path: role.path,
        arn: role.arn,
        description: role.description.filter(|d| !d.is_empty()),
        tags: role.tags.unwrap_or_default().into_iter().map(|t| (t.key, t.value)).collect(),
        max_session_duration: role.max_session_duration.and_then(|s| u32::try_from(s).ok()).unwrap_or(3600),
        permissions_boundary: role.permissions_boundary.and_then(|b| b.permissions_boundary_arn),
    })
}

#[async_trait]
impl IamApi for Aws {
    async fn get_role(&self, name: &str) -> ProviderResult<Option<Role>> {
        let target = format!("role {name}");
        match self.iam.get_role().role_name(name).send().await {
            Ok(out) => out.role.map(|r| role_from_sdk("GetRole", r)).transpose(),
            Err(e) => match provider_error("GetRole", &target, e) {
                e if e.kind == ErrorKind::NotFound => Ok(None),
                e => Err(e),
            },
        }
    }

    async fn create_role(&self, role: &Role) -> ProviderResult<Role> {
        let target = format!("role {}", role.name);
        let tags = role.tags.iter().map(|(k, v)| tag(k, v)).collect::<ProviderResult<Vec<_>>>()?;
        let out = self
            .iam
            .create_role()
            .role_name(&role.name)
            .path(&role.path)
            .assume_role_policy_document(role.trust_policy.to_compact_json())
            .set_description(role.description.clone())
            .max_session_duration(i32::try_from(role.max_session_duration).unwrap_or(3600))
            .set_permissions_boundary(role.permissions_boundary.clone())
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| provider_error("CreateRole", &target, e))?;
        role_from_sdk("CreateRole", out.role.ok_or_else(|| missing("CreateRole", &target, "Role"))?)
    }

    async fn update_trust_policy(&self, name: &str, document: &PolicyDocument) -> ProviderResult<()> {
        let target = format!("role {name}");
        self.iam
            .update_assume_role_policy()
            .role_name(name)
            .policy_document(document.to_compact_json())
            .send()
            .await
            .map(drop)
            .map_err(|e| provider_error("UpdateAssumeRolePolicy", &target, e))
    }

    async fn update_role(&self, name: &str, description: Option<&str>, max_session_duration: u32) -> ProviderResult<()> {
        let target = format!("role {name}");
        self.iam
            .update_role()
            .role_name(name)
            .description(description.unwrap_or_default())
            .max_session_duration(i32::try_from(max_session_duration).unwrap_or(3600))
            .send()
            .await
            .map(drop)
            .map_err(|e| provider_error("UpdateRole", &target, e))
    }

    async fn set_permissions_boundary(&self, name: &str, arn: Option<&str>) -> ProviderResult<()> {
        let target = format!("role {name}");
        match arn {
            Some(arn) => self
                .iam
                .put_role_permissions_boundary()
                .role_name(name)
                .permissions_boundary(arn)
                .send()
                .await
                .map(drop)
                .map_err(|e| provider_error("PutRolePermissionsBoundary", &target, e)),
            None => self
                .iam
                .delete_role_permissions_boundary()
                .role_name(name)
                .send()
                .await
                .map(drop)
                .map_err(|e| provider_error("DeleteRolePermissionsBoundary", &target, e)),
        }
    }

    async fn tag_role(&self, name: &str, tags: &BTreeMap<String, String>) -> ProviderResult<()> {
        let target = format!("role {name}");
        let tags = tags.iter().map(|(k, v)| tag(k, v)).collect::<ProviderResult<Vec<_>>>()?;
        self.iam.tag_role().role_name(name).set_tags(Some(tags)).send().await.map(drop).map_err(|e| provider_error("TagRole", &target, e))
    }

    async fn untag_role(&self, name: &str, keys: &[String]) -> ProviderResult<()> {
        let target = format!("role {name}");
        self.iam
            .untag_role()
            .role_name(name)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .await
            .map(drop)
            .map_err(|e| provider_error("UntagRole", &target, e))
    }

    async fn delete_role(&self, name: &str) -> ProviderResult<()> {
        let target = format!("role {name}");
        self.iam.delete_role().role_name(name).send().await.map(drop).map_err(|e| {
            let mut err = provider_error("DeleteRole", &target, e);
            if err.kind == ErrorKind::Conflict {
                err.message =
                    format!(
                    "{}; the role still carries something IAM removes first: a policy put there since the plan was made (run plan again: a tenant's role carries only the file's permissions, and the new plan removes it) or an instance profile (remove the role from it: aws iam remove-role-from-instance-profile)",
                    err.message
                );
            }
            err
        })
    }

    async fn get_role_policy(&self, role: &str, policy: &str) -> ProviderResult<Option<PolicyDocument>> {
        let target = format!("role {role}");
        match self.iam.get_role_policy().role_name(role).policy_name(policy).send().await {
            Ok(out) => decode_document("GetRolePolicy", &target, &out.policy_document).map(Some),
            Err(e) => match provider_error("GetRolePolicy", &target, e) {
                e if e.kind == ErrorKind::NotFound => Ok(None),
                e => Err(e),
            },
        }
    }

    async fn put_role_policy(&self, role: &str, policy: &str, document: &PolicyDocument) -> ProviderResult<()> {
        let target = format!("role {role}");
        self.iam
            .put_role_policy()
            .role_name(role)
            .policy_name(policy)
            .policy_document(document.to_compact_json())
            .send()
            .await
            .map(drop)
            .map_err(|e| provider_error("PutRolePolicy", &target, e))
    }

    async fn delete_role_policy(&self, role: &str, policy: &str) -> ProviderResult<()> {
        let target = format!("role {role}");
        self.iam
            .delete_role_policy()
            .role_name(role)
            .policy_name(policy)
            .send()
            .await
            .map(drop)
            .map_err(|e| provider_error("DeleteRolePolicy", &target, e))
    }

    async fn list_role_policies(&self, role: &str) -> ProviderResult<Vec<String>> {
        let target = format!("role {role}");
        let mut pages = self.iam.list_role_policies().role_name(role).max_items(self.page_size).into_paginator().send();
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            match page.map_err(|e| provider_error("ListRolePolicies", &target, e)) {
                Ok(page) => names.extend(page.policy_names),
                Err(e) if e.kind == ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        }
        Ok(names)
    }

    async fn list_attached_role_policies(&self, role: &str) -> ProviderResult<Vec<String>> {
        let target = format!("role {role}");
        let mut pages = self.iam.list_attached_role_policies().role_name(role).max_items(self.page_size).into_paginator().send();
        let mut arns = Vec::new();
        while let Some(page) = pages.next().await {
            match page.map_err(|e| provider_error("ListAttachedRolePolicies", &target, e)) {
                Ok(page) => arns.extend(page.attached_policies.unwrap_or_default().into_iter().filter_map(|p| p.policy_arn)),
                Err(e) if e.kind == ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        }
        Ok(arns)
    }

    async fn attach_role_policy(&self, role: &str, policy_arn: &str) -> ProviderResult<()> {
        let target = format!("role {role} policy {policy_arn}");
        self.iam
            .attach_role_policy()
            .role_name(role)
            .policy_arn(policy_arn)
            .send()
            .await
            .map(drop)
            .map_err(|e| provider_error("AttachRolePolicy", &target, e))
    }

    async fn detach_role_policy(&self, role: &str, policy_arn: &str) -> ProviderResult<()> {
        let target = format!("role {role} policy {policy_arn}");
        self.iam
            .detach_role_policy()
            .role_name(role)
            .policy_arn(policy_arn)
            .send()
            .await
            .map(drop)
            .map_err(|e| provider_error("DetachRolePolicy", &target, e))
    }

    async fn account_roles(&self) -> ProviderResult<Vec<RoleDetail>> {
        account::roles(&self.iam, self.page_size).await
    }

    async fn list_roles(&self, path_prefix: &str) -> ProviderResult<Vec<RoleListing>> {
        account::listings(&self.iam, path_prefix, self.page_size).await
    }

    async fn role_count(&self) -> ProviderResult<u64> {
        account::role_count(&self.iam).await
    }

    async fn get_oidc_provider(&self, arn: &str) -> ProviderResult<Option<OidcProviderDetails>> {
        let target = format!("OIDC provider {arn}");
        match self.iam.get_open_id_connect_provider().open_id_connect_provider_arn(arn).send().await {
            Ok(out) => Ok(Some(OidcProviderDetails {
                url: out.url.unwrap_or_default(),
                client_ids: out.client_id_list.unwrap_or_default(),
                thumbprints: out.thumbprint_list.unwrap_or_default(),
            })),
            Err(e) => match provider_error("GetOpenIDConnectProvider", &target, e) {
                e if e.kind == ErrorKind::NotFound => Ok(None),
                e => Err(e),
            },
        }
    }
}
