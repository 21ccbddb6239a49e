//! Mutual TLS for QUIC with rustls and the ring provider only: the center requires a
//! station certificate from its CA; the edge trusts only that CA and the configured
//! center name. Transport tuned for bulk transfer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use crate::pki::{station_dns_name, IssuedCert};
use crate::{Error, Result};

/// ALPN protocol id.
pub const ALPN: &[u8] = b"konvert/1";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Tls(format!("{what} is not a PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!("{what} holds no certificate")));
    }
    Ok(certs)
}

fn key(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| Error::Tls(format!("{what} is not a PEM private key")))
}

fn roots(ca_cert_pem: &str) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for c in certs(ca_cert_pem, "the CA certificate")? {
        roots
            .add(c)
            .map_err(|e| Error::Tls(format!("the CA certificate is not usable: {e}")))?;
    }
    Ok(Arc::new(roots))
}

fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.stream_receive_window(quinn::VarInt::from_u32(16 << 20))
        .receive_window(quinn::VarInt::from_u32(64 << 20))
        .send_window(64 << 20)
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(64))
        .keep_alive_interval(Some(Duration::from_secs(5)));
    // Probe up to jumbo frames: LANs and loopback that carry them take a sixth of the
    // packets (and per-packet crypto); elsewhere the probes fail and 1452 stays.
    let mut mtud = quinn::MtuDiscoveryConfig::default();
    mtud.upper_bound(8952);
    t.mtu_discovery_config(Some(mtud));
    if let Ok(idle) = quinn::IdleTimeout::try_from(Duration::from_secs(30)) {
        t.max_idle_timeout(Some(idle));
    }
    Arc::new(t)
}

/// The center's QUIC server config: presents `cert`, requires a client certificate that
/// chains to the CA.
pub fn server_config(ca_cert_pem: &str, cert: &IssuedCert) -> Result<quinn::ServerConfig> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca_cert_pem)?, provider())
        .build()
        .map_err(|e| Error::Tls(format!("client verifier: {e}")))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certs(&cert.cert_pem, "the center certificate")?,
            key(&cert.key_pem, "the center key")?,
        )
        .map_err(|e| Error::Tls(format!("the center certificate and key do not fit together: {e}")))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| Error::Tls(e.to_string()))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(quic));
    cfg.transport_config(transport());
    Ok(cfg)
}

/// The edge's QUIC client config: trusts only the CA, presents the station certificate.
pub fn client_config(ca_cert_pem: &str, station: &IssuedCert) -> Result<quinn::ClientConfig> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots(ca_cert_pem)?)
        .with_client_auth_cert(
            certs(&station.cert_pem, "the station certificate")?,
            key(&station.key_pem, "the station key")?,
        )
        .map_err(|e| Error::Tls(format!("the station certificate and key do not fit together: {e}")))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| Error::Tls(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(quic));
    cfg.transport_config(transport());
    Ok(cfg)
}

/// A server endpoint bound to `addr`.
pub fn server_endpoint(addr: SocketAddr, cfg: quinn::ServerConfig) -> Result<quinn::Endpoint> {
    quinn::Endpoint::server(cfg, addr).map_err(|e| Error::Connection(format!("cannot listen on {addr}: {e}")))
}

/// A client endpoint on an ephemeral port with `cfg` as its default.
pub fn client_endpoint(cfg: quinn::ClientConfig) -> Result<quinn::Endpoint> {
    let mut ep = quinn::Endpoint::client(SocketAddr::from(([0, 0, 0, 0], 0)))
        .map_err(|e| Error::Connection(format!("cannot open a UDP socket: {e}")))?;
    ep.set_default_client_config(cfg);
    Ok(ep)
}

/// The certificate chain the peer presented.
pub fn peer_certificates(conn: &quinn::Connection) -> Result<Vec<CertificateDer<'static>>> {
    conn.peer_identity()
        .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
        .map(|b| *b)
        .ok_or_else(|| Error::Tls("the peer presented no certificate".into()))
}

/// Checks that the peer's end-entity certificate names the station of `site`.
pub fn verify_station_site(peer_certs: &[CertificateDer<'_>], site: &str) -> Result<()> {
    let name = station_dns_name(site)?;
    let ee = peer_certs
        .first()
        .ok_or_else(|| Error::Tls("the station presented no certificate".into()))?;
    let cert = webpki::EndEntityCert::try_from(ee).map_err(|e| Error::Tls(format!("station certificate: {e:?}")))?;
    let server_name = ServerName::try_from(name.as_str()).map_err(|e| Error::Tls(e.to_string()))?;
    cert.verify_is_valid_for_subject_name(&server_name).map_err(|_| {
        Error::Tls(format!(
            "the station certificate is not for site {site}; enroll this station for its own site"
        ))
    })
}
