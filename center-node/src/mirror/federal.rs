//! The federal node (ФИС) as a role of `konvert-center`: its own CA that enrolls the
//! regions (a client certificate per region, and the region's mirror public key in
//! `federal.toml`), its own mirror signing key, its records on PostgreSQL, and a QUIC
//! server that takes the regions as its peers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use konvert_crypto::{keyfile, SigningKey};
use konvert_mirror::Node;
use konvert_replication::pki::Ca;

use crate::mirror::config::{read_public_key, FederalConfig, LimitsConfig, RegionEntry};
use crate::mirror::identity::{federal_server_config, region_of, Enrolled, RegionIdentity};
use crate::mirror::link::serve_connection;
use crate::mirror::node::{self, close, MirrorHooks, NodeHandle, NodeSetup};
use crate::mirror::wake;
use crate::{Error, Result};

/// The files `federal enroll-region` hands to a region, in its `--out` folder; the
/// region's `mirror.toml` (from `mirror init`) names them.
pub const REGION_CA: &str = "federal-ca.pem";
/// The region's certificate.
pub const REGION_CERT: &str = "region.pem";
/// The region's TLS key.
pub const REGION_KEY: &str = "region.key";
/// The federal node's mirror public key.
pub const FEDERAL_PUB: &str = "federal.pub";

fn write_public(path: &Path, text: &str) -> Result<()> {
    Ok(keyfile::write_atomic(path, text.as_bytes(), 0o644)?)
}

fn write_secret(path: &Path, text: &str) -> Result<()> {
    Ok(keyfile::write_atomic(path, text.as_bytes(), 0o600)?)
}

/// Creates a federal node in `dir`: `pki/` (its CA and TLS certificate), `keys/mirror.key`
/// and `mirror.pub`, and `federal.toml`. Refuses to overwrite one.
pub fn init(dir: &Path, name: &str, listen: SocketAddr, records_url: &str) -> Result<PathBuf> {
    let path = dir.join("federal.toml");
    if path.exists() {
        return Err(Error::Config {
            path,
            message: "a federal node already exists here; choose another folder".into(),
        });
    }
    for sub in ["pki", "keys"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(Error::file(dir.join(sub)))?;
    }
    let ca = Ca::generate(&format!("konvert federal CA for {name}"))?;
    write_public(&dir.join("pki/ca.pem"), &ca.cert_pem)?;
    write_secret(&dir.join("pki/ca.key"), ca.key_pem())?;
    let cert = ca.issue_center(name)?;
    write_public(&dir.join("pki/federal.pem"), &cert.cert_pem)?;
    write_secret(&dir.join("pki/federal.key"), &cert.key_pem)?;
    let key = SigningKey::generate()?;
    keyfile::write_signing_key(&dir.join("keys/mirror.key"), &key)?;
    write_public(&dir.join("mirror.pub"), &format!("{}\n", key.verifying_key()))?;
    let cfg = FederalConfig {
        name: name.to_owned(),
        listen,
        records_url: records_url.to_owned(),
        ca_cert: "pki/ca.pem".into(),
        ca_key: Some("pki/ca.key".into()),
        cert: "pki/federal.pem".into(),
        key: "pki/federal.key".into(),
        signing_key: "keys/mirror.key".into(),
        outbox_poll_secs: 10,
        metrics_listen: None,
        schedule: konvert_mirror::ScheduleConfig::default(),
        limits: LimitsConfig::default(),
        regions: Vec::new(),
    };
    cfg.save(&path)?;
    FederalConfig::load(&path)?;
    Ok(path)
}

