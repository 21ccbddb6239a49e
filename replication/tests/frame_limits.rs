//! A peer that starts a frame and never finishes it, or opens a stream and sends nothing,
//! no longer holds the stream open for ever; and one connection cannot hold more than its
//! share of unfinished frames. Real QUIC on loopback with mutual TLS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use konvert_replication::driver::{read_message_bounded, ConnectionFrames, FrameLimits};
use konvert_replication::pki::Ca;
use konvert_replication::{tls, Error};

const NAME: &str = "center.konvert";

/// A server that reads one bounded frame per stream and reports how each read ended and when.
async fn server(
    ca: &Ca,
    limits: FrameLimits,
) -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<(String, Duration)>,
    quinn::Endpoint,
) {
    let cert = ca.issue_center(NAME).unwrap();
    let endpoint = tls::server_endpoint(
        "127.0.0.1:0".parse().unwrap(),
        tls::server_config(&ca.cert_pem, &cert, &[]).unwrap(),
    )
    .unwrap();
    let addr = endpoint.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let ep = endpoint.clone();
    tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let conn = incoming.await.unwrap();
                let frames = ConnectionFrames::new(limits);
                while let Ok((_send, mut recv)) = conn.accept_bi().await {
                    let (tx, frames) = (tx.clone(), frames.clone());
                    tokio::spawn(async move {
                        let started = Instant::now();
                        let outcome = match read_message_bounded(&mut recv, &frames).await {
                            Ok(m) => format!("message {m:?}"),
                            Err(Error::FrameTimeout { what, .. }) => format!("timeout: {what}"),
                            Err(Error::TooManyUnfinished(n)) => format!("too many: {n}"),
                            Err(e) => format!("other: {e}"),
                        };
                        let _ = tx.send((outcome, started.elapsed()));
                    });
                }
            });
        }
    });
    (addr, rx, endpoint)
}

async fn client(ca: &Ca, addr: std::net::SocketAddr) -> (quinn::Endpoint, quinn::Connection) {
    let station = ca.issue_station("0101").unwrap();
    let ep = tls::client_endpoint(tls::client_config(&ca.cert_pem, &station).unwrap()).unwrap();
    let conn = ep.connect(addr, NAME).unwrap().await.unwrap();
    (ep, conn)
}

fn limits() -> FrameLimits {
    FrameLimits {
        start: Duration::from_secs(1),
        floor: Duration::from_secs(1),
        min_rate: 1 << 20,
        unfinished_per_connection: 2,
    }
}

async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Duration)>) -> (String, Duration) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a stalled stream was still open after 10 s")
        .unwrap()
}

#[tokio::test]
async fn a_frame_never_finished_is_closed_in_time() {
    let ca = Ca::generate("center CA").unwrap();
    let (addr, mut rx, _server) = server(&ca, limits()).await;
    let (_ep, conn) = client(&ca, addr).await;
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    // A length of 1,000 bytes, then 10 of them, then nothing.
    send.write_all(&1000u32.to_le_bytes()).await.unwrap();
    send.write_all(&[0u8; 10]).await.unwrap();
    let (outcome, took) = next(&mut rx).await;
    assert_eq!(outcome, "timeout: the rest of a started frame");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn a_frame_whose_length_never_completes_is_closed_in_time() {
    let ca = Ca::generate("center CA").unwrap();
    let (addr, mut rx, _server) = server(&ca, limits()).await;
    let (_ep, conn) = client(&ca, addr).await;
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(&[7u8]).await.unwrap();
    let (outcome, took) = next(&mut rx).await;
    assert_eq!(outcome, "timeout: the frame's length");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn one_connection_holds_at_most_its_share_of_unfinished_frames() {
    let ca = Ca::generate("center CA").unwrap();
    let (addr, mut rx, _server) = server(&ca, limits()).await;
    let (_ep, conn) = client(&ca, addr).await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        let (mut send, recv) = conn.open_bi().await.unwrap();
        send.write_all(&1000u32.to_le_bytes()).await.unwrap();
        streams.push((send, recv));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(next(&mut rx).await);
    }
    let refused: Vec<_> = outcomes.iter().filter(|(o, _)| o == "too many: 2").collect();
    assert_eq!(refused.len(), 1, "{outcomes:?}");
    // The third was refused at once, not after a timeout.
    assert!(refused[0].1 < Duration::from_millis(500), "{outcomes:?}");
    assert_eq!(
        outcomes.iter().filter(|(o, _)| o.starts_with("timeout")).count(),
        2,
        "{outcomes:?}"
    );
}
