//! The commands that need neither AWS nor the cluster: show, validate,
//! render, graph, schema, completions.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::CommandFactory;
use kfp_tenant_core::address::{Address, Kind, resource_graph};
use kfp_tenant_core::plan::{self, ClusterContext};
use kfp_tenant_core::render;
use kfp_tenant_core::spec::Desired;

use crate::commands::{print_plan, read_plan};
use crate::flags::{Cli, RenderArgs};
use crate::input::TenantFlags;
use crate::output::{self, say};

pub fn show(plan_file: &std::path::Path, json: bool, no_color: bool) -> Result<ExitCode> {
    print_plan(&read_plan(plan_file)?, json, no_color)?;
    Ok(ExitCode::SUCCESS)
}

pub fn validate(tenants: &TenantFlags) -> Result<ExitCode> {
    let desired = tenants.desired()?;
    let n = desired.tenants.len();
    say!("The tenants file is valid: {n} tenant{} on cluster {}.", if n == 1 { "" } else { "s" }, desired.cluster.name)?;
    Ok(ExitCode::SUCCESS)
}

/// Every resource of the tenants: per-tenant kinds and service accounts.
fn addresses(desired: &Desired) -> Vec<Address> {
    let mut addresses = vec![Address::ClusterIdentity];
    for tenant in &desired.tenants {
        addresses.extend(Kind::PER_TENANT.into_iter().map(|k| Address::tenant(&tenant.namespace, k)));
        addresses.extend(tenant.service_accounts.iter().map(|sa| Address::service_account(&tenant.namespace, sa)));
    }
    addresses
}

pub fn graph(tenants: &TenantFlags, plan_file: Option<&PathBuf>) -> Result<ExitCode> {
    let text = match plan_file {
        Some(path) => {
            let plan = read_plan(path)?;
            render::graph_dot(&resource_graph(plan.changes.iter().map(|c| c.address.clone())), Some(&plan))
        }
        None => render::graph_dot(&resource_graph(addresses(&tenants.desired()?)), None),
    };
    output::out(text)?;
    Ok(ExitCode::SUCCESS)
}

pub fn schema() -> Result<ExitCode> {
    let schema = schemars::schema_for!(kfp_tenant_core::spec::TenantsFile);
    say!("{}", serde_json::to_string_pretty(&schema)?)?;
    Ok(ExitCode::SUCCESS)
}

pub fn completions(shell: clap_complete::Shell) -> Result<ExitCode> {
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "kfp-tenant", &mut text);
    output::out(String::from_utf8_lossy(&text))?;
    Ok(ExitCode::SUCCESS)
}

pub fn render(args: &RenderArgs) -> Result<ExitCode> {
    let desired = args.tenants.desired()?;
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
    for tenant in &desired.tenants {
        let role = plan::desired_role(tenant, &cluster);
        let s3 = plan::desired_s3_policy(tenant, &cluster);
        let profile = kfp_tenant_k8s::to_resource(&plan::desired_profile(tenant, &role.arn, &cluster.name));
        say!("# tenant {}: IAM role {} (path {})", tenant.namespace, role.name, role.path)?;
        say!("# trust policy ({} characters of {})", role.trust_policy.minified_len(), desired.cluster.trust_policy_quota)?;
        say!("{}", serde_json::to_string_pretty(role.trust_policy.as_json())?)?;
        say!("# inline policy {} ({} characters)", s3.policy_name, s3.document.minified_len())?;
        say!("{}", serde_json::to_string_pretty(s3.document.as_json())?)?;
        say!("# Profile\n---\n{}", serde_yaml_ng::to_string(&profile)?)?;
    }
    Ok(ExitCode::SUCCESS)
}
