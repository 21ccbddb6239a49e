//! Mutual TLS for QUIC with rustls and the ring provider only: the center requires a
//! station certificate from its CA; the edge trusts only that CA and the configured
//! center name. The transport is tuned for bulk transfer.
//!
//! Revocation: the center checks station certificates against the CA's revocation list
//! (end-entity certificates only) and refuses every station while that list is expired.
//! A new list only affects new handshakes; the center closes the live connections of a
//! revoked station itself, with [`CLOSE_REVOKED`].

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
/// A certificate as a peer presents it (DER).
pub use rustls::pki_types::CertificateDer;
use rustls::pki_types::{CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use crate::pki::{station_dns_name, IssuedCert};
use crate::{Error, Result};

/// ALPN protocol id of konvert's replication protocol.
pub const ALPN: &[u8] = b"konvert/1";

/// Application close code with which the center closes a revoked station's live connections.
pub const CLOSE_REVOKED: u32 = 44;

/// TLS alert `certificate_revoked`.
const ALERT_REVOKED: u64 = 44;
/// TLS alert `access_denied`: what the center sends while its revocation list is expired.
const ALERT_CRL_EXPIRED: u64 = 49;

/// Receive window of one stream. Sized for the bandwidth-delay product of the worst site
/// link we plan for (100 Mbit/s at 100 ms RTT ≈ 1.25 MB) with room to spare, and no more:
/// bytes in this window that the center had not yet made durable are what a kill -9 of
/// the center costs on top of one inbox segment (4 MiB), per packet in flight.
pub const STREAM_WINDOW: u32 = 4 << 20;
/// Receive window of a whole connection: a site's packets in flight at full stream windows.
const CONNECTION_WINDOW: u32 = 32 << 20;
/// How much a sender may buffer unacknowledged: several BDPs, so a lost datagram never
/// starves the link, yet bounded so an edge's memory stays small whatever it sends.
const SEND_WINDOW: u64 = 16 << 20;
/// UDP socket buffers: a burst from 100 sites (or a GRO batch) must not overflow the
/// kernel's default ~200 KB and turn into losses the congestion controller reacts to.
const UDP_BUFFER: usize = 4 << 20;
/// Concurrent bidirectional streams (one per packet plus control).
const MAX_BIDI_STREAMS: u32 = 128;
/// Keep-alive: well inside the idle timeout and NAT bindings on the way.
const KEEP_ALIVE: Duration = Duration::from_secs(2);
/// A peer silent for this long (milliseconds) is gone. Short enough that an edge whose
/// center died (kill -9, power) reconnects and resumes within seconds, long enough that
/// a link's brief blackout (several keep-alives lost) does not drop the connection.
const IDLE_TIMEOUT_MS: u32 = 10_000;
/// Upper bound for path-MTU probing (jumbo frames on LANs and loopback; elsewhere the
/// probes fail and quinn stays at its safe size).
const MTU_UPPER_BOUND: u16 = 8952;

/// The only crypto provider konvert uses (never aws-lc-rs).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// All certificates in `pem`; `what` names them in errors.
fn certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Tls(format!("{what} is not valid PEM ({e}); check the file")))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!(
            "{what} holds no PEM certificate (no \"BEGIN CERTIFICATE\" block); check the file"
        )));
    }
    Ok(certs)
}

/// A certificate's SHA-256 over its DER, as 64 lowercase hex digits: what a node that
/// issued it keeps to accept that certificate and no other of the same name.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, cert.as_ref()))
}

/// The [`fingerprint`] of the first certificate in `pem`.
pub fn pem_fingerprint(pem: &str) -> Result<String> {
    let certs = certs(pem, "the certificate")?;
    certs
        .first()
        .map(fingerprint)
        .ok_or_else(|| Error::Tls("the certificate holds no PEM certificate; check the file".into()))
}

/// The private key in `pem`; the error never shows the key.
fn key(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| Error::Tls(format!("{what} is not a PEM private key; check the key file")))
}

/// A root store holding only the CA certificate(s) in `ca_cert_pem`.
fn roots(ca_cert_pem: &str) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for c in certs(ca_cert_pem, "the CA certificate")? {
        roots
            .add(c)
            .map_err(|e| Error::Tls(format!("the CA certificate is not usable as a trust anchor: {e}")))?;
    }
    Ok(Arc::new(roots))
}

