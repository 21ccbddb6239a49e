//! The `/metrics` endpoint of the center and of relays: Prometheus text over plain
//! HTTP/1.1, one request per connection, only the request head read (bounded). The
//! center also serves its monitoring page here ([`serve_with_pages`]): HTML built on a
//! blocking thread, at most [`MAX_PAGE_BUILDS`] at once, scripts forbidden. Every request
//! head is read within one 5 s deadline and every answer written within 30 s.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::{debug, warn};

/// Renders the Prometheus text exposition at each scrape.
pub type Render = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// Gives the HTML page for a request path (`GET` or `HEAD`), `None` when there is none.
pub type Pages = Arc<dyn Fn(&str) -> Option<Result<String, String>> + Send + Sync>;

/// Pages built at once; more requests for one are answered 503 (each is built afresh).
pub const MAX_PAGE_BUILDS: usize = 4;

/// How long a client may take to read its answer.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Headers of an HTML page: no scripts, frames, sniffing or caching.
const PAGE_HEADERS: &str = "Content-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\n\
Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n\
X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n";

/// Binds the `/metrics` endpoint and serves `render`'s text in the background; returns the
/// bound address.
pub async fn serve(addr: SocketAddr, render: Render) -> std::io::Result<SocketAddr> {
    serve_with_pages(addr, render, None).await
}

/// [`serve`], and for other paths the HTML `pages` gives (built on a blocking thread).
pub async fn serve_with_pages(addr: SocketAddr, render: Render, pages: Option<Pages>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_PAGE_BUILDS));
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
            let pages = pages.clone();
            let slots = slots.clone();
            tokio::spawn(async move {
                // Read only the request head, bounded: this endpoint needs nothing else.
                let mut head = [0u8; 4096];
                let mut n = 0;
                // One deadline for the whole head: a client trickling bytes cannot hold a slot.
                let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
                while n < head.len() {
                    match tokio::time::timeout_at(deadline, sock.read(&mut head[n..])).await {
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
                    page(&request, pages, &slots).await
                };
                // A client that does not read its answer is dropped after WRITE_TIMEOUT.
                match tokio::time::timeout(WRITE_TIMEOUT, sock.write_all(response.as_bytes())).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => debug!("metrics client went away: {e}"),
                    Err(_) => debug!("metrics client did not read its answer in time"),
                }
                let _ = sock.shutdown().await;
            });
        }
    });
    Ok(local)
}

/// The answer to a request for anything but `/metrics`: the page `pages` gives, or 404.
async fn page(request: &str, pages: Option<Pages>, slots: &Arc<tokio::sync::Semaphore>) -> String {
    let not_found = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned();
    let mut words = request.lines().next().unwrap_or("").split(' ');
    let (Some(method), Some(path), Some(pages)) = (words.next(), words.next(), pages) else {
        return not_found;
    };
    let head_only = method == "HEAD";
    if !(head_only || method == "GET") || !path.starts_with('/') {
        return not_found;
    }
    // Pages are built per request: only so many at once, the rest are asked to retry.
    let Ok(_slot) = slots.clone().try_acquire_owned() else {
        return "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            .to_owned();
    };
    let path = path.to_owned();
    match tokio::task::spawn_blocking(move || pages(&path)).await {
        Ok(Some(Ok(body))) => format!(
            "HTTP/1.1 200 OK\r\n{PAGE_HEADERS}Content-Length: {}\r\nConnection: close\r\n\r\n{}",
            body.len(),
            if head_only { "" } else { body.as_str() }
        ),
        Ok(None) => not_found,
        failed => {
            // The reason goes to the log, not to whoever asked over the network.
            match failed {
                Ok(Some(Err(e))) => warn!("the monitoring page could not be built: {e}"),
                Err(e) => warn!("the monitoring page could not be built: {e}"),
                _ => {}
            }
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n\
             the page could not be built; the center's log says why\n"
                .to_owned()
        }
    }
}

#[cfg(test)]
#[path = "metrics_http_tests.rs"]
mod tests;
