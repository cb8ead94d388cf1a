//! Cognito user pools in memory: [`FakeDirectory`], as moto plays them
//! (both kinds of pool: separate usernames, or e-mails as usernames).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kfp_tenant_core::ports::{DirectoryUser, ErrorKind, ProviderError, ProviderResult, UserDirectoryApi};

use crate::faults::{Calls, Faults, Meter};
use crate::lock;

/// A pool: whether its usernames are e-mails, and its users.
type Pool = (bool, Vec<DirectoryUser>);

/// The owners' user pools.
#[derive(Clone, Debug)]
pub struct FakeDirectory {
    meter: Meter,
    /// By pool id.
    pools: Arc<Mutex<BTreeMap<String, Pool>>>,
}

impl FakeDirectory {
    pub fn new(calls: Calls) -> Self {
        FakeDirectory { meter: Meter::new(calls, Faults::default()), pools: Arc::default() }
    }

    pub fn set_faults(&self, faults: Faults) {
        self.meter.set_faults(faults);
    }

    /// Adds a Cognito user pool; with `email_usernames` its usernames are
    /// e-mails (`UsernameAttributes=[email]`) and Cognito names users by a UUID.
    pub fn add_user_pool(&self, id: &str, email_usernames: bool) {
        lock(&self.pools).insert(id.to_owned(), (email_usernames, Vec::new()));
    }

    /// Adds a user behind the tool's back.
    pub fn add_user(&self, pool: &str, username: &str, email: &str) {
        if let Some((_, users)) = lock(&self.pools).get_mut(pool) {
            users.push(DirectoryUser { username: username.to_owned(), email: email.to_owned(), status: Some("CONFIRMED".to_owned()) });
        }
    }

    /// The users of a pool.
    pub fn users(&self, pool: &str) -> Vec<DirectoryUser> {
        lock(&self.pools).get(pool).map(|(_, users)| users.clone()).unwrap_or_default()
    }
}

fn no_pool(op: &str, pool: &str) -> ProviderError {
    ProviderError::new(ErrorKind::NotFound, op, format!("user pool {pool}"), format!("User pool {pool} does not exist."))
}

/// Cognito as moto plays it: ListUsers by e-mail, AdminCreateUser under the
/// e-mail (a UUID username where usernames are e-mails), AdminDeleteUser.
#[async_trait]
impl UserDirectoryApi for FakeDirectory {
    async fn find_users(&self, pool: &str, email: &str) -> ProviderResult<Vec<DirectoryUser>> {
        self.meter.enter("ListUsers", pool).await?;
        let pools = lock(&self.pools);
        let (_, users) = pools.get(pool).ok_or_else(|| no_pool("ListUsers", pool))?;
        Ok(users.iter().filter(|u| u.email == email).cloned().collect())
    }

    async fn create_user(&self, pool: &str, email: &str, _invite: bool) -> ProviderResult<DirectoryUser> {
        self.meter.enter("AdminCreateUser", email).await?;
        let mut pools = lock(&self.pools);
        let (email_usernames, users) = pools.get_mut(pool).ok_or_else(|| no_pool("AdminCreateUser", pool))?;
        let taken = users.iter().any(|u| u.username == email || (*email_usernames && u.email == email));
        if taken {
            return Err(ProviderError::new(ErrorKind::AlreadyExists, "AdminCreateUser", email, "User account already exists"));
        }
        let username = if *email_usernames { format!("{:08x}-fake-uuid-{}", users.len(), users.len()) } else { email.to_owned() };
        let user = DirectoryUser { username, email: email.to_owned(), status: Some("FORCE_CHANGE_PASSWORD".to_owned()) };
        users.push(user.clone());
        Ok(user)
    }

    async fn delete_user(&self, pool: &str, username: &str) -> ProviderResult<()> {
        self.meter.enter("AdminDeleteUser", username).await?;
        let mut pools = lock(&self.pools);
        let (_, users) = pools.get_mut(pool).ok_or_else(|| no_pool("AdminDeleteUser", pool))?;
        let before = users.len();
        users.retain(|u| u.username != username);
        if users.len() == before {
            return Err(ProviderError::new(ErrorKind::NotFound, "AdminDeleteUser", username, "User does not exist."));
        }
        Ok(())
    }
}