/// Transport parameters for bulk transfer on LAN and WAN (both sides use the same).
pub(crate) fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.stream_receive_window(quinn::VarInt::from_u32(STREAM_WINDOW))
        .receive_window(quinn::VarInt::from_u32(CONNECTION_WINDOW))
        .send_window(SEND_WINDOW)
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(MAX_BIDI_STREAMS))
        .keep_alive_interval(Some(KEEP_ALIVE))
        .max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(IDLE_TIMEOUT_MS))));
    let mut mtud = quinn::MtuDiscoveryConfig::default();
    mtud.upper_bound(MTU_UPPER_BOUND);
    t.mtu_discovery_config(Some(mtud));
    // BBR, not the default Cubic: exam sites sit behind lossy regional links, where a
    // loss-based controller collapses. Through the test proxy at 2 % loss and 50 ms RTT
    // (with a 1.5 s blackout) 5.4 MB took 4.6 s with BBR and 44.7 s with Cubic; on
    // loopback BBR costs about 10 % (104 vs 113 MB/s end to end in `bench transfer`).
    t.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
    Arc::new(t)
}

/// The station certificate verifier, telling an expired revocation list apart: rustls
/// answers it with `unknown_ca`, the same alert as a certificate from another CA, which
/// would send the station operator after the wrong fault. It becomes `access_denied`.
#[derive(Debug)]
struct StationVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    /// When the expired list was last logged (Unix seconds): once a minute is enough.
    expired_logged: AtomicU64,
}

