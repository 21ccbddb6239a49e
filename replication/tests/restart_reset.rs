//! A center that died without a word (kill -9) and was started again with the same
//! stateless-reset key resets its stations' old connections at once, instead of leaving
//! them to the idle timeout.

// Test helpers: a failed step is a failed test, and unwrap reports it most plainly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use konvert_replication::pki::Ca;
use konvert_replication::tls;

const NAME: &str = "center.konvert";

/// A center endpoint that accepts connections and keeps them, reading whatever comes.
fn serve(ca: &Ca, addr: &str, secret: &[u8; 32]) -> quinn::Endpoint {
    let cert = ca.issue_center(NAME).unwrap();
    let cfg = tls::server_config(&ca.cert_pem, &cert, &[]).unwrap();
    let ep = tls::server_endpoint_keyed(addr.parse().unwrap(), cfg, secret).unwrap();
    let accepting = ep.clone();
    tokio::spawn(async move {
        while let Some(incoming) = accepting.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok((_send, mut recv)) = conn.accept_bi().await {
                    tokio::spawn(async move { while let Ok(Some(_)) = recv.read_chunk(1 << 16, true).await {} });
                }
            });
        }
    });
    ep
}

#[test]
fn a_restarted_center_resets_the_connections_of_its_previous_run() {
    let ca = Ca::generate("center CA").unwrap();
    let secret = [7u8; 32];
    let edge_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // The first run of the center lives on its own runtime, so it can vanish at once:
    // dropping that runtime drops its tasks before any close frame is sent.
    let first_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let first = first_rt.block_on(async { serve(&ca, "127.0.0.1:0", &secret) });
    let addr = first.local_addr().unwrap();

    let station = ca.issue_station("0101").unwrap();
    let client_cfg = tls::client_config(&ca.cert_pem, &station).unwrap();
    let (conn, mut send) = edge_rt.block_on(async {
        let ep = tls::client_endpoint(client_cfg).unwrap();
        let conn = ep.connect(addr, NAME).unwrap().await.unwrap();
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        send.write_all(b"first run").await.unwrap();
        (conn, send)
    });

    drop(first);
    drop(first_rt);
    edge_rt.block_on(async {
        let _second = serve(&ca, &addr.to_string(), &secret);
        // The station goes on sending to what it thinks is the same connection.
        let _ = send.write_all(b"still there?").await;
        let end = tokio::time::timeout(Duration::from_secs(25), conn.closed())
            .await
            .expect("the old connection was not ended before the idle timeout");
        assert!(
            matches!(end, quinn::ConnectionError::Reset),
            "the restarted center should reset the old connection, got: {end}"
        );
    });
}
