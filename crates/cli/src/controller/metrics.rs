//! What the controller shows of itself over HTTP: `/metrics` in Prometheus'
//! text format (names fixed by issue #25: `kfp_tenant_leader`,
//! `kfp_tenant_reconciles_total{result}`, `kfp_tenant_tenants{ready}`,
//! `kfp_tenant_api_calls_total{service,operation}`,
//! `kfp_tenant_reconcile_duration_seconds`), `/healthz` (the process serves)
//! and `/readyz` (it has reached the API server: a leader or a standby).
//! The server is a few lines of HTTP/1.1 on tokio: three GET paths do not
//! need a framework.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Each service and its call counts by operation.
type Calls = Vec<(&'static str, BTreeMap<String, u64>)>;

/// The call counts, as a scrape reads them.
struct CallSource(Box<dyn Fn() -> Calls + Send + Sync>);

impl std::fmt::Debug for CallSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallSource")
    }
}

/// Upper bounds of the reconcile duration histogram, in seconds.
const BUCKETS: [f64; 9] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Debug, Default)]
pub struct Metrics {
    pub leader: AtomicBool,
    pub ready: AtomicBool,
    reconciles: Mutex<BTreeMap<&'static str, u64>>,
    tenants: Mutex<(u64, u64)>,
    durations: Mutex<([u64; BUCKETS.len()], u64, f64)>,
    /// The providers' call counts, read at each scrape (so that the Lease's
    /// renewals show at once, not when a cycle ends).
    calls: OnceLock<CallSource>,
    pub cycles: AtomicU64,
}

impl Metrics {
    pub fn reconciled(&self, result: &'static str, took: Duration) {
        *lock(&self.reconciles).entry(result).or_default() += 1;
        let seconds = took.as_secs_f64();
        let mut d = lock(&self.durations);
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                d.0[i] += 1;
            }
        }
        d.1 += 1;
        d.2 += seconds;
        self.cycles.fetch_add(1, Ordering::SeqCst);
    }

    pub fn tenants(&self, ready: u64, not_ready: u64) {
        *lock(&self.tenants) = (ready, not_ready);
    }

    /// Where the API call counts come from: each service and its counts by operation.
    pub fn count_calls(&self, source: impl Fn() -> Calls + Send + Sync + 'static) {
        let _ = self.calls.set(CallSource(Box::new(source)));
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP kfp_tenant_leader 1 on the replica that holds the Lease and writes, 0 on a standby.");
        let _ = writeln!(out, "# TYPE kfp_tenant_leader gauge\nkfp_tenant_leader {}", u8::from(self.leader.load(Ordering::SeqCst)));
        let _ =
            writeln!(out, "# HELP kfp_tenant_reconciles_total Reconcile cycles, by result.\n# TYPE kfp_tenant_reconciles_total counter");
        for (result, n) in lock(&self.reconciles).iter() {
            let _ = writeln!(out, "kfp_tenant_reconciles_total{{result=\"{result}\"}} {n}");
        }
        let (ready, not_ready) = *lock(&self.tenants);
        let _ = writeln!(out, "# HELP kfp_tenant_tenants KubeflowTenants by their Ready condition.\n# TYPE kfp_tenant_tenants gauge");
        let _ = writeln!(out, "kfp_tenant_tenants{{ready=\"true\"}} {ready}\nkfp_tenant_tenants{{ready=\"false\"}} {not_ready}");
        let _ = writeln!(
            out,
            "# HELP kfp_tenant_api_calls_total Calls made to AWS and Kubernetes, by operation.\n# TYPE kfp_tenant_api_calls_total counter"
        );
        for (service, calls) in self.calls.get().map(|source| (source.0)()).unwrap_or_default() {
            for (operation, n) in calls {
                let _ =
                    writeln!(out, "kfp_tenant_api_calls_total{{service=\"{service}\",operation=\"{}\"}} {n}", operation.replace('"', "'"));
            }
        }
        let (buckets, count, sum) = *lock(&self.durations);
        let _ = writeln!(out, "# HELP kfp_tenant_reconcile_duration_seconds How long a reconcile cycle took.");
        let _ = writeln!(out, "# TYPE kfp_tenant_reconcile_duration_seconds histogram");
        for (bound, n) in BUCKETS.iter().zip(buckets) {
            let _ = writeln!(out, "kfp_tenant_reconcile_duration_seconds_bucket{{le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(out, "kfp_tenant_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "kfp_tenant_reconcile_duration_seconds_sum {sum}\nkfp_tenant_reconcile_duration_seconds_count {count}");
        out
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until the process ends.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut request = Vec::new();
            let mut buffer = [0u8; 1024];
            // The request line and headers; a GET has no body.
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
                match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await {
                    Ok(Ok(n)) if n > 0 => request.extend_from_slice(&buffer[..n]),
                    _ => return,
                }
            }
            let line = String::from_utf8_lossy(&request);
            let path = line.split_whitespace().nth(1).unwrap_or("/");
            let (status, body, kind) = match path {
                "/metrics" => ("200 OK", metrics.render(), "text/plain; version=0.0.4"),
                "/healthz" => ("200 OK", "ok\n".to_owned(), "text/plain"),
                "/readyz" if metrics.ready.load(Ordering::SeqCst) => ("200 OK", "ok\n".to_owned(), "text/plain"),
                "/readyz" => ("503 Service Unavailable", "not connected to the API server yet\n".to_owned(), "text/plain"),
                _ => ("404 Not Found", "not found\n".to_owned(), "text/plain"),
            };
            let answer =
                format!("HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_every_named_metric() {
        let metrics = Metrics::default();
        metrics.leader.store(true, Ordering::SeqCst);
        metrics.reconciled("success", Duration::from_millis(300));
        metrics.tenants(3, 1);
        let roles = Arc::new(AtomicU64::new(3));
        let counted = roles.clone();
        metrics.count_calls(move || {
            let aws = BTreeMap::from([("GetRole".to_owned(), counted.load(Ordering::SeqCst))]);
            vec![("aws", aws), ("kubernetes", BTreeMap::from([("LIST profiles".to_owned(), 2)]))]
        });
        assert!(metrics.render().contains("operation=\"GetRole\"} 3"));
        // Read at the scrape, not when a cycle ends.
        roles.store(4, Ordering::SeqCst);
        let text = metrics.render();
        for line in [
            "kfp_tenant_leader 1",
            "kfp_tenant_reconciles_total{result=\"success\"} 1",
            "kfp_tenant_tenants{ready=\"true\"} 3",
            "kfp_tenant_tenants{ready=\"false\"} 1",
            "kfp_tenant_api_calls_total{service=\"aws\",operation=\"GetRole\"} 4",
            "kfp_tenant_api_calls_total{service=\"kubernetes\",operation=\"LIST profiles\"} 2",
            "kfp_tenant_reconcile_duration_seconds_bucket{le=\"0.25\"} 0",
            "kfp_tenant_reconcile_duration_seconds_bucket{le=\"0.5\"} 1",
            "kfp_tenant_reconcile_duration_seconds_count 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
    }
}
