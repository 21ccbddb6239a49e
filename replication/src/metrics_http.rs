//! The `/metrics` endpoint of the center and of relays: Prometheus text over plain
//! HTTP/1.1, one request per connection, only the request head read (bounded).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::debug;

/// Renders the Prometheus text exposition at each scrape.
pub type Render = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// Binds the `/metrics` endpoint and serves `render`'s text in the background; returns the
/// bound address.
pub async fn serve(addr: SocketAddr, render: Render) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let mut sock = match listener.accept().await {
                Ok((sock, _)) => sock,
                Err(e) => {
                    // Out of descriptors and the like: do not spin; the next scrape retries.
                    debug!("metrics accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let render = render.clone();
            tokio::spawn(async move {
                // Read only the request head, bounded: this endpoint needs nothing else.
                let mut head = [0u8; 4096];
                let mut n = 0;
                while n < head.len() {
                    match tokio::time::timeout(std::time::Duration::from_secs(5), sock.read(&mut head[n..])).await {
                        Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                        Ok(Ok(k)) => n += k,
                    }
                    if head[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let request = String::from_utf8_lossy(&head[..n]);
                let wants = |method: &str| {
                    request.starts_with(&format!("{method} /metrics "))
                        || request.starts_with(&format!("{method} /metrics?"))
                };
                // HEAD: what GET would answer, without the body (uptime checks and load
                // balancers ask this way).
                let head_only = wants("HEAD");
                let response = if wants("GET") || head_only {
                    match render() {
                        Ok(body) => format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                            body.len(),
                            if head_only { "" } else { body.as_str() }
                        ),
                        Err(e) => format!("HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\n{e}"),
                    }
                } else {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
                };
                if let Err(e) = sock.write_all(response.as_bytes()).await {
                    debug!("metrics client went away: {e}");
                }
                let _ = sock.shutdown().await;
            });
        }
    });
    Ok(local)
}
