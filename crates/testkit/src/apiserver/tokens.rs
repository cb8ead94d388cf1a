//! TokenRequest, as the API server answers it: a JWT signed with the
//! server's own key (ES256), carrying the claims Kubernetes puts in (`iss`,
//! `sub`, `aud`, `exp`, `iat`, `nbf`, and `kubernetes.io` with the namespace
//! and service account). The issuer is configured, so that a test can make
//! it the EKS cluster's OIDC issuer as an EKS control plane would.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

fn base64url(bytes: &[u8]) -> String {
    kfp_tenant_core::identity::base64_encode(bytes).trim_end_matches('=').replace('+', "-").replace('/', "_")
}

/// The server's service-account signing key.
pub struct Signer {
    key: EcdsaKeyPair,
    kid: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.kid)
    }
}

impl Signer {
    pub fn generate() -> Self {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("invariant: P-256 key generation works");
        let public = key.public_key().as_ref();
        let kid = base64url(&public[..public.len().min(16)]);
        Signer { key, kid }
    }

    pub fn sign(&self, claims: &Value) -> String {
        let header = base64url(json!({"alg": "ES256", "kid": self.kid}).to_string().as_bytes());
        let payload = base64url(claims.to_string().as_bytes());
        let input = format!("{header}.{payload}");
        let signature = self.key.sign(&SystemRandom::new(), input.as_bytes()).expect("invariant: signing works");
        format!("{input}.{}", base64url(signature.as_ref()))
    }
}

/// A JWT with these claims and no signature (`alg: none`), for the
/// in-memory fake, where nothing checks one.
pub fn jwt_unsigned(claims: &Value) -> String {
    let header = base64url(json!({"alg": "none"}).to_string().as_bytes());
    format!("{header}.{}.", base64url(claims.to_string().as_bytes()))
}

/// The TokenRequest answer for service account `name` (with `uid`) of `namespace`.
pub fn answer(signer: &Signer, issuer: &str, namespace: &str, name: &str, uid: &str, request: &Value) -> Value {
    let audiences: Vec<String> = request["spec"]["audiences"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| vec![issuer.to_owned()]);
    let lifetime = request["spec"]["expirationSeconds"].as_i64().unwrap_or(3600).max(600);
    let now = jiff::Timestamp::now().as_second();
    let claims = json!({
        "iss": issuer, "sub": format!("system:serviceaccount:{namespace}:{name}"), "aud": audiences,
        "exp": now + lifetime, "iat": now, "nbf": now,
        "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
    });
    let expiry = jiff::Timestamp::from_second(now + lifetime).map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_default();
    json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "metadata": {"name": name, "namespace": namespace},
        "spec": request["spec"], "status": {"token": signer.sign(&claims), "expirationTimestamp": expiry}})
}
