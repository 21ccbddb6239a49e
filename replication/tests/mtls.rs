//! Mutual TLS over real QUIC on loopback: who may connect, and to whom.

// Test helpers: a failed step is a failed test, and unwrap reports it most plainly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use konvert_replication::pki::{Ca, IssuedCert};
use konvert_replication::tls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

const NAME: &str = "center.konvert";
/// No step of these tests may take longer; a hang is a failure.
const LIMIT: Duration = Duration::from_secs(10);

struct Center {
    addr: SocketAddr,
    /// Per connection: what the center echoed, or where and why it failed.
    outcomes: tokio::sync::mpsc::UnboundedReceiver<Result<String, String>>,
    /// Streams the center accepted, over all connections.
    streams: Arc<AtomicUsize>,
    _endpoint: quinn::Endpoint,
}

impl Center {
    /// The outcome of the next connection, within [`LIMIT`].
    async fn next_outcome(&mut self) -> Result<String, String> {
        tokio::time::timeout(LIMIT, self.outcomes.recv())
            .await
            .expect("the center reported nothing in time")
            .expect("the center's accept loop ended")
    }

    fn streams_accepted(&self) -> usize {
        self.streams.load(Ordering::SeqCst)
    }
}

/// A center on `bind` with a certificate for `NAME` from `ca`, echoing one stream per
/// connection from the station of site 0101.
fn center_on(ca: &Ca, bind: &str) -> Center {
    let cert = ca.issue_center(NAME).unwrap();
    let endpoint = tls::server_endpoint(
        bind.parse().unwrap(),
        tls::server_config(&ca.cert_pem, &cert, &[]).unwrap(),
    )
    .unwrap();
    let addr = endpoint.local_addr().unwrap();
    let (tx, outcomes) = tokio::sync::mpsc::unbounded_channel();
    let streams = Arc::new(AtomicUsize::new(0));
    let ep = endpoint.clone();
    let counter = streams.clone();
    tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            let tx = tx.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let result = async {
                    let conn = incoming.await.map_err(|e| format!("handshake: {e}"))?;
                    let certs = tls::peer_certificates(&conn).map_err(|e| format!("peer certificates: {e}"))?;
                    tls::verify_station_site(&certs, "0101").map_err(|e| format!("site 0101: {e}"))?;
                    match tls::verify_station_site(&certs, "0102") {
                        Ok(()) => return Err("a station certificate passed for another site".to_owned()),
                        Err(e) if e.to_string().contains("0102") => {}
                        Err(e) => return Err(format!("the error does not name the site: {e}")),
                    }
                    let (mut send, mut recv) = conn.accept_bi().await.map_err(|e| format!("accept_bi: {e}"))?;
                    counter.fetch_add(1, Ordering::SeqCst);
                    let got = recv.read_to_end(1024).await.map_err(|e| format!("read: {e}"))?;
                    send.write_all(&got).await.map_err(|e| format!("write: {e}"))?;
                    send.finish().map_err(|e| format!("finish: {e}"))?;
                    let _ = conn.closed().await;
                    Ok(String::from_utf8_lossy(&got).into_owned())
                };
                let result = tokio::time::timeout(LIMIT, result)
                    .await
                    .unwrap_or_else(|_| Err("timed out".to_owned()));
                let _ = tx.send(result);
            });
        }
    });
    Center {
        addr,
        outcomes,
        streams,
        _endpoint: endpoint,
    }
}

fn center(ca: &Ca) -> Center {
    center_on(ca, "127.0.0.1:0")
}

/// Connects with `cfg` to `name` at `addr` and echoes a message; Err says which step
/// failed and, once a connection existed, how [`tls::explain_connection_error`] reads its end.
async fn echo(cfg: quinn::ClientConfig, addr: SocketAddr, name: &str) -> Result<String, String> {
    let ep = tls::client_endpoint(cfg).map_err(|e| e.to_string())?;
    let work = async {
        let conn = match ep.connect(addr, name).map_err(|e| format!("connect: {e}"))?.await {
            Ok(conn) => conn,
            Err(e) => return Err(format!("handshake: {}", tls::explain_connection_error(&e))),
        };
        let exchange = async {
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| format!("open_bi: {e}"))?;
            send.write_all(b"hello").await.map_err(|e| format!("write: {e}"))?;
            send.finish().map_err(|e| format!("finish: {e}"))?;
            recv.read_to_end(1024).await.map_err(|e| format!("read: {e}"))
        };
        match exchange.await {
            Ok(back) => {
                conn.close(0u32.into(), b"done");
                Ok(String::from_utf8_lossy(&back).into_owned())
            }
            Err(step) => {
                let why = conn.closed().await;
                Err(format!("{step}; {}", tls::explain_connection_error(&why)))
            }
        }
    };
    let result = tokio::time::timeout(LIMIT, work)
        .await
        .unwrap_or_else(|_| Err("timed out".to_owned()));
    ep.wait_idle().await;
    result
}

fn station(ca: &Ca) -> IssuedCert {
    ca.issue_station("0101").unwrap()
}

