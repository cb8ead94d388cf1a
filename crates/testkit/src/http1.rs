//! The little HTTP/1.1 the proxies in front of moto need: read one request
//! off a connection, and send one to moto with `connection: close`,
//! reading its whole answer.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One request as read.
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Reads one request; `None` when the client closed before sending one.
pub(crate) async fn read_request(client: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let mut parts = request_line.split(' ');
    let (method, path) = (parts.next().unwrap_or("POST").to_owned(), parts.next().unwrap_or("/").to_owned());
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned())).collect();
    let length: usize = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    while buffer.len() < header_end + length {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = buffer[header_end..(header_end + length).min(buffer.len())].to_vec();
    Ok(Some(Request { method, path, headers, body }))
}

/// Sends `head` (request line and headers, without the blank line) and
/// `body` to `target` (`host:port`) and returns the whole answer.
pub(crate) async fn exchange(target: &str, head: &str, body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut upstream = TcpStream::connect(target).await?;
    upstream.write_all(format!("{head}connection: close\r\n\r\n").as_bytes()).await?;
    upstream.write_all(body).await?;
    let mut answer = Vec::new();
    upstream.read_to_end(&mut answer).await?;
    Ok(answer)
}