impl ClientCertVerifier for StationVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
            .map_err(|e| match e {
                rustls::Error::InvalidCertificate(
                    CertificateError::ExpiredRevocationList | CertificateError::ExpiredRevocationListContext { .. },
                ) => {
                    let last = self.expired_logged.load(Ordering::Relaxed);
                    if now.as_secs().saturating_sub(last) >= 60 {
                        self.expired_logged.store(now.as_secs(), Ordering::Relaxed);
                        tracing::error!(
                            "refused a station: the revocation list has expired — sign a new one \
                             (`konvert keys renew-crl`)"
                        );
                    }
                    rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
                }
                other => other,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The center's QUIC server config: presents `cert` and REQUIRES a client certificate
/// chaining to the CA in `ca_cert_pem` (with the clientAuth key usage); TLS 1.3, ALPN [`ALPN`].
///
/// With revocation lists in `crls` (check them with [`crate::pki::verify_crl`] first), a
/// station certificate on a list is refused (`certificate_revoked`), and while a list is
/// expired every station is refused (`access_denied`).
pub fn server_config(
    ca_cert_pem: &str,
    cert: &IssuedCert,
    crls: &[CertificateRevocationListDer<'static>],
) -> Result<quinn::ServerConfig> {
    server_config_for(ca_cert_pem, cert, crls, ALPN)
}

/// [`server_config`] for another protocol on the same TLS rules: the records' mirror
/// (`konvert-mirror/1`) runs with the federal node's CA and its own ALPN, so that a
/// station can never talk the mirror protocol to it, nor a region the packet protocol.
pub fn server_config_for(
    ca_cert_pem: &str,
    cert: &IssuedCert,
    crls: &[CertificateRevocationListDer<'static>],
    alpn: &[u8],
) -> Result<quinn::ServerConfig> {
    let mut builder = WebPkiClientVerifier::builder_with_provider(roots(ca_cert_pem)?, provider());
    if !crls.is_empty() {
        builder = builder
            .with_crls(crls.iter().cloned())
            .only_check_end_entity_revocation()
            .enforce_revocation_expiration();
    }
    let webpki = builder
        .build()
        .map_err(|e| Error::Tls(format!("cannot build the station certificate verifier: {e}")))?;
    let verifier = Arc::new(StationVerifier {
        inner: webpki,
        expired_logged: AtomicU64::new(0),
    });
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(format!("TLS 1.3 is not available: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certs(&cert.cert_pem, "the center certificate")?,
            key(&cert.key_pem, "the center key")?,
        )
        .map_err(|e| {
            Error::Tls(format!(
                "the center certificate and key do not fit together ({e}); issue the center certificate again"
            ))
        })?;
    tls.alpn_protocols = vec![alpn.to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| Error::Tls(format!("the TLS config is not usable for QUIC: {e}")))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(quic));
    cfg.transport_config(transport());
    Ok(cfg)
}

/// The edge's QUIC client config: trusts only the CA in `ca_cert_pem` for the center and
/// presents the station certificate; TLS 1.3, ALPN [`ALPN`].
pub fn client_config(ca_cert_pem: &str, station: &IssuedCert) -> Result<quinn::ClientConfig> {
    client_config_for(ca_cert_pem, station, ALPN)
}

/// [`client_config`] for another protocol (see [`server_config_for`]).
pub fn client_config_for(ca_cert_pem: &str, station: &IssuedCert, alpn: &[u8]) -> Result<quinn::ClientConfig> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(format!("TLS 1.3 is not available: {e}")))?
        .with_root_certificates(roots(ca_cert_pem)?)
        .with_client_auth_cert(
            certs(&station.cert_pem, "the station certificate")?,
            key(&station.key_pem, "the station key")?,
        )
        .map_err(|e| {
            Error::Tls(format!(
                "the station certificate and key do not fit together ({e}); enroll the station again"
            ))
        })?;
    tls.alpn_protocols = vec![alpn.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| Error::Tls(format!("the TLS config is not usable for QUIC: {e}")))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(quic));
    cfg.transport_config(transport());
    Ok(cfg)
}

/// A server endpoint listening on `addr` with `cfg`.
pub fn server_endpoint(addr: SocketAddr, cfg: quinn::ServerConfig) -> Result<quinn::Endpoint> {
    let listen_err = |e: std::io::Error| {
        Error::Connection(format!(
            "cannot listen on {addr}: {e}; check that the address is local and the port is free"
        ))
    };
    let socket = udp_socket(addr).map_err(listen_err)?;
    endpoint(socket, Some(cfg)).map_err(listen_err)
}

/// A UDP socket bound to `addr` with [`UDP_BUFFER`]-sized kernel buffers (or as close as
/// the kernel allows: `net.core.rmem_max` caps it, which is logged, not fatal).
fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Dual stack, so a center on [::] also takes IPv4 sites.
        socket.set_only_v6(false)?;
    }
    for (what, set) in [
        (
            "receive",
            Socket::set_recv_buffer_size as fn(&Socket, usize) -> std::io::Result<()>,
        ),
        ("send", Socket::set_send_buffer_size),
    ] {
        if let Err(e) = set(&socket, UDP_BUFFER) {
            tracing::debug!(error = %e, "cannot size the UDP {what} buffer");
        }
    }
    let got = socket.recv_buffer_size().unwrap_or(0);
    if got < UDP_BUFFER {
        tracing::debug!(
            got,
            wanted = UDP_BUFFER,
            "UDP receive buffer smaller than wanted; raise net.core.rmem_max for many sites"
        );
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// How many datagrams the kernel takes in one send (GSO) and hands back in one receive
/// (GRO) on a socket made as konvert makes its sockets, as quinn finds them: 1 and 1 mean
/// no offload, one system call per datagram.
pub fn udp_offload(addr: SocketAddr) -> std::io::Result<(usize, usize)> {
    let socket = udp_socket(addr)?;
    let state = quinn::udp::UdpSocketState::new((&socket).into())?;
    Ok((state.max_gso_segments(), state.gro_segments()))
}

fn endpoint(socket: std::net::UdpSocket, server: Option<quinn::ServerConfig>) -> std::io::Result<quinn::Endpoint> {
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        server,
        socket,
        Arc::new(quinn::TokioRuntime),
    )
}

/// A server endpoint like [`server_endpoint`] whose stateless-reset key is derived from
/// `secret` (the node's TLS private key PEM) instead of drawn at random. After a crash and
/// a restart on the same address, the node answers packets of its old connections with a
/// stateless reset that the peers accept (the same key gives the same reset tokens), so
/// stations notice at once and reconnect, instead of waiting out the idle timeout (30 s).
/// Only the holder of the private key can compute the tokens.
pub fn server_endpoint_keyed(addr: SocketAddr, cfg: quinn::ServerConfig, secret: &[u8]) -> Result<quinn::Endpoint> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"konvert stateless reset key v1\0");
    ctx.update(secret);
    let seed = ctx.finish();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, seed.as_ref());
    let cids = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, ring::hmac::sign(&key, b"cid").as_ref());
    let mut config = quinn::EndpointConfig::new(Arc::new(key));
    config.cid_generator(move || {
        Box::new(RestartableCids {
            key: cids.clone(),
            counter: 0,
        })
    });
    let listen_err = |e: std::io::Error| {
        Error::Connection(format!(
            "cannot listen on {addr}: {e}; check that the address is local and the port is free"
        ))
    };
    let socket = udp_socket(addr).map_err(listen_err)?;
    quinn::Endpoint::new(config, Some(cfg), socket, Arc::new(quinn::TokioRuntime)).map_err(listen_err)
}

