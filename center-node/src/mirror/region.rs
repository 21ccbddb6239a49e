//! A region's mirror process (РИС → ФИС and back): exchanges with the federal node at
//! the scheduled times and at once when an exam is closed (`NOTIFY konvert_mirror`).
//! An exchange connects, sends every due batch, takes what the federal node has for this
//! region, waits until everything is receipted and the federal node has been quiet for a
//! moment, and hangs up.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use konvert_crypto::{keyfile, SigningKey};
use konvert_mirror::{Node, Schedule};

use crate::mirror::config::{LimitsConfig, RegionMirrorConfig};
use crate::mirror::federal::{FEDERAL_PUB, REGION_CA, REGION_CERT, REGION_KEY};
use crate::mirror::identity::region_client_config;
use crate::mirror::link::serve_connection;
use crate::mirror::node::{self, close, leftover, MirrorHooks, NodeHandle, NodeSetup};
use crate::mirror::wake;
use crate::{Error, Result};

/// How long the federal node must have sent nothing before an exchange that has nothing
/// left of its own ends: the federal node sends what it holds for a region as soon as the
/// region connects, and each receipt lets the next batches go at once.
pub const QUIET: Duration = Duration::from_millis(1500);

/// How soon an exchange that left something is tried again, the first time.
pub const RETRY_FIRST: Duration = Duration::from_secs(2);

/// Creates a region's mirror folder `dir`: `keys/mirror.key`, `mirror.pub` (for the
/// federal node's `enroll-region`) and `mirror.toml`, which names the files the federal
/// node hands back in `pki/`. Refuses to overwrite one.
pub fn init(dir: &Path, region: u8, records_url: &str, federal_address: &str, federal_name: &str) -> Result<PathBuf> {
    let path = dir.join("mirror.toml");
    if path.exists() {
        return Err(Error::Config {
            path,
            message: "a region's mirror already exists here; choose another folder".into(),
        });
    }
    konvert_replication::pki::region_dns_name(region)?;
    std::fs::create_dir_all(dir.join("keys")).map_err(Error::file(dir.join("keys")))?;
    // Where the federal node's files go (`cp pki-NN/* <dir>/pki/`); its TLS key among them.
    std::fs::create_dir_all(dir.join("pki")).map_err(Error::file(dir.join("pki")))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("pki"), std::fs::Permissions::from_mode(0o700))
            .map_err(Error::file(dir.join("pki")))?;
    }
    let key = SigningKey::generate()?;
    keyfile::write_signing_key(&dir.join("keys/mirror.key"), &key)?;
    keyfile::write_atomic(
        &dir.join("mirror.pub"),
        format!("{}\n", key.verifying_key()).as_bytes(),
        0o644,
    )?;
    let cfg = RegionMirrorConfig {
        region,
        records_url: records_url.to_owned(),
        federal_address: federal_address.to_owned(),
        federal_name: federal_name.to_owned(),
        ca_cert: Path::new("pki").join(REGION_CA),
        cert: Path::new("pki").join(REGION_CERT),
        key: Path::new("pki").join(REGION_KEY),
        signing_key: "keys/mirror.key".into(),
        federal_key: Path::new("pki").join(FEDERAL_PUB),
        metrics_listen: None,
        sync_timeout_secs: 120,
        schedule: konvert_mirror::ScheduleConfig::default(),
        limits: LimitsConfig::default(),
    };
    cfg.save(&path)?;
    Ok(path)
}

/// The region node's setup from its config.
pub fn setup(cfg: &RegionMirrorConfig, hooks: Arc<dyn MirrorHooks>) -> Result<NodeSetup> {
    let key = keyfile::read_signing_key(&cfg.signing_key)?;
    let peers = [(Node::Federal, cfg.federal_public_key()?)].into();
    let mut setup = NodeSetup::new(
        Node::Region(cfg.region),
        key,
        peers,
        cfg.limits.sender_limits(),
        &cfg.records_url,
    );
    setup.hooks = hooks;
    Ok(setup)
}

/// A region's mirror: its node and a QUIC client to reach the federal node.
pub struct RegionMirror {
    cfg: RegionMirrorConfig,
    node: NodeHandle,
    client: quinn::Endpoint,
    hooks: Arc<dyn MirrorHooks>,
}

impl std::fmt::Debug for RegionMirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionMirror")
            .field("region", &self.cfg.region)
            .finish()
    }
}

/// How an exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exchanged {
    /// Everything receipted, nothing more came.
    Done,
    /// What is left, in words (the connection failed, or the time ran out).
    Left(Vec<String>),
}

impl RegionMirror {
    /// Starts the region's node (loads its state) and its QUIC client.
    pub async fn start(cfg: RegionMirrorConfig, setup: NodeSetup) -> Result<Self> {
        let hooks = setup.hooks.clone();
        let client = konvert_replication::tls::client_endpoint(region_client_config(&cfg)?)?;
        let node = node::start(setup).await?;
        Ok(RegionMirror {
            cfg,
            node,
            client,
            hooks,
        })
    }

    /// The node.
    pub fn node(&self) -> &NodeHandle {
        &self.node
    }

