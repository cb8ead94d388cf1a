//! The testkit's Kubeflow profile controller as a process, for a real
//! kube-apiserver without Kubeflow (`scripts/demo --real-kube`).
//!
//!     kfp-tenant-profile-controller --kubeconfig PATH [--reconcile-delay-ms N]
//!
//! Reconciles every Profile until killed.

use std::process::ExitCode;
use std::time::Duration;

use kfp_tenant_testkit::controller::{ControllerOptions, ProfileController};

fn usage() -> ExitCode {
    eprintln!("usage: kfp-tenant-profile-controller --kubeconfig PATH [--reconcile-delay-ms N]");
    ExitCode::from(2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut options = ControllerOptions::default();
    let mut kubeconfig = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--kubeconfig", Some(v)) => kubeconfig = Some(v),
            ("--reconcile-delay-ms", Some(v)) => match v.parse() {
                Ok(ms) => options.delay = Duration::from_millis(ms),
                Err(_) => return usage(),
            },
            _ => return usage(),
        }
    }
    let Some(path) = kubeconfig else { return usage() };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("kfp-tenant-profile-controller: cannot read {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _controller = match ProfileController::start(&text, options).await {
        Ok(controller) => controller,
        Err(e) => {
            eprintln!("kfp-tenant-profile-controller: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("kfp-tenant-profile-controller: reconciling Profiles");
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
