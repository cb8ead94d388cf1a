//! A Profile owner's user in a Cognito pool: made when missing (and
//! recorded as kfp-tenant's in the identity record), never modified, deleted
//! only when the record says kfp-tenant made it.

use async_trait::async_trait;
use serde_json::json;

use super::{Attr, Cx, Resource, ignore_missing, malformed, text};
use crate::address::Address;
use crate::plan::{Action, CognitoUser, ResourceChange};
use crate::ports::{ErrorKind, ProviderError};
use crate::refresh::{Observed, ReadSet, UserReads};

#[async_trait]
impl Resource for CognitoUser {
    /// kfp-tenant records the users it creates in the identity record.
    fn dependencies(_address: &Address) -> Vec<Address> {
        vec![Address::ClusterIdentity]
    }

    fn label(&self) -> (&'static str, String) {
        ("cognito_user", format!("{}/{}", self.user_pool_id, self.email))
    }

    fn attributes(&self) -> Vec<(&'static str, Attr)> {
        let mut v = vec![
            ("user_pool_id", text(&self.user_pool_id)),
            ("email", text(&self.email)),
            ("email_verified", Attr::Json(json!(true))),
            ("created_by_kfp_tenant", Attr::Json(json!(self.created_by_kfp_tenant))),
        ];
        match &self.username {
            Some(name) => v.insert(1, ("username", text(name))),
            None => v.push(("invitation", text(if self.invite { "e-mailed by Cognito" } else { "suppressed" }))),
        }
        v
    }

    fn add_reads(&self, change: &ResourceChange, reads: &mut ReadSet) {
        let users = reads.cognito.get_or_insert_with(|| UserReads { user_pool_id: self.user_pool_id.clone(), ..Default::default() });
        users.emails.insert(self.email.clone());
        users.delete_users |= change.action == Action::Delete;
    }

    fn current(&self, observed: &Observed) -> Option<Self> {
        observed_user(observed, &self.user_pool_id, &self.email)
    }

    async fn execute(cx: &Cx<'_>, before: Option<&Self>, after: Option<&Self>) -> Result<(), ProviderError> {
        let (directory, kube) = (cx.providers.directory, cx.providers.kube);
        match (cx.change.action, before, after) {
            (Action::Create, _, Some(want)) => match directory.create_user(&want.user_pool_id, &want.email, want.invite).await {
                // Made since the plan, by someone else: used as it is, and not recorded as kfp-tenant's.
                Err(e) if e.kind == ErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(e),
                Ok(_) => kube.record_cognito_user(&want.user_pool_id, &want.email, true).await,
            },
            (Action::Delete, Some(live), _) => {
                if let Some(username) = &live.username {
                    ignore_missing(directory.delete_user(&live.user_pool_id, username).await)?;
                }
                kube.record_cognito_user(&live.user_pool_id, &live.email, false).await
            }
            _ => Err(malformed(cx.change)),
        }
    }
}

/// The Cognito user of `email` in `pool` as refresh found it (the first, if
/// the pool has several with that e-mail), and whether the identity record
/// says kfp-tenant created it.
pub(crate) fn observed_user(observed: &Observed, pool: &str, email: &str) -> Option<CognitoUser> {
    let user = observed.users.get(email)?.first()?;
    let key = (pool.to_owned(), email.to_owned());
    Some(CognitoUser {
        user_pool_id: pool.to_owned(),
        email: email.to_owned(),
        username: Some(user.username.clone()),
        created_by_kfp_tenant: observed.record.as_ref().is_some_and(|r| r.cognito_users.contains(&key)),
        invite: false,
    })
}
