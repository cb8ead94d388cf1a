//! The Kubernetes API fake as a process, for the CLI, the demo and kubectl.
//!
//!     kfp-tenant-fake-apiserver [--port N] [--kubeconfig PATH] [--reconcile-delay-ms N]
//!
//! Writes a kubeconfig pointing at itself to PATH (when given), prints its URL
//! on stdout, and serves until killed.

use std::process::ExitCode;
use std::time::Duration;

use kfp_tenant_testkit::apiserver::{FakeApiOptions, FakeApiServer};

fn usage() -> ExitCode {
    eprintln!("usage: kfp-tenant-fake-apiserver [--port N] [--kubeconfig PATH] [--reconcile-delay-ms N]");
    ExitCode::from(2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut options = FakeApiOptions::default();
    let mut kubeconfig = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        match (arg.as_str(), value) {
            ("--port", Some(v)) => match v.parse() {
                Ok(port) => options.port = port,
                Err(_) => return usage(),
            },
            ("--reconcile-delay-ms", Some(v)) => match v.parse() {
                Ok(ms) => options.reconcile_delay = Duration::from_millis(ms),
                Err(_) => return usage(),
            },
            ("--kubeconfig", Some(v)) => kubeconfig = Some(v),
            _ => return usage(),
        }
    }
    let server = match FakeApiServer::start(options).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("kfp-tenant-fake-apiserver: cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = kubeconfig
        && let Err(e) = std::fs::write(&path, server.kubeconfig())
    {
        eprintln!("kfp-tenant-fake-apiserver: cannot write {path}: {e}");
        return ExitCode::FAILURE;
    }
    println!("{}", server.url());
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