    /// One exchange with the federal node, within `timeout`.
    pub async fn exchange(&self, timeout: Duration) -> Exchanged {
        let started = Instant::now();
        self.node.wake().await;
        let result = tokio::time::timeout(timeout, self.exchange_inner(started)).await;
        let mut left = match result {
            Ok(Ok(())) => Vec::new(),
            Ok(Err(e)) => vec![e.to_string()],
            Err(_) => vec![format!("the exchange did not finish within {} s", timeout.as_secs())],
        };
        let store_left = {
            let url = self.cfg.records_url.clone();
            let me = Node::Region(self.cfg.region);
            tokio::task::spawn_blocking(move || -> Result<Vec<String>> {
                let records = Arc::new(konvert_records::PgRecords::connect(&url)?);
                leftover(&konvert_records::PgMirror::open(records, me)?)
            })
            .await
        };
        match store_left {
            Ok(Ok(l)) => left.extend(l),
            Ok(Err(e)) => left.push(format!("cannot read what is left: {e}")),
            Err(e) => left.push(format!("cannot read what is left: {e}")),
        }
        for (peer, kind, why) in self.node.progress().borrow().stalled.iter() {
            left.push(format!("{kind} for {peer} stopped: {why}"));
        }
        let ok = left.is_empty();
        self.hooks.exchanged(Node::Federal, ok);
        if ok {
            Exchanged::Done
        } else {
            Exchanged::Left(left)
        }
    }

    async fn exchange_inner(&self, started: Instant) -> Result<()> {
        let addr = resolve(&self.cfg.federal_address).await?;
        let conn = self
            .client
            .connect(addr, &self.cfg.federal_name)
            .map_err(|e| Error::Control(format!("cannot connect to the federal node at {addr}: {e}")))?
            .await
            .map_err(|e| {
                Error::Control(format!(
                    "the federal node at {addr} refused or did not answer: {}",
                    konvert_replication::tls::explain_connection_error(&e)
                ))
            })?;
        let link = tokio::spawn(serve_connection(conn.clone(), Node::Federal, self.node.clone()));
        let mut progress = self.node.progress();
        let connected = Instant::now();
        loop {
            if let Some(reason) = conn.close_reason() {
                let _ = link.await;
                return Err(Error::Control(format!(
                    "the federal node closed the connection: {}",
                    konvert_replication::tls::explain_connection_error(&reason)
                )));
            }
            let p = progress.borrow_and_update().clone();
            let quiet_since = p.last_incoming.filter(|t| *t > connected).unwrap_or(connected);
            if p.idle && quiet_since.elapsed() >= QUIET {
                break;
            }
            if !p.stalled.is_empty() && quiet_since.elapsed() >= QUIET {
                break;
            }
            tokio::select! {
                _ = progress.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        conn.close(close::DONE.into(), b"exchange done");
        let _ = link.await;
        tracing::info!(
            took_ms = started.elapsed().as_millis() as u64,
            "exchange with the federal node done"
        );
        Ok(())
    }

    /// Exchanges when `schedule` says (at once at start, then at the interval in force
    /// after the last exchange that left nothing) and at once on `NOTIFY konvert_mirror`,
    /// until the process is stopped. An exchange that left something is tried again
    /// sooner: after [`RETRY_FIRST`], doubling, never later than the schedule says.
    pub async fn run(&self, schedule: &Schedule) -> Result<()> {
        let notified = wake::spawn(
            self.cfg.records_url.clone(),
            self.node.waker(),
            Duration::from_millis(schedule.interval_at(crate::intake::now_ms())),
        );
        let timeout = Duration::from_secs(self.cfg.sync_timeout_secs);
        let mut last_done: Option<u64> = None;
        let mut retry = RETRY_FIRST;
        loop {
            let now = crate::intake::now_ms();
            let due = match self.exchange(timeout).await {
                Exchanged::Done => {
                    last_done = Some(now);
                    retry = RETRY_FIRST;
                    schedule.next_exchange(last_done, crate::intake::now_ms())
                }
                Exchanged::Left(left) => {
                    let scheduled = schedule.next_exchange(last_done.or(Some(now)), crate::intake::now_ms());
                    let sooner = crate::intake::now_ms().saturating_add(retry.as_millis() as u64);
                    tracing::warn!(left = %left.join("; "), retry_secs = retry.as_secs(), "exchange with the federal node left something; trying again");
                    retry = (retry * 2).min(Duration::from_millis(schedule.interval_at(now)));
                    scheduled.min(sooner)
                }
            };
            tracing::info!(next = %schedule.local_time(due), "next scheduled exchange with the federal node");
            let wait = Duration::from_millis(due.saturating_sub(crate::intake::now_ms()));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = notified.notified() => {}
            }
        }
    }
}

async fn resolve(address: &str) -> Result<std::net::SocketAddr> {
    tokio::net::lookup_host(address)
        .await
        .map_err(|e| Error::Control(format!("cannot resolve the federal address {address}: {e}")))?
        .next()
        .ok_or_else(|| Error::Control(format!("the federal address {address} resolves to nothing")))
}