/// A client that trusts `ca` for the server but presents no certificate of its own.
fn client_without_certificate(ca: &Ca) -> quinn::ClientConfig {
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
    quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls_cfg).unwrap(),
    ))
}

#[tokio::test]
async fn a_station_with_a_valid_certificate_connects_and_is_named_for_its_site() {
    let ca = Ca::generate("center CA").unwrap();
    let mut c = center(&ca);
    let got = echo(tls::client_config(&ca.cert_pem, &station(&ca)).unwrap(), c.addr, NAME).await;
    assert_eq!(got.unwrap(), "hello");
    // The center checked site 0101 (Ok) and 0102 (Err naming the site) before echoing.
    assert_eq!(c.next_outcome().await.unwrap(), "hello");
    assert_eq!(c.streams_accepted(), 1);
}

#[tokio::test]
async fn a_station_connects_over_ipv6_too() {
    let ca = Ca::generate("center CA").unwrap();
    let Ok(ep) = std::net::UdpSocket::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    };
    drop(ep);
    let mut c = center_on(&ca, "[::1]:0");
    let got = echo(tls::client_config(&ca.cert_pem, &station(&ca)).unwrap(), c.addr, NAME).await;
    assert_eq!(got.unwrap(), "hello");
    assert_eq!(c.next_outcome().await.unwrap(), "hello");
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let ca = Ca::generate("center CA").unwrap();
    let mut c = center(&ca);
    let err = echo(client_without_certificate(&ca), c.addr, NAME).await.unwrap_err();
    eprintln!("client sees: {err}");
    assert!(err.contains("requires a station certificate"), "{err}");
    let server_side = c.next_outcome().await.unwrap_err();
    eprintln!("center sees: {server_side}");
    assert!(server_side.starts_with("handshake"), "{server_side}");
    assert_eq!(
        c.streams_accepted(),
        0,
        "the center accepted a stream from a client without a certificate"
    );
}

#[tokio::test]
async fn a_station_certificate_from_another_ca_is_refused() {
    let ca = Ca::generate("center CA").unwrap();
    let rogue = Ca::generate("rogue CA").unwrap();
    let mut c = center(&ca);
    // The rogue station trusts the real CA for the server, but its own certificate is the rogue's.
    let cfg = tls::client_config(&ca.cert_pem, &station(&rogue)).unwrap();
    let err = echo(cfg, c.addr, NAME).await.unwrap_err();
    eprintln!("client sees: {err}");
    assert!(
        err.contains("not signed by the center's CA; enroll the station again"),
        "{err}"
    );
    let server_side = c.next_outcome().await.unwrap_err();
    eprintln!("center sees: {server_side}");
    assert!(server_side.starts_with("handshake"), "{server_side}");
    assert_eq!(c.streams_accepted(), 0);
}

#[tokio::test]
async fn the_center_certificate_cannot_be_used_as_a_station_certificate() {
    let ca = Ca::generate("center CA").unwrap();
    let mut c = center(&ca);
    // Signed by the right CA, but for server authentication only.
    let cfg = tls::client_config(&ca.cert_pem, &ca.issue_center(NAME).unwrap()).unwrap();
    assert!(echo(cfg, c.addr, NAME).await.is_err());
    let server_side = c.next_outcome().await.unwrap_err();
    eprintln!("center sees: {server_side}");
    assert!(server_side.starts_with("handshake"), "{server_side}");
    assert_eq!(c.streams_accepted(), 0);
}

#[tokio::test]
async fn the_edge_refuses_a_center_from_another_ca() {
    let ca = Ca::generate("center CA").unwrap();
    let impostor = center(&Ca::generate("impostor CA").unwrap());
    let cfg = tls::client_config(&ca.cert_pem, &station(&ca)).unwrap();
    let err = echo(cfg, impostor.addr, NAME).await.unwrap_err();
    eprintln!("client sees: {err}");
    assert!(err.contains("not signed by the CA this station trusts"), "{err}");
    assert!(err.starts_with("handshake"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert_eq!(impostor.streams_accepted(), 0);
}

#[tokio::test]
async fn the_edge_refuses_a_center_with_another_name() {
    let ca = Ca::generate("center CA").unwrap();
    let real = center(&ca);
    let cfg = tls::client_config(&ca.cert_pem, &station(&ca)).unwrap();
    let err = echo(cfg, real.addr, "other.konvert").await.unwrap_err();
    eprintln!("client sees: {err}");
    assert!(err.contains("not valid for the configured center name"), "{err}");
    assert!(err.starts_with("handshake"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert_eq!(real.streams_accepted(), 0);
}

#[tokio::test]
async fn a_station_certificate_for_another_site_does_not_pass_as_this_one() {
    let ca = Ca::generate("center CA").unwrap();
    let mut c = center(&ca);
    // The center of this test accepts only site 0101.
    let cfg = tls::client_config(&ca.cert_pem, &ca.issue_station("0102").unwrap()).unwrap();
    assert!(echo(cfg, c.addr, NAME).await.is_err());
    let server_side = c.next_outcome().await.unwrap_err();
    assert!(
        server_side.starts_with("site 0101") && server_side.contains("0101"),
        "{server_side}"
    );
    assert_eq!(c.streams_accepted(), 0);
}
