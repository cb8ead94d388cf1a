//! Which cluster a run talks to: the rule that binds the Kubernetes API of a
//! run to the EKS cluster its tenants file names, before anything is listed
//! or written.
//!
//! The evidence, strongest first:
//! 1. kfp-tenant's identity record in the cluster (ConfigMap
//!    `kube-system/kfp-tenant-cluster`, written by the first apply) names
//!    the cluster's ARN. A record naming another cluster is a refusal, even
//!    when everything else looks right.
//! 2. The client was built from DescribeCluster itself (`--eks-auth`).
//! 3. The kubeconfig's server and CA are DescribeCluster's `endpoint` and
//!    `certificateAuthority`.
//! 4. The operator vouches for it (`--bind-cluster`): for clusters reached
//!    through a proxy or a private alias, where 3 cannot hold, and the
//!    record does not exist yet.
//!
//! Without any of them the run is refused, naming both clusters. Once
//! proven, apply writes the record where there is none, so later runs
//! through any address are checked against it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ports::{ClusterRecord, EksCluster, KubeEndpoint};

/// How the Kubernetes API was shown to be the file's cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Proof {
    Record,
    EksAuth,
    Endpoint,
    /// `--bind-cluster`: the operator's word; the record is written next.
    Vouched,
}

impl Proof {
    pub fn describe(self) -> &'static str {
        match self {
            Proof::Record => "its kfp-tenant identity record names the cluster",
            Proof::EksAuth => "the client was made from the cluster's EKS description (--eks-auth)",
            Proof::Endpoint => "the kubeconfig's server and CA are the cluster's EKS endpoint and CA",
            Proof::Vouched => "--bind-cluster says so",
        }
    }
}

/// The Kubernetes API is not (shown to be) the file's cluster.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WrongCluster {
    #[error(
        "the Kubernetes API {server}{context} is not EKS cluster {cluster} ({arn}): its kfp-tenant identity record (ConfigMap kube-system/kfp-tenant-cluster) names {recorded}; select the kubeconfig context of {cluster} with --context (or --kubeconfig), or set `cluster:` in the tenants file to the cluster you mean"
    )]
    RecordNamesAnother { server: String, context: String, cluster: String, arn: String, recorded: String },
    #[error(
        "cannot tell that the Kubernetes API {server}{context} is EKS cluster {cluster} ({arn}): EKS gives its endpoint as {endpoint}{ca}, and the cluster has no kfp-tenant identity record yet; select the kubeconfig context of {cluster} with --context (or use --eks-auth), or, if this API is {cluster} behind a proxy or a private alias, vouch for it once with --bind-cluster (apply then records it)"
    )]
    Unproven { server: String, context: String, cluster: String, arn: String, endpoint: String, ca: &'static str },
}

/// Applies the rule of the module docs.
pub fn prove(eks: &EksCluster, kube: &KubeEndpoint, record: Option<&ClusterRecord>, vouched: bool) -> Result<Proof, Box<WrongCluster>> {
    let context = kube.context.as_ref().map(|c| format!(" (context {c})")).unwrap_or_default();
    let name = eks.arn.rsplit('/').next().unwrap_or(&eks.arn).to_owned();
    if let Some(record) = record {
        if record.cluster_arn == eks.arn {
            return Ok(Proof::Record);
        }
        return Err(Box::new(WrongCluster::RecordNamesAnother {
            server: kube.server.clone(),
            context,
            cluster: name,
            arn: eks.arn.clone(),
            recorded: record.cluster_arn.clone(),
        }));
    }
    if kube.from_eks {
        return Ok(Proof::EksAuth);
    }
    let same_server = same_url(&kube.server, &eks.endpoint);
    let same_ca = match (&kube.certificate_authority, &eks.certificate_authority) {
        (Some(pem), Some(b64)) => same_certificate(pem, b64),
        _ => false,
    };
    if same_server && same_ca {
        return Ok(Proof::Endpoint);
    }
    if vouched {
        return Ok(Proof::Vouched);
    }
    Err(Box::new(WrongCluster::Unproven {
        server: kube.server.clone(),
        context,
        cluster: name,
        arn: eks.arn.clone(),
        endpoint: eks.endpoint.clone(),
        ca: if same_server { " with another CA" } else { "" },
    }))
}

/// URLs equal but for case, a trailing slash and the default port.
fn same_url(a: &str, b: &str) -> bool {
    let norm = |u: &str| {
        let u = u.trim().trim_end_matches('/').to_ascii_lowercase();
        u.strip_suffix(":443").map(str::to_owned).unwrap_or(u)
    };
    norm(a) == norm(b)
}