/// Connection ids of 8 bytes, a keyed MAC over a per-generator nonce and a counter, that
/// the endpoint does not filter on arrival: quinn's default generator drops packets whose
/// ids it did not issue since it started, so a node restarted after a crash would never
/// answer its old connections with the stateless reset that [`server_endpoint_keyed`]
/// makes them accept.
/// Length of the center's connection ids. Every datagram a station sends carries one, so
/// each byte is ~0.07 % of a site's link at MTU 1500; 4 bytes keep a center's few thousand
/// connections apart (ids are keyed MACs, not a guessable sequence) at half quinn's default.
const CID_LEN: usize = 4;

struct RestartableCids {
    key: ring::hmac::Key,
    counter: u64,
}

impl quinn::ConnectionIdGenerator for RestartableCids {
    fn generate_cid(&mut self) -> quinn::ConnectionId {
        self.counter += 1;
        let mut nonce = [0u8; 16];
        // The MAC key is secret, so the ids stay unpredictable even if the nonce is not.
        let _ = konvert_crypto::random_bytes(&mut nonce);
        let mut ctx = ring::hmac::Context::with_key(&self.key);
        ctx.update(&nonce);
        ctx.update(&self.counter.to_le_bytes());
        let tag = ctx.sign();
        quinn::ConnectionId::new(&tag.as_ref()[..CID_LEN])
    }

    fn cid_len(&self) -> usize {
        CID_LEN
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        None
    }
}

/// A client endpoint on an ephemeral port with `cfg` as its default config: dual-stack
/// `[::]:0` (reaches IPv4 and IPv6 centers), or `0.0.0.0:0` where IPv6 is unavailable.
pub fn client_endpoint(cfg: quinn::ClientConfig) -> Result<quinn::Endpoint> {
    let v6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0));
    let v4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
    let mut ep = match udp_socket(v6).and_then(|s| endpoint(s, None)) {
        Ok(ep) => ep,
        Err(e6) => {
            tracing::debug!(error = %e6, "no IPv6 socket; using IPv4 only");
            udp_socket(v4)
                .and_then(|s| endpoint(s, None))
                .map_err(|e| Error::Connection(format!("cannot open a UDP socket: {e}")))?
        }
    };
    ep.set_default_client_config(cfg);
    Ok(ep)
}

/// The certificate chain the peer presented (end-entity first), as verified by TLS.
pub fn peer_certificates(conn: &quinn::Connection) -> Result<Vec<CertificateDer<'static>>> {
    conn.peer_identity()
        .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
        .map(|b| *b)
        .filter(|certs| !certs.is_empty())
        .ok_or_else(|| Error::Tls("the peer presented no certificate".into()))
}

