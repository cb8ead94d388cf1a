//! What verify found: a verdict per link of each service account's chain,
//! as text (a table with the first failure's fix) and as versioned JSON.

use std::fmt;

use serde::Serialize;

/// One link of the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    Token,
    Issuer,
    Trust,
    Sts,
    S3,
}

impl Link {
    pub const ALL: [Link; 5] = [Link::Token, Link::Issuer, Link::Trust, Link::Sts, Link::S3];
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, not `write_str`: the text report aligns the names.
        f.pad(match self {
            Link::Token => "token",
            Link::Issuer => "issuer",
            Link::Trust => "trust",
            Link::Sts => "sts",
            Link::S3 => "s3",
        })
    }
}

/// How one link held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum Verdict {
    Pass {
        detail: String,
    },
    Fail {
        problem: String,
        fix: String,
    },
    /// Not checked: an earlier link failed.
    Skipped,
}

/// The chain for one service account of one tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    pub namespace: String,
    pub service_account: String,
    pub role: String,
    pub links: Vec<(Link, Verdict)>,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.links.iter().all(|(_, v)| matches!(v, Verdict::Pass { .. }))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub format_version: &'static str,
    pub cluster: String,
    pub checks: Vec<Check>,
    /// Service accounts never started: the run was interrupted.
    #[serde(skip_serializing_if = "is_zero")]
    pub not_checked: usize,
    /// Tenants on EKS Pod Identity: their chain (the Pod Identity agent,
    /// AssumeRoleForPodIdentity, session tags) is not checked yet, and the
    /// report says so rather than pass or fail them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pod_identity_not_verified: Vec<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Report {
    pub fn passed(&self) -> bool {
        self.not_checked == 0 && self.checks.iter().all(Check::passed)
    }
}

/// The report as text: a block per service account, a line per link.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenants: std::collections::BTreeSet<&str> = self.checks.iter().map(|c| c.namespace.as_str()).collect();
        let (accounts, tenants) = (self.checks.len(), tenants.len());
        let s = |n: usize| if n == 1 { "" } else { "s" };
        writeln!(f, "Verifying {accounts} service account{} of {tenants} tenant{} on cluster {}", s(accounts), s(tenants), self.cluster)?;
        for check in &self.checks {
            writeln!(f, "\n{}/{} (role {})", check.namespace, check.service_account, check.role)?;
            for (link, verdict) in &check.links {
                match verdict {
                    Verdict::Pass { detail } => writeln!(f, "  PASS  {link:<6}  {detail}")?,
                    Verdict::Fail { problem, fix } => writeln!(f, "  FAIL  {link:<6}  {problem}\n                fix: {fix}")?,
                    Verdict::Skipped => writeln!(f, "  SKIP  {link:<6}  (an earlier link failed)")?,
                }
            }
        }
        if self.not_checked > 0 {
            writeln!(f, "\nInterrupted: {} service accounts were not checked.", self.not_checked)?;
        }
        if !self.pod_identity_not_verified.is_empty() {
            writeln!(
                f,
                "\nNot verified: {} use{} EKS Pod Identity, whose chain verify does not check yet (it checks IRSA's: token, issuer, trust, STS, S3). \
                 Check by hand: aws eks list-pod-identity-associations --cluster-name {} --namespace <namespace>, then run a pod as the service account.",
                self.pod_identity_not_verified.join(", "),
                if self.pod_identity_not_verified.len() == 1 { "s" } else { "" },
                self.cluster
            )?;
        }
        let failed = self.checks.iter().filter(|c| !c.passed()).count();
        match failed {
            0 => writeln!(f, "\nEvery link holds for all {} service accounts.", self.checks.len()),
            n => writeln!(f, "\n{n} of {} service accounts cannot reach their artifacts.", self.checks.len()),
        }
    }
}
