//! The commands that need neither AWS nor the cluster: show, validate,
//! render, graph, schema, crd, completions.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use kfp_tenant_core::kinds;
use kfp_tenant_core::plan::ClusterContext;
use kfp_tenant_core::render;
use kfp_tenant_core::spec::{Desired, Road};

use crate::commands::{print_plan, read_plan};
use crate::output::{self, say};
use crate::request::{RenderRequest, Tenants};

pub fn show(plan_file: &std::path::Path, json: bool, no_color: bool) -> Result<ExitCode> {
    print_plan(&read_plan(plan_file)?, json, no_color)?;
    Ok(ExitCode::SUCCESS)
}

pub fn validate(tenants: &Tenants) -> Result<ExitCode> {
    let desired = tenants.desired()?;
    let n = desired.tenants.len();
    say!("The tenants file is valid: {n} tenant{} on cluster {}.", if n == 1 { "" } else { "s" }, desired.cluster.name)?;
    Ok(ExitCode::SUCCESS)
}

pub fn graph(tenants: &Tenants, plan_file: Option<&PathBuf>) -> Result<ExitCode> {
    let text = match plan_file {
        Some(path) => {
            let plan = read_plan(path)?;
            render::graph_dot(&kfp_tenant_core::order::plan(&plan), Some(&plan))
        }
        None => render::graph_dot(&kfp_tenant_core::order::file(&tenants.desired()?), None),
    };
    output::out(text)?;
    Ok(ExitCode::SUCCESS)
}

pub fn schema() -> Result<ExitCode> {
    let schema = schemars::schema_for!(kfp_tenant_core::spec::TenantsFile);
    say!("{}", serde_json::to_string_pretty(&schema)?)?;
    Ok(ExitCode::SUCCESS)
}

pub fn permissions(req: &crate::request::PermissionsRequest) -> Result<ExitCode> {
    use kfp_tenant_core::permissions::{Needs, controller_user, iam_policy, kubernetes_yaml};
    if req.kubernetes {
        // The controller's user defaults to deploy/'s service account in the lock's namespace.
        let user = req.user.clone().or_else(|| req.controller.then(|| controller_user(&req.lock_namespace)));
        say!("{}", kubernetes_yaml(&req.lock_namespace, req.controller, user.as_deref()).trim_end())?;
        return Ok(ExitCode::SUCCESS);
    }
    let desired = req.tenants.desired()?;
    let needs = Needs { account_id: req.account_id.clone(), create_oidc_provider: req.create_oidc_provider };
    say!("{}", serde_json::to_string_pretty(iam_policy(&desired, &needs).as_json())?)?;
    Ok(ExitCode::SUCCESS)
}

pub fn crd() -> Result<ExitCode> {
    say!("{}", serde_yaml_ng::to_string(&kfp_tenant_core::crd::definition())?.trim_end())?;
    Ok(ExitCode::SUCCESS)
}

pub fn completions(text: &str) -> Result<ExitCode> {
    output::out(text)?;
    Ok(ExitCode::SUCCESS)
}

pub fn render(args: &RenderRequest) -> Result<ExitCode> {
    let desired = args.tenants.desired()?;
    if let Some(account) = &args.account_id
        && !(account.len() == 12 && account.chars().all(|c| c.is_ascii_digit()))
    {
        anyhow::bail!(
            "--account-id {account:?} is not an AWS account id (12 digits; aws sts get-caller-identity --query Account --output text)"
        );
    }
    // Files are applied as they are (kubectl apply -f DIR, a GitOps tool):
    // a Profile naming arn:aws:iam::${AWS_ACCOUNT_ID}:... would be taken
    // silently and name no role.
    if args.out.is_some() && args.account_id.is_none() {
        anyhow::bail!(
            "render --out writes manifests that are applied as they are, and their Profiles name each role's ARN: give --account-id (aws sts get-caller-identity --query Account --output text); the stream without --out keeps ${{AWS_ACCOUNT_ID}} for review"
        );
    }
    let partition = kfp_tenant_core::validate::partition_of_region(&desired.cluster.region);
    let account = args.account_id.clone().unwrap_or_else(|| "${AWS_ACCOUNT_ID}".to_owned());
    let cluster = ClusterContext {
        name: desired.cluster.name.clone(),
        arn: format!("arn:{partition}:eks:{}:{account}:cluster/{}", desired.cluster.region, desired.cluster.name),
        region: desired.cluster.region.clone(),
        bucket: desired.cluster.bucket.clone(),
        account_id: account,
        partition: partition.to_owned(),
        oidc_issuer: args.oidc_issuer.clone().unwrap_or_else(|| "https://${OIDC_URL}".to_owned()),
        oidc_provider_arn: String::new(),
    };
    match &args.out {
        Some(dir) => render_dir(&desired, &cluster, dir),
        None => render_stream(&desired, &cluster),
    }
}

