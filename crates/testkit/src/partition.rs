//! A network partition between a client and a Kubernetes API server, for
//! the tests of what a Lease holder does when it can no longer renew.

use std::path::{Path, PathBuf};

/// A TCP proxy in front of the API server that a test can cut, as a network
/// partition looks to a client: from the cut on, nothing is forwarded
/// either way, open connections stay open and silent, and new ones are
/// accepted and never answered.
#[derive(Debug)]
pub struct Partition {
    /// The kubeconfig whose server is reached through the proxy.
    pub kubeconfig: PathBuf,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Partition {
    /// A proxy to `kubeconfig`'s server, and a kubeconfig like it that
    /// reaches the server through the proxy, written to `proxied`.
    pub async fn start(kubeconfig: &Path, proxied: &Path) -> Partition {
        let text = std::fs::read_to_string(kubeconfig).expect("a readable kubeconfig");
        let (scheme, at) = ["https://", "http://"].iter().find_map(|s| Some((*s, text.find(s)? + s.len()))).expect("a server URL");
        let upstream: String = text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || ".:-".contains(*c)).collect();
        let server = format!("{scheme}{upstream}");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port on 127.0.0.1");
        std::fs::write(proxied, text.replace(&server, &format!("{scheme}{}", listener.local_addr().expect("a bound address"))))
            .expect("the proxied kubeconfig written");
        let (cut, cut_seen) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut cut_seen = cut_seen.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let already_cut = *cut_seen.borrow();
                    if already_cut {
                        return std::future::pending::<()>().await;
                    }
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else { return };
                    let cut = async move { drop(cut_seen.wait_for(|cut| *cut).await) };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => return,
                        () = cut => {}
                    }
                    // Both sockets stay open, and silent.
                    std::future::pending::<()>().await
                });
            }
        });
        Partition { kubeconfig: proxied.to_owned(), cut }
    }

    /// From now on nothing goes through, either way.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }
}
