//! [`UserDirectoryApi`] on aws-sdk-cognitoidentityprovider: the Profiles'
//! owners as users of a Cognito user pool. A pool id starts with its region
//! (`us-west-2_aBcDeFgHi`), so each call goes to that region, whatever the
//! cluster's. Users are found by their `email` attribute, which works both
//! where usernames are e-mails (Cognito then names users by a UUID) and
//! where they are separate; kfp-tenant creates users under their e-mail.

use async_trait::async_trait;
use aws_sdk_cognitoidentityprovider::types::{AttributeType, MessageActionType, UserType};
use kfp_tenant_core::ports::{DirectoryUser, ProviderResult, UserDirectoryApi};

use crate::Aws;
use crate::errors::{missing, provider_error};

impl Aws {
    /// A Cognito client for the region the pool id names.
    fn cognito(&self, pool: &str) -> aws_sdk_cognitoidentityprovider::Client {
        let region = pool.split_once('_').map_or(self.region.as_str(), |(region, _)| region);
        let config = aws_sdk_cognitoidentityprovider::config::Builder::from(&self.sdk)
            .region(aws_types::region::Region::new(region.to_owned()))
            .interceptor(self.counter.clone())
            .build();
        aws_sdk_cognitoidentityprovider::Client::from_conf(config)
    }
}

fn attribute(attributes: &[AttributeType], name: &str) -> Option<String> {
    attributes.iter().find(|a| a.name == name).and_then(|a| a.value.clone())
}

fn from_sdk(operation: &str, user: UserType, email: &str) -> ProviderResult<DirectoryUser> {
    let attributes = user.attributes.unwrap_or_default();
    Ok(DirectoryUser {
        username: user.username.ok_or_else(|| missing(operation, email, "Username"))?,
        email: attribute(&attributes, "email").unwrap_or_else(|| email.to_owned()),
        status: user.user_status.map(|s| s.as_str().to_owned()),
    })
}

/// A filter value as ListUsers reads it: a quoted string, `"` and `\\` escaped.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

#[async_trait]
impl UserDirectoryApi for Aws {
    async fn find_users(&self, pool: &str, email: &str) -> ProviderResult<Vec<DirectoryUser>> {
        const OPERATION: &str = "ListUsers";
        let target = format!("Cognito user pool {pool}");
        let filter = format!("email = {}", quoted(email));
        let mut pages = self.cognito(pool).list_users().user_pool_id(pool).filter(filter).into_paginator().send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| provider_error(OPERATION, &target, e))?;
            for user in page.users.unwrap_or_default() {
                let user = from_sdk(OPERATION, user, email)?;
                // The filter is exact in Cognito; moto's may be looser. Only this e-mail counts.
                if user.email == email {
                    found.push(user);
                }
            }
        }
        Ok(found)
    }

    async fn create_user(&self, pool: &str, email: &str, invite: bool) -> ProviderResult<DirectoryUser> {
        const OPERATION: &str = "AdminCreateUser";
        let attribute =
            |name: &str, value: &str| AttributeType::builder().name(name).value(value).build().expect("invariant: the name is set");
        let mut request = self
            .cognito(pool)
            .admin_create_user()
            .user_pool_id(pool)
            .username(email)
            .user_attributes(attribute("email", email))
            .user_attributes(attribute("email_verified", "true"))
            .desired_delivery_mediums(aws_sdk_cognitoidentityprovider::types::DeliveryMediumType::Email);
        if !invite {
            request = request.message_action(MessageActionType::Suppress);
        }
        let out = request.send().await.map_err(|e| provider_error(OPERATION, &format!("Cognito user {email} in {pool}"), e))?;
        from_sdk(OPERATION, out.user.ok_or_else(|| missing(OPERATION, email, "User"))?, email)
    }

    async fn delete_user(&self, pool: &str, username: &str) -> ProviderResult<()> {
        self.cognito(pool)
            .admin_delete_user()
            .user_pool_id(pool)
            .username(username)
            .send()
            .await
            .map(drop)
            .map_err(|e| provider_error("AdminDeleteUser", &format!("Cognito user {username} in {pool}"), e))
    }
}
