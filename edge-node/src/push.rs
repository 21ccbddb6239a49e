//! Pushing the outbox: connect with the station certificate, send every packet that has
//! no receipt yet (several in flight), store each verified receipt, and reconnect on
//! failure with backoff until everything is delivered or the wait runs out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use konvert_replication::driver::{self, Outcome};
use konvert_replication::{pki, tls, Outbox, OutboxEntry, RejectReason};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::config::SiteConfig;
use crate::{Error, Result};

/// What the push reports as it goes.
#[derive(Debug, Clone)]
pub enum PushEvent {
    /// Connected to the center.
    Connected,
    /// Could not connect or lost the connection; will retry.
    Retrying {
        /// What went wrong.
        error: String,
        /// Seconds until the next attempt.
        in_seconds: f64,
    },
    /// Bytes of a packet acknowledged as sent so far.
    Progress {
        /// The packet.
        packet_id: String,
        /// Offset reached.
        offset: u64,
        /// Envelope size.
        size: u64,
    },
    /// A packet was receipted.
    Delivered {
        /// The packet.
        packet_id: String,
    },
    /// A packet was refused.
    Rejected {
        /// The packet.
        packet_id: String,
        /// Why.
        reason: RejectReason,
        /// Detail from the center.
        detail: String,
    },
}

/// How to push.
#[derive(Clone)]
pub struct PushOptions {
    /// Give up after this long without delivering everything.
    pub max_wait: Duration,
    /// Told about progress.
    pub on_event: Arc<dyn Fn(PushEvent) + Send + Sync>,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            max_wait: Duration::from_secs(3600),
            on_event: Arc::new(|_| {}),
        }
    }
}

/// What a push did.
#[derive(Debug, Clone, Default)]
pub struct PushReport {
    /// Packets receipted in this push.
    pub delivered: usize,
    /// Envelope bytes of the packets receipted in this push.
    pub delivered_bytes: u64,
    /// Packets refused for good: (packet id, reason, detail).
    pub rejected: Vec<(String, RejectReason, String)>,
    /// Connections made.
    pub connections: u32,
    /// Wall time.
    pub elapsed: Duration,
}

async fn resolve(address: &str) -> Result<SocketAddr> {
    tokio::net::lookup_host(address)
        .await
        .map_err(|e| Error::Push(format!("cannot resolve the center address {address}: {e}")))?
        .next()
        .ok_or_else(|| Error::Push(format!("the center address {address} resolves to nothing")))
}

/// Pushes everything in the outbox that has no receipt yet.
pub async fn push(cfg: &SiteConfig, outbox: Arc<Outbox>, opts: PushOptions) -> Result<PushReport> {
    let started = Instant::now();
    let read = |p: &std::path::Path| std::fs::read_to_string(p).map_err(Error::file(p));
    let ca = read(&cfg.center.ca_cert)?;
    let station = pki::IssuedCert {
        cert_pem: read(&cfg.center.station_cert)?,
        key_pem: read(&cfg.center.station_key)?.into(),
    };
    let endpoint = tls::client_endpoint(tls::client_config(&ca, &station)?)?;
    let center_key = cfg.receipt_key()?;
    let parallel = Arc::new(Semaphore::new(cfg.push.parallel));
    let base_backoff = cfg.push.retry_seconds.max(0.05);
    let mut backoff = base_backoff;
    let mut report = PushReport::default();
    loop {
        let pending = outbox.pending()?;
        if pending.is_empty() {
            break;
        }
        let failure = match connect(cfg, &endpoint).await {
            Err(e) => Some(e.to_string()),
            Ok(conn) => {
                report.connections += 1;
                (opts.on_event)(PushEvent::Connected);
                let mut tasks = JoinSet::new();
                for entry in pending {
                    let (conn, outbox, opts, sem) = (conn.clone(), outbox.clone(), opts.clone(), parallel.clone());
                    tasks.spawn(async move {
                        let _permit = sem.acquire_owned().await;
                        send_one(&conn, &outbox, &entry, center_key, &opts)
                            .await
                            .map(|o| (entry, o))
                    });
                }
                let mut failure = None;
                let mut retry_soon = false;
                while let Some(joined) = tasks.join_next().await {
                    match joined {
                        Ok(Ok((entry, Outcome::Delivered(_)))) => {
                            report.delivered += 1;
                            report.delivered_bytes += entry.offer.size;
                        }
                        Ok(Ok((entry, Outcome::Rejected { reason, detail }))) => {
                            if reason.is_retryable() {
                                retry_soon = true;
                            } else {
                                report.rejected.push((entry.offer.packet_id.clone(), reason, detail));
                            }
                        }
                        Ok(Err(e)) => failure = Some(e.to_string()),
                        Err(e) => failure = Some(format!("send task failed: {e}")),
                    }
                }
                conn.close(0u32.into(), b"push done");
                if failure.is_none() {
                    backoff = base_backoff;
                    if !retry_soon {
                        continue;
                    }
                }
                Some(failure.unwrap_or_else(|| "the center asked to retry some packets".into()))
            }
        };
        if let Some(error) = failure {
            if started.elapsed() >= opts.max_wait {
                let left = outbox.pending()?.len();
                return Err(Error::Push(format!(
                    "{left} packet(s) still not delivered after {:.0} s; last error: {error}. \
                     Check the network; if it stays down, use the reserve channel",
                    opts.max_wait.as_secs_f64()
                )));
            }
            warn!("push: {error}; retrying in {backoff:.1} s");
            (opts.on_event)(PushEvent::Retrying {
                error,
                in_seconds: backoff,
            });
            tokio::time::sleep(Duration::from_secs_f64(backoff)).await;
            backoff = (backoff * 2.0).min(30.0);
        }
    }
    endpoint.close(0u32.into(), b"bye");
    report.elapsed = started.elapsed();
    Ok(report)
}

async fn connect(cfg: &SiteConfig, endpoint: &quinn::Endpoint) -> Result<quinn::Connection> {
    let addr = resolve(&cfg.center.address).await?;
    Ok(driver::connect(endpoint, addr, &cfg.center.server_name, cfg.site.as_str()).await?)
}

async fn send_one(
    conn: &quinn::Connection,
    outbox: &Outbox,
    entry: &OutboxEntry,
    center_key: konvert_crypto::VerifyingKey,
    opts: &PushOptions,
) -> Result<Outcome> {
    let path = outbox.envelope_path(entry);
    let (id, size) = (entry.offer.packet_id.clone(), entry.offer.size);
    let on_event = opts.on_event.clone();
    let progress = move |offset| {
        on_event(PushEvent::Progress {
            packet_id: id.clone(),
            offset,
            size,
        })
    };
    let outcome = driver::send_packet(conn, entry.offer.clone(), center_key, &path, &progress).await?;
    match &outcome {
        Outcome::Delivered(receipt) => {
            outbox.mark_delivered(&entry.offer, receipt.clone())?;
            info!(packet = %entry.offer.packet_id, version = entry.offer.version, "delivered");
            (opts.on_event)(PushEvent::Delivered {
                packet_id: entry.offer.packet_id.clone(),
            });
        }
        Outcome::Rejected { reason, detail } => {
            if !reason.is_retryable() {
                outbox.mark_rejected(&entry.offer, *reason, detail.clone())?;
            }
            warn!(packet = %entry.offer.packet_id, reason = reason.as_str(), "refused: {}", reason.plain_words());
            (opts.on_event)(PushEvent::Rejected {
                packet_id: entry.offer.packet_id.clone(),
                reason: *reason,
                detail: detail.clone(),
            });
        }
    }
    Ok(outcome)
}
