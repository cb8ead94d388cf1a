//! A proxy in front of moto that pages GetAccountAuthorizationDetails the
//! way IAM does, for one gap of moto: it ignores `MaxItems` and `Marker` in
//! that call and always answers with every role at once, so a client whose
//! Marker loop stops after the first page would pass against moto alone.
//!
//! The proxy asks moto for everything, then answers `MaxItems` roles at a
//! time in name order after the role its `Marker` names (so that roles other
//! tests delete between two pages shift nothing), with `IsTruncated` and the
//! next `Marker` as IAM sets them. Every other request passes through unchanged.
//! moto does not check signatures unless it enforces IAM, so the rewritten
//! body needs no new one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::http1::{Request, exchange, read_request};
use crate::lock;

const OPERATION: &str = "GetAccountAuthorizationDetails";
/// IAM's default `MaxItems`.
const DEFAULT_PAGE: usize = 100;

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct PagingProxy {
    url: String,
    pages: Arc<AtomicUsize>,
    markers: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Drop for PagingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PagingProxy {
    /// Forwards to `target` (`http://host:port`).
    pub async fn start(target: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let target = target.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let (pages, markers) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())));
        let task = {
            let (pages, markers) = (pages.clone(), markers.clone());
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let (target, pages, markers) = (target.clone(), pages.clone(), markers.clone());
                    tokio::spawn(async move {
                        let _ = forward(client, &target, &pages, &markers).await;
                    });
                }
            })
        };
        Ok(PagingProxy { url, pages, markers, task })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Pages of GetAccountAuthorizationDetails answered so far.
    pub fn pages(&self) -> usize {
        self.pages.load(Ordering::SeqCst)
    }

    /// The `Marker`s clients sent, in order.
    pub fn markers(&self) -> Vec<String> {
        lock(&self.markers).clone()
    }
}

async fn forward(mut client: TcpStream, target: &str, pages: &AtomicUsize, markers: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let Some(Request { method, path, headers, body }) = read_request(&mut client).await? else {
        return Ok(());
    };
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let paged = form.iter().any(|(k, v)| k == "Action" && v == OPERATION);
    let (body, window) = match paged {
        false => (body, None),
        true => {
            let max_items = form.iter().find(|(k, _)| k == "MaxItems").and_then(|(_, v)| v.parse().ok()).unwrap_or(DEFAULT_PAGE);
            let marker = form.iter().find(|(k, _)| k == "Marker").map(|(_, v)| v.clone());
            let after = match &marker {
                Some(m) => {
                    lock(markers).push(m.clone());
                    m.strip_prefix("after-").map(str::to_owned)
                }
                None => None,
            };
            let rest = form.iter().filter(|(k, _)| k != "MaxItems" && k != "Marker");
            let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(rest).finish().into_bytes();
            (body, Some((after, max_items.max(1))))
        }
    };
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in headers.iter().filter(|(k, _)| k != "connection" && k != "content-length") {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n", body.len()));
    let mut answer = exchange(target, &head, &body).await?;
    if let Some((after, max_items)) = window
        && let Some(paged) = page(&answer, after.as_deref(), max_items)
    {
        pages.fetch_add(1, Ordering::SeqCst);
        answer = paged;
    }
    client.write_all(&answer).await?;
    client.shutdown().await
}

/// moto's whole answer cut to `max_items` roles, in name order, after the
/// role `after` names (the marker carries the last name a page held, so
/// roles that other tests delete between two pages shift nothing); `None`
/// when it is not a successful answer with a role list.
fn page(answer: &[u8], after: Option<&str>, max_items: usize) -> Option<Vec<u8>> {
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let (head, body) = (String::from_utf8_lossy(&answer[..split]), String::from_utf8_lossy(&answer[split..]));
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    let (open, close) = ("<RoleDetailList>", "</RoleDetailList>");
    let start = body.find(open)? + open.len();
    let end = body.find(close)?;
    let name = |member: &str| member.split("<RoleName>").nth(1).and_then(|r| r.split("</RoleName>").next()).unwrap_or_default().to_owned();
    let mut members: Vec<(String, &str)> = top_level_members(&body[start..end]).into_iter().map(|m| (name(m), m)).collect();
    members.sort();
    let left: Vec<&(String, &str)> = members.iter().filter(|(n, _)| after.is_none_or(|a| n.as_str() > a)).collect();
    let shown = left.iter().take(max_items).map(|(_, m)| *m).collect::<String>();
    let truncated = left.len() > max_items;
    let mut rest = body[end..].replacen("<IsTruncated>false</IsTruncated>", &format!("<IsTruncated>{truncated}</IsTruncated>"), 1);
    if truncated {
        let last = &left[max_items - 1].0;
        rest = rest.replacen("</IsTruncated>", &format!("</IsTruncated><Marker>after-{last}</Marker>"), 1);
    }
    let body = format!("{}{shown}{rest}", &body[..start]);
    let head: String = head
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| match l.to_ascii_lowercase().starts_with("content-length:") {
            true => format!("Content-Length: {}\r\n", body.len()),
            false => format!("{l}\r\n"),
        })
        .collect();
    Some(format!("{head}\r\n{body}").into_bytes())
}

/// The `<member>…</member>` children of a list, nested members (tags,
/// policies) kept inside their parent.
fn top_level_members(list: &str) -> Vec<&str> {
    let (open, close) = ("<member>", "</member>");
    let mut members = Vec::new();
    let (mut depth, mut start, mut at) = (0usize, 0usize, 0usize);
    while at < list.len() {
        let rest = &list[at..];
        if rest.starts_with(open) {
            if depth == 0 {
                start = at;
            }
            depth += 1;
            at += open.len();
        } else if rest.starts_with(close) {
            depth = depth.saturating_sub(1);
            at += close.len();
            if depth == 0 {
                members.push(&list[start..at]);
            }
        } else {
            at += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    members
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 1\r\n\r\n<R><RoleDetailList><member><RoleName>a</RoleName><Tags><member><Key>k</Key></member></Tags></member><member><RoleName>b</RoleName></member><member><RoleName>c</RoleName></member></RoleDetailList><IsTruncated>false</IsTruncated></R>";

    fn body(answer: &[u8]) -> String {
        let text = String::from_utf8(answer.to_vec()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())), "{head}");
        body.to_owned()
    }

    #[test]
    fn pages_cut_at_top_level_members_and_carry_the_next_marker() {
        let first = body(&page(ANSWER.as_bytes(), None, 2).unwrap());
        assert!(first.contains("<RoleName>a</RoleName><Tags><member><Key>k</Key></member></Tags>"), "{first}");
        assert!(first.contains("<RoleName>b</RoleName>") && !first.contains("<RoleName>c</RoleName>"), "{first}");
        assert!(first.contains("<IsTruncated>true</IsTruncated><Marker>after-b</Marker>"), "{first}");
        let last = body(&page(ANSWER.as_bytes(), Some("b"), 2).unwrap());
        assert!(last.contains("<RoleName>c</RoleName>") && !last.contains("<RoleName>a</RoleName>"), "{last}");
        assert!(last.contains("<IsTruncated>false</IsTruncated>") && !last.contains("<Marker>"), "{last}");
    }
}
