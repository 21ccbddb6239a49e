//! Mutual TLS over real QUIC on loopback: who may connect, and to whom.

// Test helpers: a failed step is a failed test, and unwrap reports it most plainly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use konvert_replication::pki::{Ca, IssuedCert};
use konvert_replication::tls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

const NAME: &str = "center.konvert";

struct Center {
    addr: SocketAddr,
    accepted: tokio::sync::mpsc::UnboundedReceiver<Result<String, String>>,
    _endpoint: quinn::Endpoint,
}

/// A server that reports, for each connection, what it echoed or the error.
fn center(ca: &Ca) -> Center {
    let cert = ca.issue_center(NAME).unwrap();
    let endpoint = tls::server_endpoint(
        "127.0.0.1:0".parse().unwrap(),
        tls::server_config(&ca.cert_pem, &cert).unwrap(),
    )
    .unwrap();
    let addr = endpoint.local_addr().unwrap();
    let (tx, accepted) = tokio::sync::mpsc::unbounded_channel();
    let ep = endpoint.clone();
    tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let result = async {
                    let conn = incoming.await.map_err(|e| e.to_string())?;
                    let certs = tls::peer_certificates(&conn).map_err(|e| e.to_string())?;
                    tls::verify_station_site(&certs, "0101").map_err(|e| e.to_string())?;
                    if tls::verify_station_site(&certs, "0102").is_ok() {
                        return Err("a station certificate passed for another site".to_owned());
                    }
                    let (mut send, mut recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
                    let got = recv.read_to_end(1024).await.map_err(|e| e.to_string())?;
                    send.write_all(&got).await.map_err(|e| e.to_string())?;
                    send.finish().map_err(|e| e.to_string())?;
                    let _ = conn.closed().await;
                    Ok(String::from_utf8_lossy(&got).into_owned())
                }
                .await;
                let _ = tx.send(result);
            });
        }
    });
    Center {
        addr,
        accepted,
        _endpoint: endpoint,
    }
}

/// Connects and echoes a message; Err if anything on the way fails.
async fn echo(cfg: quinn::ClientConfig, addr: SocketAddr, name: &str) -> Result<String, String> {
    let ep = tls::client_endpoint(cfg).map_err(|e| e.to_string())?;
    let work = async {
        let conn = ep
            .connect(addr, name)
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        send.write_all(b"hello").await.map_err(|e| e.to_string())?;
        send.finish().map_err(|e| e.to_string())?;
        let back = recv.read_to_end(1024).await.map_err(|e| e.to_string())?;
        conn.close(0u32.into(), b"done");
        Ok(String::from_utf8_lossy(&back).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .map_err(|_| "timed out".to_owned())?
}

fn station(ca: &Ca) -> IssuedCert {
    ca.issue_station("0101").unwrap()
}

#[tokio::test]
async fn a_station_with_a_valid_certificate_connects_and_is_named_for_its_site() {
    let ca = Ca::generate("center CA").unwrap();
    let mut c = center(&ca);
    let got = echo(tls::client_config(&ca.cert_pem, &station(&ca)).unwrap(), c.addr, NAME).await;
    assert_eq!(got.unwrap(), "hello");
    assert_eq!(c.accepted.recv().await.unwrap().unwrap(), "hello");
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let ca = Ca::generate("center CA").unwrap();
    let mut c = center(&ca);
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.cert_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut tls_cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls_cfg.alpn_protocols = vec![tls::ALPN.to_vec()];
    let cfg = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls_cfg).unwrap(),
    ));
    assert!(echo(cfg, c.addr, NAME).await.is_err());
    let server_side = tokio::time::timeout(Duration::from_secs(10), c.accepted.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(server_side.is_err(), "the center served a client without a certificate");
}

#[tokio::test]
async fn a_station_certificate_from_another_ca_is_refused() {
    let ca = Ca::generate("center CA").unwrap();
    let rogue = Ca::generate("rogue CA").unwrap();
    let mut c = center(&ca);
    // The rogue station trusts the real CA for the server, but its own certificate is the rogue's.
    let cfg = tls::client_config(&ca.cert_pem, &station(&rogue)).unwrap();
    assert!(echo(cfg, c.addr, NAME).await.is_err());
    let server_side = tokio::time::timeout(Duration::from_secs(10), c.accepted.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(server_side.is_err());
}

#[tokio::test]
async fn the_edge_refuses_a_center_from_another_ca_or_with_another_name() {
    let ca = Ca::generate("center CA").unwrap();
    let impostor = center(&Ca::generate("impostor CA").unwrap());
    let cfg = tls::client_config(&ca.cert_pem, &station(&ca)).unwrap();
    let err = echo(cfg, impostor.addr, NAME).await.unwrap_err();
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    let real = center(&ca);
    let cfg = tls::client_config(&ca.cert_pem, &station(&ca)).unwrap();
    let err = echo(cfg, real.addr, "other.konvert").await.unwrap_err();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}