/// Checks that the peer's end-entity certificate is valid for [`station_dns_name`]`(site)`.
pub fn verify_station_site(peer_certs: &[CertificateDer<'_>], site: &str) -> Result<()> {
    let name = station_dns_name(site)?;
    let ee = peer_certs
        .first()
        .ok_or_else(|| Error::Tls(format!("the station of site {site} presented no certificate")))?;
    let cert = webpki::EndEntityCert::try_from(ee)
        .map_err(|e| Error::Tls(format!("the station certificate cannot be parsed: {e}")))?;
    let server_name = ServerName::try_from(name.as_str())
        .map_err(|e| Error::Tls(format!("{name:?} is not a valid station name: {e}")))?;
    cert.verify_is_valid_for_subject_name(&server_name).map_err(|_| {
        Error::Tls(format!(
            "the station certificate is not for site {site} (expected {name}); \
             a station may only speak for the site it was enrolled for — enroll this station for site {site}"
        ))
    })
}

/// Whether the peer's end-entity certificate (as TLS verified it) is valid for the DNS
/// name `name`: how a node that serves several kinds of named peers tells which one it is.
pub fn peer_is_named(peer_certs: &[CertificateDer<'_>], name: &str) -> bool {
    let (Some(ee), Ok(server_name)) = (peer_certs.first(), ServerName::try_from(name)) else {
        return false;
    };
    webpki::EndEntityCert::try_from(ee)
        .map(|cert| cert.verify_is_valid_for_subject_name(&server_name).is_ok())
        .unwrap_or(false)
}

/// Checks a station's files as its first handshake would, without a network: the key is a
/// private key, it belongs to the certificate, and the certificate names `station` (the
/// site, or a relay's id). For `check-config`: a wrong path or another site's folder is
/// found before the exam day, not at the first push.
pub fn check_station_identity(ca_cert_pem: &str, station: &IssuedCert, id: &str) -> Result<()> {
    client_config(ca_cert_pem, station)?;
    verify_station_site(&certs(&station.cert_pem, "the station certificate")?, id)
}

/// The permission bits of a private key (or token) file when others than its owner may
/// read or write it (e.g. `0o644`); `None` when only the owner can, or on other systems.
pub fn exposed_mode(path: &std::path::Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// The warning `check-config` prints for a secret file others can read, with the fix.
pub fn exposed_warning(what: &str, path: &std::path::Path) -> Option<String> {
    exposed_mode(path).map(|mode| {
        format!(
            "{what} {} is readable by others (mode {mode:04o}); it is a secret: chmod 600 {}",
            path.display(),
            path.display()
        )
    })
}

/// What the station operator reads when the center revoked the station certificate.
const REVOKED_ADVICE: &str = "the center revoked this station's certificate; \
     stop sending from this station and call the center's security officer";

/// Explains, from the edge's side, why a connection to the center failed, saying what to
/// do when certificates are the cause; other errors pass through as [`Error::Connection`].
pub fn explain_connection_error(e: &quinn::ConnectionError) -> Error {
    let (code, local) = match e {
        quinn::ConnectionError::ApplicationClosed(c) if c.error_code == quinn::VarInt::from_u32(CLOSE_REVOKED) => {
            return Error::Tls(format!("{REVOKED_ADVICE} ({e})"));
        }
        quinn::ConnectionError::TransportError(t) => (u64::from(t.code), true),
        quinn::ConnectionError::ConnectionClosed(c) => (u64::from(c.error_code), false),
        other => return Error::Connection(other.to_string()),
    };
    // TLS alerts travel as QUIC CRYPTO_ERROR 0x100 + alert.
    if !(0x100..0x200).contains(&code) {
        return Error::Connection(e.to_string());
    }
    let alert = code - 0x100;
    let advice = match (local, alert) {
        // We (the edge) refused the center's certificate.
        (true, 42) => {
            "the center's certificate is not valid for the configured center name; \
                       check the center name and address in the configuration"
        }
        (true, 43 | 46) => {
            "the center presented a certificate that is not a center certificate; \
                            check the center address, or issue the center certificate again"
        }
        (true, 45) => {
            "the center's certificate has expired or is not yet valid; check this machine's clock, \
                       then have the center renew its certificate"
        }
        (true, 48) => {
            "the center's certificate is not signed by the CA this station trusts; \
                       check the center address, or enroll the station again"
        }
        // The center refused ours.
        (false, ALERT_REVOKED) => REVOKED_ADVICE,
        (false, ALERT_CRL_EXPIRED) => {
            "the center's revocation list has expired, so the center refuses every station; \
             this is not this station's fault — call the center: its staff must re-sign the list"
        }
        (false, 116) => "the center requires a station certificate and got none; enroll the station",
        (false, 45) => {
            "the center refused the station certificate as expired or not yet valid; \
                        check this machine's clock, or enroll the station again"
        }
        (false, 48) => "the station certificate is not signed by the center's CA; enroll the station again",
        (false, 42 | 43 | 46) => "the center refused the station certificate; enroll the station again",
        (_, 120) => "the peer does not speak konvert's protocol (ALPN konvert/1); check the address and port",
        _ => "the TLS handshake failed",
    };
    Error::Tls(format!("{advice} ({e})"))
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
