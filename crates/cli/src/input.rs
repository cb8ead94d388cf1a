//! Where the tenants come from: a tenants file, or one tenant from flags that
//! fall back to the seed page's environment variables.

use std::path::Path;

use anyhow::{Context, Result, bail};
use kfp_tenant_core::spec::{Desired, TenantInput, TenantsFile};
use kfp_tenant_core::validate::{self, unknown_targets};

use crate::request::Tenants;

const FLAG_ENV: [(&str, &str); 5] = [
    ("cluster", "CLUSTER_NAME"),
    ("region", "CLUSTER_REGION"),
    ("bucket", "S3_BUCKET"),
    ("namespace", "PROFILE_NAMESPACE"),
    ("owner", "PROFILE_USER"),
];

impl Tenants {
    fn flags(&self) -> [(&'static str, Option<&String>); 5] {
        [
            ("cluster", self.cluster.as_ref()),
            ("region", self.region.as_ref()),
            ("bucket", self.bucket.as_ref()),
            ("namespace", self.namespace.as_ref()),
            ("owner", self.owner.as_ref()),
        ]
    }

    /// The tenants file as written, from the file or from flags.
    pub fn read(&self) -> Result<TenantsFile> {
        if let Some(path) = &self.file {
            let given: Vec<String> = self.flags().iter().filter(|(_, v)| v.is_some()).map(|(f, _)| format!("--{f}")).collect();
            if !given.is_empty() {
                bail!("{} cannot be combined with -f: put the values in the tenants file", given.join(", "));
            }
            return read_file(path);
        }
        // Flags first, then the page's environment variables.
        let mut values = Vec::new();
        let mut missing = Vec::new();
        for ((flag, value), (_, env)) in self.flags().into_iter().zip(FLAG_ENV) {
            match value.cloned().or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty())) {
                Some(v) => values.push(v),
                None => {
                    missing.push(format!("--{flag} (or {env})"));
                    values.push(String::new());
                }
            }
        }
        if !missing.is_empty() {
            bail!("no tenants file (-f FILE) and no tenant from flags: missing {}", missing.join(", "));
        }
        let [cluster, region, bucket, namespace, owner]: [String; 5] = values.try_into().expect("invariant: five flags");
        Ok(TenantsFile {
            cluster,
            region,
            bucket,
            tenants: vec![TenantInput { namespace, owner, ..Default::default() }],
            ..Default::default()
        })
    }

    /// Read, validated, and narrowed to `--target`.
    pub fn desired(&self) -> Result<Desired> {
        let file = self.read()?;
        let desired = validate::validate(&file)?;
        let unknown = unknown_targets(&desired, &self.target);
        if !unknown.is_empty() {
            bail!("--target {}: no such tenant in the input", unknown.join(", "));
        }
        Ok(kfp_tenant_core::plan::target(&desired, &self.target))
    }
}

/// The tenants file at `path`, or on standard input for `-` (as kubectl's
/// `-f -`).
pub fn read_file(path: &Path) -> Result<TenantsFile> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("cannot read the tenants file from standard input")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read the tenants file {}", path.display()))?
    };
    let name = if path == Path::new("-") { "standard input".to_owned() } else { path.display().to_string() };
    parse(&text).with_context(|| format!("{name} is not a valid tenants file"))
}

/// YAML (JSON is YAML too); unknown fields are errors that name their path.
/// A file of nothing but comments and blank lines says so, rather than
/// that `cluster` is missing.
pub fn parse(text: &str) -> Result<TenantsFile> {
    let empty = text.lines().map(str::trim).all(|l| l.is_empty() || l.starts_with('#') || l == "---" || l == "...");
    if empty {
        bail!(
            "the file is empty; a tenants file names cluster, region and bucket, and lists tenants (examples/tenants.yaml is one, `kfp-tenant schema` describes every field)"
        );
    }
    let file: TenantsFile = serde_yaml_ng::from_str(text).map_err(|e| {
        let text = e.to_string();
        match text.starts_with("missing field") {
            true => anyhow::anyhow!("{text}: a tenants file names cluster, region and bucket (`kfp-tenant schema` describes every field)"),
            false => e.into(),
        }
    })?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_says_it_is_empty_and_a_missing_field_what_a_file_needs() {
        for empty in ["", "\n\n", "# nothing yet\n", "---\n# tenants\n"] {
            let err = parse(empty).unwrap_err().to_string();
            assert!(err.starts_with("the file is empty; a tenants file names cluster, region and bucket"), "{empty:?}: {err}");
        }
        let err = parse("region: us-west-2\nbucket: b\n").unwrap_err().to_string();
        assert!(err.starts_with("missing field `cluster`") && err.contains("names cluster, region and bucket"), "{err}");
    }

    #[test]
    fn unknown_fields_name_their_path() {
        let err = parse("cluster: c\nregion: us-west-2\nbucket: b\ntenants:\n  - namespace: a\n    ownr: x@example.com\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "tenants[0]: unknown field `ownr`, expected one of `namespace`, `owner`, `roleName`, `rolePath`, `identity`, `serviceAccounts`, `s3Access`, `s3Prefix`, `resourceQuota`, `tags`, `managedPolicies`, `permissionsBoundary`, `maxSessionDuration`, `pipelineConfig`, `pipelineRoot` at line 6 column 5"
        );
        let err = parse("cluster: c\nregion: us-west-2\nbucket: b\ndefaults: {s3Acess: full}\n").unwrap_err();
        assert!(err.to_string().starts_with("defaults: unknown field `s3Acess`"), "{err}");
    }

    #[test]
    fn the_issue_example_parses() {
        let file = parse(
            r#"
cluster: my-cluster
region: us-west-2
bucket: my-kfp-artifacts
defaults:
  s3Access: scoped
  serviceAccounts: [default-editor]
  rolePath: /
  tags: {team: ml}
tenants:
  - namespace: team-a
    owner: alice@example.com
  - namespace: team-b
    owner: bob@example.com
    roleName: team-b-pipelines
    s3Access: prefix
    s3Prefix: private-artifacts/team-b/
    serviceAccounts: [default-editor, pipeline-runner]
    resourceQuota: {hard: {cpu: "8", memory: 16Gi}}
"#,
        )
        .unwrap();
        let desired = validate::validate(&file).unwrap();
        assert_eq!(desired.tenants[1].role_name, "team-b-pipelines");
        assert_eq!(desired.tenants[1].resource_quota.as_ref().unwrap().hard["memory"], "16Gi");
    }

    #[test]
    fn flags_conflict_with_a_file() {
        let flags = Tenants { file: Some("t.yaml".into()), cluster: Some("c".into()), ..Default::default() };
        assert_eq!(flags.read().unwrap_err().to_string(), "--cluster cannot be combined with -f: put the values in the tenants file");
    }
}