/// Enrolls region `code`: issues its certificate, takes its mirror public key (the
/// `mirror.pub` its `mirror init` wrote) into `federal.toml`, and writes into `out` what
/// the region needs ([`REGION_CA`], [`REGION_CERT`], [`REGION_KEY`], [`FEDERAL_PUB`]).
/// A region enrolled before is refused unless `replace` (a new certificate, its files in
/// `out` overwritten, a new key taken); a key another region or the federal node itself
/// has is refused; `out` must not be a symbolic link. A running federal node takes the
/// region at its next start.
pub fn enroll_region(config: &Path, code: u8, region_pub: &Path, out: &Path, replace: bool) -> Result<()> {
    if !(1..=99).contains(&code) {
        return Err(Error::Loader {
            what: format!("region code {code} is not a region's code"),
            hint: "give the region's code, 1–99 (e.g. --region 77)",
        });
    }
    if std::fs::symlink_metadata(out).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::Loader {
            what: format!(
                "{} is a symbolic link: the region's key would be written wherever it points",
                out.display()
            ),
            hint: "give a real folder (or a new path) for --out",
        });
    }
    let loaded = FederalConfig::load(config)?;
    let Some(ca_key) = loaded.ca_key.as_ref() else {
        return Err(Error::Config {
            path: config.to_owned(),
            message: "ca_key is not set: enrolling a region needs the federal CA's key; name it in federal.toml \
                      (or run this where the CA key is kept)"
                .into(),
        });
    };
    let region_key = read_public_key(region_pub)?;
    let ca = Ca::from_pem(
        &keyfile::read_text_bounded(&loaded.ca_cert, 1 << 20)?,
        &keyfile::read_text_bounded(ca_key, 1 << 20)?,
    )?;
    let federal_key = keyfile::read_signing_key(&loaded.signing_key)?.verifying_key();
    if region_key == federal_key {
        return Err(Error::Loader {
            what: format!("{} is the federal node's own mirror key", region_pub.display()),
            hint: "give the region's mirror.pub, the one its `konvert-center mirror init` wrote",
        });
    }
    let mut raw = FederalConfig::read(config)?;
    if let Some(other) = raw
        .regions
        .iter()
        .find(|r| r.code != code && r.key == region_key.to_string())
    {
        return Err(Error::Loader {
            what: format!(
                "{} is region {:02}'s mirror key already",
                region_pub.display(),
                other.code
            ),
            hint: "each region has its own key: give this region's mirror.pub",
        });
    }
    let cert = ca.issue_region(code)?;
    let pin = Some(konvert_replication::tls::pem_fingerprint(&cert.cert_pem)?);
    match raw.regions.iter_mut().find(|r| r.code == code) {
        Some(r) if replace => {
            r.key = region_key.to_string();
            r.certificate = pin;
            r.revoked = false;
        }
        Some(r) => {
            let what = if r.key == region_key.to_string() {
                "with this mirror key"
            } else {
                "with another mirror key"
            };
            return Err(Error::Config {
                path: config.to_owned(),
                message: format!(
                    "region {code:02} is enrolled already {what}; give --replace to take this key, issue a new \
                     certificate and overwrite the files in --out (the old certificate and batches signed with an \
                     old key are then refused)"
                ),
            });
        }
        None => raw.regions.push(RegionEntry {
            code,
            key: region_key.to_string(),
            certificate: pin,
            revoked: false,
        }),
    }
    std::fs::create_dir_all(out).map_err(Error::file(out))?;
    write_public(&out.join(REGION_CA), &ca.cert_pem)?;
    write_public(&out.join(REGION_CERT), &cert.cert_pem)?;
    write_secret(&out.join(REGION_KEY), &cert.key_pem)?;
    write_public(&out.join(FEDERAL_PUB), &format!("{federal_key}\n"))?;
    raw.save(config)?;
    Ok(())
}

/// Revokes region `code` in `federal.toml`: from the federal node's next start its
/// connections are refused, whatever certificate they show. What it sent stays in the
/// records and the audit trail, and so does its entry (the stored exchange with it is
/// checked with its key at every start); enrolling it again with `--replace` issues a new
/// certificate and lifts the revocation. Returns whether it was enrolled and not revoked.
pub fn revoke_region(config: &Path, code: u8) -> Result<bool> {
    let mut raw = FederalConfig::read(config)?;
    let Some(entry) = raw.regions.iter_mut().find(|r| r.code == code && !r.revoked) else {
        return Ok(false);
    };
    entry.revoked = true;
    raw.save(config)?;
    Ok(true)
}

