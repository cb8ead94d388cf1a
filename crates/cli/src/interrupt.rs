//! Ctrl-C and SIGTERM while kfp-tenant writes, the way Terraform handles
//! them: the first starts nothing new and lets what runs finish within a
//! grace period, so the lock is released and the summary says what was done
//! and what was not; the second ends the process at once (the lock then
//! expires by itself).

use kfp_tenant_core::graph::Stop;

use crate::output::note;

/// Starts listening for SIGINT and SIGTERM, once per process (a signal
/// handler, once installed, stays); the returned [`Stop`] is what the first
/// one sets, the same for every caller (`apply --verify` applies, then verifies).
pub fn install(grace: std::time::Duration) -> Stop {
    static STOP: std::sync::OnceLock<Stop> = std::sync::OnceLock::new();
    STOP.get_or_init(|| {
        let stop = Stop::default();
        let first = stop.clone();
        tokio::spawn(async move {
            signal().await;
            first.stop();
            note!(
                "\nInterrupt received: starting no new changes, letting those in flight finish (at most {}s). Press Ctrl-C again to stop at once.",
                grace.as_secs()
            );
            signal().await;
            note!("Stopped at once; the apply lock expires by itself.");
            std::process::exit(130);
        });
        stop
    })
    .clone()
}

#[cfg(unix)]
async fn signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}

#[cfg(not(unix))]
async fn signal() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
