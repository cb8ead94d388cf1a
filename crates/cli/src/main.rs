//! `kfp-tenant`: Terraform-style plan / apply / destroy for Kubeflow tenants
//! on EKS.
//!
//! The binary is thin: clap's types ([`flags`]) are turned once into each
//! command's plain request ([`request`]), which is all the rest sees; `run`
//! builds the real providers and
//! returns the exit code (0 success, 1 error, 2 changes present under
//! `--detailed-exitcode`). A reader that closes stdout early (a pager, `head`)
//! ends the program quietly with 0; no output error panics.

mod commands;
mod controller;
mod flags;
mod input;
mod interrupt;
mod live;
mod offline;
mod output;
mod request;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use crate::flags::{Cli, Command};
use crate::output::note;

fn main() -> ExitCode {
    // Usage errors exit 1 like every other error: 2 means "changes present".
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Terraform's single-dash spellings of our long options (-out=FILE, -replace=ADDR, ...).
            let longs = long_options(&<Cli as clap::CommandFactory>::command());
            let single_dash = std::env::args().skip(1).find(|a| {
                let name = a.strip_prefix('-').filter(|n| !n.starts_with('-')).map(|n| n.split('=').next().unwrap_or_default());
                name.is_some_and(|n| n.len() > 1 && longs.contains(n))
            });
            if let Some(arg) = single_dash {
                let long = format!("-{}", arg.replacen('=', " ", 1));
                note!("Error: {arg}: kfp-tenant's long options take two dashes (Terraform's {arg} is {long} here)");
                return ExitCode::FAILURE;
            }
            let _ = e.print();
            return if e.use_stderr() { ExitCode::FAILURE } else { ExitCode::SUCCESS };
        }
    };
    output::init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            note!("Error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            note!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Every long option of every command.
fn long_options(command: &clap::Command) -> std::collections::BTreeSet<String> {
    let mut found: std::collections::BTreeSet<String> = command.get_arguments().filter_map(|a| a.get_long().map(str::to_owned)).collect();
    for sub in command.get_subcommands() {
        found.extend(long_options(sub));
    }
    found
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let no_color = cli.no_color;
    match cli.command {
        Command::Plan(args) => commands::plan(args.into(), no_color).await,
        Command::Apply(args) => commands::apply(args.into(), no_color).await,
        Command::Destroy(args) => commands::destroy(args.into(), no_color).await,
        Command::Verify(args) => commands::verify(args.into()).await,
        Command::Audit(args) => commands::audit(args.into()).await,
        Command::ForceUnlock(args) => commands::force_unlock(args.into()).await,
        Command::Show { plan_file, json } => offline::show(&plan_file, json, no_color),
        Command::Validate(tenants) => offline::validate(&tenants.into()),
        Command::Render(args) => offline::render(&args.into()),
        Command::Graph { tenants, plan_file } => offline::graph(&tenants.into(), plan_file.as_ref()),
        Command::Schema => offline::schema(),
        Command::Crd => offline::crd(),
        Command::Permissions(args) => offline::permissions(&args.into()),
        Command::Controller(args) => controller::run(args.into()).await,
        Command::Completions { shell } => offline::completions(&flags::completions(shell)),
    }
}