/// The certificates a kubeconfig trusts (PEM) against EKS's (base64 of PEM):
/// equal when the DER bodies are, whatever the line breaks.
fn same_certificate(pem: &str, eks_b64: &str) -> bool {
    let body = |pem: &str| -> String {
        pem.lines().filter(|l| !l.starts_with("-----")).flat_map(|l| l.chars()).filter(|c| !c.is_whitespace()).collect()
    };
    let Some(decoded) = base64_decode(eks_b64) else { return false };
    let eks_pem = String::from_utf8_lossy(&decoded).into_owned();
    let (ours, theirs) = (body(pem), body(&eks_pem));
    !ours.is_empty() && ours == theirs
}

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64, whitespace ignored; `None` when it is not base64.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        let v = match c {
            'A'..='Z' => c as u32 - 'A' as u32,
            'a'..='z' => c as u32 - 'a' as u32 + 26,
            '0'..='9' => c as u32 - '0' as u32 + 52,
            '+' | '-' => 62,
            '/' | '_' => 63,
            '=' => break,
            _ => return None,
        };
        bits = (bits << 6) | v;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

impl fmt::Display for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::ClusterOidc;

    const ARN: &str = "arn:aws:eks:us-west-2:123456789012:cluster/demo";
    const PEM: &str = "-----BEGIN CERTIFICATE-----\nTUlJQg==\n-----END CERTIFICATE-----\n";

    fn eks() -> EksCluster {
        EksCluster {
            arn: ARN.into(),
            endpoint: "https://ABC.gr7.us-west-2.eks.amazonaws.com".into(),
            // base64 of PEM, as EKS gives it.
            certificate_authority: Some("LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tClRVbEpRZz09Ci0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K".into()),
            oidc: ClusterOidc { issuer_url: "https://oidc.example/id/X".into(), provider_arn: None },
        }
    }

    fn kube(server: &str, ca: Option<&str>) -> KubeEndpoint {
        KubeEndpoint { server: server.into(), certificate_authority: ca.map(str::to_owned), context: Some("ctx".into()), from_eks: false }
    }

    /// One line per case: what the run sees, and the verdict.
    fn check(kube: KubeEndpoint, record: Option<&str>, vouched: bool, expected: Result<Proof, &str>) {
        let record = record.map(|arn| ClusterRecord { cluster_arn: arn.into(), ..Default::default() });
        let got = prove(&eks(), &kube, record.as_ref(), vouched).map_err(|e| match *e {
            WrongCluster::RecordNamesAnother { .. } => "record names another",
            WrongCluster::Unproven { .. } => "unproven",
        });
        assert_eq!(got, expected);
    }

    #[test]
    fn the_rule() {
        let eks_server = "https://abc.gr7.us-west-2.eks.amazonaws.com:443/";
        check(kube(eks_server, Some(PEM)), None, false, Ok(Proof::Endpoint));
        check(kube(eks_server, Some("-----BEGIN CERTIFICATE-----\nT3RoZXI=\n-----END CERTIFICATE-----")), None, false, Err("unproven"));
        check(kube(eks_server, None), None, false, Err("unproven"));
        check(kube("https://proxy.internal", Some(PEM)), None, false, Err("unproven"));
        check(kube("https://proxy.internal", Some(PEM)), None, true, Ok(Proof::Vouched));
        check(kube("https://proxy.internal", None), Some(ARN), false, Ok(Proof::Record));
        check(kube(eks_server, Some(PEM)), Some("arn:aws:eks:us-west-2:123456789012:cluster/other"), true, Err("record names another"));
        let mut from_eks = kube("https://anything", None);
        from_eks.from_eks = true;
        check(from_eks, None, false, Ok(Proof::EksAuth));
    }

    #[test]
    fn base64_round_trips() {
        for text in ["", "a", "ab", "abc", "abcd", "certificate bytes \u{0}\u{ff}"] {
            let encoded = base64_encode(text.as_bytes());
            assert_eq!(base64_decode(&encoded).as_deref(), Some(text.as_bytes()), "{encoded}");
        }
        assert_eq!(base64_encode(b"abcd"), "YWJjZA==");
    }

    #[test]
    fn a_refusal_names_both_clusters_and_the_fix() {
        let record = ClusterRecord { cluster_arn: "arn:aws:eks:us-west-2:123456789012:cluster/other".into(), ..Default::default() };
        let err = prove(&eks(), &kube("https://127.0.0.1:6443", None), Some(&record), false).unwrap_err().to_string();
        assert!(err.contains("is not EKS cluster demo (arn:aws:eks:us-west-2:123456789012:cluster/demo)"), "{err}");
        assert!(err.contains("names arn:aws:eks:us-west-2:123456789012:cluster/other") && err.contains("--context"), "{err}");
    }
}
