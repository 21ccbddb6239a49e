use super::*;
use std::sync::mpsc;
use std::sync::Mutex;
use tokio::net::TcpStream;

async fn ask(addr: SocketAddr, request: &str) -> String {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    sock.read_to_end(&mut answer).await.unwrap();
    String::from_utf8(answer).unwrap()
}

fn metrics() -> Render {
    Arc::new(|| Ok("konvert_up 1\n".to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_served_beside_metrics_with_head_and_404() {
    let pages: Pages = Arc::new(|path: &str| (path == "/").then(|| Ok("<p>page</p>".to_owned())));
    let addr = serve_with_pages("127.0.0.1:0".parse().unwrap(), metrics(), Some(pages))
        .await
        .unwrap();
    let page = ask(addr, "GET / HTTP/1.1\r\n\r\n").await;
    assert!(
        page.starts_with("HTTP/1.1 200 OK\r\n") && page.ends_with("\r\n\r\n<p>page</p>"),
        "{page}"
    );
    assert!(page.contains("Content-Security-Policy: default-src 'none'"), "{page}");
    let head = ask(addr, "HEAD / HTTP/1.1\r\n\r\n").await;
    assert!(
        head.contains("Content-Length: 11\r\n") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    assert!(ask(addr, "GET /metrics HTTP/1.1\r\n\r\n")
        .await
        .ends_with("konvert_up 1\n"));
    for other in ["GET /other HTTP/1.1", "POST / HTTP/1.1", "GET x HTTP/1.1", ""] {
        let answer = ask(addr, &format!("{other}\r\n\r\n")).await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{other}: {answer}");
    }
    // Without pages (a relay), only /metrics.
    let bare = serve("127.0.0.1:0".parse().unwrap(), metrics()).await.unwrap();
    assert!(ask(bare, "GET / HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 404"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_page_says_nothing_of_why_and_builds_beyond_the_bound_are_refused() {
    // Each build waits until the test lets it go, and says when it has started.
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (started_tx, go_rx) = (Mutex::new(started_tx), Arc::new(Mutex::new(go_rx)));
    let pages: Pages = Arc::new(move |path: &str| match path {
        "/fail" => Some(Err("/secret/path/inbox: permission denied".to_owned())),
        _ => {
            started_tx.lock().unwrap().send(()).unwrap();
            go_rx.lock().unwrap().recv().unwrap();
            Some(Ok("slow".to_owned()))
        }
    });
    let addr = serve_with_pages("127.0.0.1:0".parse().unwrap(), metrics(), Some(pages))
        .await
        .unwrap();
    let failed = ask(addr, "GET /fail HTTP/1.1\r\n\r\n").await;
    assert!(failed.starts_with("HTTP/1.1 500"), "{failed}");
    assert!(!failed.contains("secret"), "{failed}");
    let mut slow = Vec::new();
    for _ in 0..MAX_PAGE_BUILDS {
        slow.push(tokio::spawn(ask(addr, "GET /slow HTTP/1.1\r\n\r\n")));
    }
    for _ in 0..MAX_PAGE_BUILDS {
        tokio::task::block_in_place(|| started_rx.recv().unwrap());
    }
    let refused = ask(addr, "GET /slow HTTP/1.1\r\n\r\n").await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    // /metrics is not held up by the pages being built.
    assert!(ask(addr, "GET /metrics HTTP/1.1\r\n\r\n")
        .await
        .ends_with("konvert_up 1\n"));
    for _ in 0..MAX_PAGE_BUILDS {
        go_tx.send(()).unwrap();
    }
    for s in slow {
        assert!(s.await.unwrap().ends_with("slow"));
    }
}