/// One YAML stream (JSON documents are YAML too): every document after
/// `---` and a `# Source:` line naming the file `render --out` writes it to
/// and what it is, as `helm template` does; `yq` and the like can split it.
fn render_stream(desired: &Desired, cluster: &ClusterContext) -> Result<ExitCode> {
    for tenant in &desired.tenants {
        let ns = &tenant.namespace;
        let TenantDocs { role, s3, manifests } = tenant_docs(tenant, cluster)?;
        let quota = desired.cluster.trust_policy_quota;
        say!(
            "---\n# Source: iam/{ns}/trust-policy.json (trust policy of IAM role {}{}, identity {}, {} of {quota} characters)\n{}",
            role.path,
            role.name,
            tenant.road.as_str(),
            role.trust_policy.minified_len(),
            serde_json::to_string_pretty(role.trust_policy.as_json())?
        )?;
        say!(
            "---\n# Source: iam/{ns}/inline-policy.json (inline policy {} of IAM role {}, {} characters)\n{}",
            s3.policy_name,
            role.name,
            s3.document.minified_len(),
            serde_json::to_string_pretty(s3.document.as_json())?
        )?;
        for (what, manifest) in manifests {
            say!("---\n# Source: {ns}.yaml ({what})\n{}", manifest.trim_end())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One tenant's documents as `render` prints or writes them: the role (its
/// trust policy), its inline S3 policy, and the Kubernetes manifests in
/// order, each with what it is (the Profile, the service accounts
/// kfp-tenant makes, kfp-tenant's keys of the pipeline ConfigMaps).
struct TenantDocs {
    role: kfp_tenant_core::ports::Role,
    s3: kfp_tenant_core::ports::InlinePolicy,
    manifests: Vec<(String, String)>,
}

fn tenant_docs(tenant: &kfp_tenant_core::spec::Tenant, cluster: &ClusterContext) -> Result<TenantDocs> {
    let ns = &tenant.namespace;
    let role = kinds::desired_role(tenant, cluster);
    let s3 = kinds::desired_s3_policy(tenant, cluster);
    let profile = kfp_tenant_k8s::to_resource(&kinds::desired_profile(tenant, &role.arn, &cluster.name));
    let mut manifests = vec![(format!("Profile {ns}"), serde_yaml_ng::to_string(&profile)?)];
    let annotation = (tenant.road == Road::Irsa).then_some(role.arn.as_str());
    for sa in tenant.extra_service_accounts() {
        let account = kinds::desired_service_account(ns, sa, annotation, &cluster.name, None);
        manifests.push((format!("ServiceAccount {ns}/{sa}"), serde_yaml_ng::to_string(&kfp_tenant_k8s::account_manifest(&account))?));
    }
    if let Some(root) = &tenant.pipeline_root {
        for config in kinds::desired_pipeline_config(tenant, root, &cluster.bucket, &cluster.region) {
            let manifest = serde_yaml_ng::to_string(&kfp_tenant_k8s::config_map_manifest(&config))?;
            manifests.push((format!("kfp-tenant's keys of ConfigMap {ns}/{}", config.name), manifest));
        }
    }
    Ok(TenantDocs { role, s3, manifests })
}

/// The tenants as files: one Kubernetes manifest per tenant at the top (what
/// `kubectl apply -f DIR` and a GitOps tool's plain-directory source take as
/// they are; no kustomization.yaml, which `kubectl apply -f` would try to
/// apply as an object), the IAM documents as JSON under `iam/` for review
/// (not read by a non-recursive `-f`), and a summary.
fn render_dir(desired: &Desired, cluster: &ClusterContext, dir: &std::path::Path) -> Result<ExitCode> {
    use anyhow::Context;
    refuse_foreign_files(dir, desired)?;
    let write = |path: std::path::PathBuf, text: String| -> Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    let mut summary = format!(
        "# kfp-tenant render: cluster {} ({}), bucket {}\n\n| tenant | identity | IAM role | trust policy | inline policy | service accounts |\n|---|---|---|---|---|---|\n",
        desired.cluster.name, desired.cluster.region, desired.cluster.bucket
    );
    for tenant in &desired.tenants {
        let ns = &tenant.namespace;
        let TenantDocs { role, s3, manifests } = tenant_docs(tenant, cluster)?;
        let mut yaml = match tenant.road {
            Road::Irsa => format!("# tenant {ns}: the Profile, and the service accounts kfp-tenant makes and annotates\n"),
            Road::PodIdentity => format!(
                "# tenant {ns}: the Profile, and the service accounts kfp-tenant makes (EKS Pod Identity: no annotation;\n# the associations are EKS API objects, one per service account: {})\n",
                tenant.service_accounts.join(", ")
            ),
        };
        if tenant.pipeline_root.is_some() {
            // A client-side apply would replace the whole ConfigMaps, KFP's keys included.
            yaml.push_str("# and kfp-tenant's keys of its pipeline ConfigMaps: apply with --server-side, which keeps KFP's own keys\n");
        }
        for (_, manifest) in manifests {
            yaml.push_str("---\n");
            yaml.push_str(&manifest);
        }
        write(dir.join(format!("{ns}.yaml")), yaml)?;
        let iam = dir.join("iam").join(ns);
        write(iam.join("trust-policy.json"), format!("{}\n", serde_json::to_string_pretty(role.trust_policy.as_json())?))?;
        write(iam.join("inline-policy.json"), format!("{}\n", serde_json::to_string_pretty(s3.document.as_json())?))?;
        summary.push_str(&format!(
            "| {ns} | {} | `{}{}` | {} of {} characters | `{}`, {} characters | {} |\n",
            tenant.road.as_str(),
            role.path,
            role.name,
            role.trust_policy.minified_len(),
            desired.cluster.trust_policy_quota,
            s3.policy_name,
            s3.document.minified_len(),
            tenant.service_accounts.join(", ")
        ));
    }
    remove_stale(dir, desired)?;
    write(dir.join("SUMMARY.md"), summary)?;
    say!(
        "Wrote {} tenant{} to {}: <namespace>.yaml for Kubernetes, iam/<namespace>/ for IAM review, SUMMARY.md.",
        desired.tenants.len(),
        if desired.tenants.len() == 1 { "" } else { "s" },
        dir.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Whether `<dir>/<ns>.yaml` is a manifest kfp-tenant wrote (its header).
fn our_manifest(dir: &std::path::Path, ns: &str) -> bool {
    std::fs::read_to_string(dir.join(format!("{ns}.yaml"))).is_ok_and(|t| t.starts_with(&format!("# tenant {ns}: ")))
}

/// Before anything is written: a file of the same name that kfp-tenant did
/// not write is never overwritten. Its manifests carry a header; the policy
/// files of a tenant are its when the tenant's manifest is; SUMMARY.md
/// starts with its title.
fn refuse_foreign_files(dir: &std::path::Path, desired: &Desired) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        anyhow::bail!(
            "render --out {} is a file, not a directory; nothing was written. Name a directory (it is made if missing)",
            dir.display()
        );
    }
    let mut foreign = Vec::new();
    for tenant in &desired.tenants {
        let ns = &tenant.namespace;
        let manifest = dir.join(format!("{ns}.yaml"));
        let ours = our_manifest(dir, ns);
        if manifest.exists() && !ours {
            foreign.push(manifest);
        }
        for file in ["trust-policy.json", "inline-policy.json"] {
            let path = dir.join("iam").join(ns).join(file);
            if path.exists() && !ours {
                foreign.push(path);
            }
        }
    }
    let summary = dir.join("SUMMARY.md");
    if summary.exists() && !std::fs::read_to_string(&summary).is_ok_and(|t| t.starts_with("# kfp-tenant render:")) {
        foreign.push(summary);
    }
    if !foreign.is_empty() {
        let names: Vec<String> = foreign.iter().map(|p| p.display().to_string()).collect();
        anyhow::bail!(
            "render --out would overwrite files kfp-tenant did not write: {}; nothing was written. Move them, or render into another directory",
            names.join(", ")
        );
    }
    Ok(())
}

/// What an earlier render wrote for tenants the file no longer has: left
/// there, a GitOps tool would keep applying a removed tenant's Profile. Only
/// kfp-tenant's own files go: a manifest that starts with its header, and
/// the two policy files of a tenant whose manifest that was; anything else
/// in the directory stays.
fn remove_stale(dir: &std::path::Path, desired: &Desired) -> Result<()> {
    let current: std::collections::BTreeSet<&str> = desired.tenants.iter().map(|t| t.namespace.as_str()).collect();
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(ns) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".yaml")) else { continue };
        if !our_manifest(dir, ns) || current.contains(ns) {
            continue;
        }
        std::fs::remove_file(&path)?;
        let iam = dir.join("iam").join(ns);
        for file in ["trust-policy.json", "inline-policy.json"] {
            let _ = std::fs::remove_file(iam.join(file));
        }
        let _ = std::fs::remove_dir(&iam); // only if nothing else is left
    }
    Ok(())
}
