//! The whole account's roles in few calls: GetAccountAuthorizationDetails
//! with `Filter=Role` pages up to 1,000 roles with their trust policies,
//! tags and inline policies (documents URL-encoded), where ListRoles would
//! need a GetRole per role for the tags and a GetRolePolicy per policy.

use aws_sdk_iam::types::{EntityType, RoleDetail as SdkRoleDetail, SummaryKeyType};
use kfp_tenant_core::ports::{InlinePolicy, ProviderResult, RoleDetail, RoleListing};

use crate::errors::{decode_document, missing, provider_error};

const OPERATION: &str = "GetAccountAuthorizationDetails";

/// Every role of the account, page by page (`page_size` roles a call).
pub(crate) async fn roles(iam: &aws_sdk_iam::Client, page_size: i32) -> ProviderResult<Vec<RoleDetail>> {
    let mut pages = iam.get_account_authorization_details().filter(EntityType::Role).max_items(page_size).into_paginator().send();
    let mut roles = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| provider_error(OPERATION, "the account's roles", e))?;
        for role in page.role_detail_list.unwrap_or_default() {
            roles.push(role_detail(role)?);
        }
    }
    Ok(roles)
}

fn role_detail(role: SdkRoleDetail) -> ProviderResult<RoleDetail> {
    let name = role.role_name.ok_or_else(|| missing(OPERATION, "a role", "RoleName"))?;
    let target = format!("role {name}");
    let trust = role.assume_role_policy_document.ok_or_else(|| missing(OPERATION, &target, "AssumeRolePolicyDocument"))?;
    let mut inline_policies = Vec::new();
    for policy in role.role_policy_list.unwrap_or_default() {
        let policy_name = policy.policy_name.ok_or_else(|| missing(OPERATION, &target, "PolicyName"))?;
        let document = policy.policy_document.ok_or_else(|| missing(OPERATION, &target, "PolicyDocument"))?;
        let document = decode_document(OPERATION, &format!("{target} policy {policy_name}"), &document)?;
        inline_policies.push(InlinePolicy { role_name: name.clone(), policy_name, document });
    }
    Ok(RoleDetail {
        trust_policy: decode_document(OPERATION, &target, &trust)?,
        path: role.path.unwrap_or_else(|| "/".to_owned()),
        arn: role.arn.ok_or_else(|| missing(OPERATION, &target, "Arn"))?,
        tags: role.tags.unwrap_or_default().into_iter().map(|t| (t.key, t.value)).collect(),
        inline_policies,
        attached_policies: role.attached_managed_policies.unwrap_or_default().into_iter().filter_map(|p| p.policy_arn).collect(),
        permissions_boundary: role.permissions_boundary.and_then(|b| b.permissions_boundary_arn),
        name,
    })
}

/// Every role under `path_prefix` as ListRoles pages them (`page_size` a call).
pub(crate) async fn listings(iam: &aws_sdk_iam::Client, path_prefix: &str, page_size: i32) -> ProviderResult<Vec<RoleListing>> {
    let mut pages = iam.list_roles().path_prefix(path_prefix).max_items(page_size).into_paginator().send();
    let mut roles = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| provider_error("ListRoles", path_prefix, e))?;
        roles.extend(page.roles.into_iter().map(|r| RoleListing {
            description: r.description.filter(|d| !d.is_empty()),
            max_session_duration: r.max_session_duration.and_then(|s| u32::try_from(s).ok()).unwrap_or(3600),
            name: r.role_name,
            path: r.path,
            arn: r.arn,
        }));
    }
    Ok(roles)
}

/// GetAccountSummary's `Roles`.
pub(crate) async fn role_count(iam: &aws_sdk_iam::Client) -> ProviderResult<u64> {
    let out = iam.get_account_summary().send().await.map_err(|e| provider_error("GetAccountSummary", "the account", e))?;
    let roles = out.summary_map.unwrap_or_default().get(&SummaryKeyType::Roles).copied().unwrap_or(0);
    Ok(u64::try_from(roles).unwrap_or(0))
}
