//! Who is on the other end of a mirror connection. The federal node's CA issues each
//! region a client certificate named `region-NN.mirror.konvert`; the federal node takes
//! the region code from it and from nothing else, and a region trusts only the federal CA
//! and the configured federal name. The batch signatures must then agree with this
//! identity (the core closes a connection whose messages claim another node).

use std::path::Path;

use konvert_mirror::Node;
use konvert_replication::pki::{region_dns_name, IssuedCert};
use konvert_replication::tls;
use konvert_replication::tls::CertificateDer;
use zeroize::Zeroizing;

use crate::mirror::config::{FederalConfig, RegionMirrorConfig};
use crate::Result;

/// ALPN of the records' mirror: not the packet protocol's, so a station can never talk to
/// the federal node nor a region to a center's packet port by mistake.
pub const MIRROR_ALPN: &[u8] = b"konvert-mirror/1";

fn read_text(path: &Path) -> Result<String> {
    Ok(konvert_crypto::keyfile::read_text_bounded(path, 1 << 20)?)
}

fn issued(cert: &Path, key: &Path) -> Result<IssuedCert> {
    Ok(IssuedCert {
        cert_pem: read_text(cert)?,
        key_pem: Zeroizing::new(read_text(key)?),
    })
}

/// The federal node's QUIC server config: its certificate, and a client certificate from
/// the federal CA required of every region.
pub fn federal_server_config(cfg: &FederalConfig) -> Result<(quinn::ServerConfig, IssuedCert)> {
    let me = issued(&cfg.cert, &cfg.key)?;
    let server = tls::server_config_for(&read_text(&cfg.ca_cert)?, &me, &[], MIRROR_ALPN)?;
    Ok((server, me))
}

/// A region's QUIC client config: the federal CA as the only trust anchor, the region's
/// certificate as its identity.
pub fn region_client_config(cfg: &RegionMirrorConfig) -> Result<quinn::ClientConfig> {
    let me = issued(&cfg.cert, &cfg.key)?;
    Ok(tls::client_config_for(&read_text(&cfg.ca_cert)?, &me, MIRROR_ALPN)?)
}

/// Who a region's connection is, by its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionIdentity {
    /// An enrolled region, with the certificate it was issued last (or any, unpinned).
    Enrolled(Node),
    /// An enrolled region's name on a certificate that is not the one pinned for it: one
    /// issued before `enroll-region --replace`, so replaced (and revoked with it).
    Replaced(u8),
    /// A region the federal node revoked (`federal revoke-region`).
    Revoked(u8),
    /// No enrolled region's name (a region not enrolled here, or revoked; or not a
    /// region's certificate).
    Unknown,
}

/// An enrolled region as the federal node checks a connection against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    /// The region's code.
    pub code: u8,
    /// The SHA-256 of the certificate issued to it last, if pinned.
    pub pin: Option<String>,
    /// Revoked: refused whatever it shows.
    pub revoked: bool,
}

/// Who the connection's certificate says it is, among the enrolled `regions`.
pub fn region_of(conn: &quinn::Connection, regions: &[Enrolled]) -> RegionIdentity {
    match tls::peer_certificates(conn) {
        Ok(certs) => identify(&certs, regions),
        Err(_) => RegionIdentity::Unknown,
    }
}

/// [`region_of`] for the certificates a peer presented.
pub fn identify(certs: &[CertificateDer<'_>], regions: &[Enrolled]) -> RegionIdentity {
    let Some(r) = regions
        .iter()
        .find(|r| region_dns_name(r.code).is_ok_and(|name| tls::peer_is_named(certs, &name)))
    else {
        return RegionIdentity::Unknown;
    };
    if r.revoked {
        return RegionIdentity::Revoked(r.code);
    }
    match (&r.pin, certs.first()) {
        (None, _) => RegionIdentity::Enrolled(Node::Region(r.code)),
        (Some(pin), Some(ee)) if tls::fingerprint(ee) == *pin => RegionIdentity::Enrolled(Node::Region(r.code)),
        _ => RegionIdentity::Replaced(r.code),
    }
}