/// The node's setup from its config.
pub fn setup(cfg: &FederalConfig, hooks: Arc<dyn MirrorHooks>) -> Result<NodeSetup> {
    let key = keyfile::read_signing_key(&cfg.signing_key)?;
    let mut setup = NodeSetup::new(
        Node::Federal,
        key,
        cfg.peers()?,
        cfg.limits.sender_limits(),
        &cfg.records_url,
    );
    setup.hooks = hooks;
    Ok(setup)
}

/// A serving federal node.
#[derive(Debug)]
pub struct RunningFederal {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its node.
    pub node: NodeHandle,
    endpoint: quinn::Endpoint,
}

impl RunningFederal {
    /// Stops taking connections and closes the open ones.
    pub async fn stop(self) {
        self.endpoint.close(close::DONE.into(), b"the federal node is stopping");
        self.endpoint.wait_idle().await;
    }
}

/// Serves the federal node: takes enrolled regions' connections until stopped.
pub async fn serve(cfg: &FederalConfig, setup: NodeSetup) -> Result<RunningFederal> {
    let (server, me) = federal_server_config(cfg)?;
    // A restarted node answers its old connections with a stateless reset the regions
    // accept, so they reconnect at once instead of waiting out the idle timeout.
    let endpoint = konvert_replication::tls::server_endpoint_keyed(cfg.listen, server, me.key_pem.as_bytes())?;
    let addr = endpoint.local_addr()?;
    let node = node::start(setup).await?;
    wake::spawn(
        cfg.records_url.clone(),
        node.waker(),
        Duration::from_secs(cfg.outbox_poll_secs),
    );
    let regions: Arc<Vec<Enrolled>> = Arc::new(
        cfg.regions
            .iter()
            .map(|r| Enrolled {
                code: r.code,
                pin: r.certificate.clone(),
                revoked: r.revoked,
            })
            .collect(),
    );
    for code in cfg.unpinned() {
        tracing::warn!(
            region = code,
            "region {code:02} was enrolled before certificates were pinned: any certificate of the federal CA for \
             it is taken; enroll it again with `konvert-center federal enroll-region --replace`"
        );
    }
    let accepting = endpoint.clone();
    let for_accept = node.clone();
    tokio::spawn(async move {
        while let Some(incoming) = accepting.accept().await {
            let node = for_accept.clone();
            let regions = regions.clone();
            tokio::spawn(async move {
                let conn = match incoming.await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "mirror handshake failed");
                        return;
                    }
                };
                let peer = match region_of(&conn, &regions) {
                    RegionIdentity::Enrolled(peer) => peer,
                    RegionIdentity::Replaced(code) => {
                        tracing::warn!(remote = %conn.remote_address(), region = code, "a certificate of region {code:02} issued before its last enrollment (replaced or revoked); closed");
                        conn.close(
                            close::UNKNOWN_PEER.into(),
                            b"a certificate replaced by a newer one; use the files of the last enrollment",
                        );
                        return;
                    }
                    RegionIdentity::Revoked(code) => {
                        tracing::warn!(remote = %conn.remote_address(), region = code, "region {code:02} is revoked; closed");
                        conn.close(
                            close::UNKNOWN_PEER.into(),
                            b"this region's enrollment is revoked at the federal node; call the federal center",
                        );
                        return;
                    }
                    RegionIdentity::Unknown => {
                        tracing::warn!(remote = %conn.remote_address(), "a certificate of the federal CA that names no enrolled region; closed");
                        conn.close(close::UNKNOWN_PEER.into(), b"not an enrolled region");
                        return;
                    }
                };
                serve_connection(conn, peer, node.clone()).await;
                node.hooks_exchanged(peer, true);
            });
        }
    });
    tracing::info!(%addr, regions = cfg.regions.iter().filter(|r| !r.revoked).count(), "federal node serving");
    Ok(RunningFederal { addr, node, endpoint })
}
