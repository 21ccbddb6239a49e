//! The bandwidth stream, around the sans-IO [`schedule`](crate::schedule): the edge reports
//! its [`SiteStatus`] every few seconds on a stream of its own; the center's [`BrokerDesk`]
//! re-plans on every report, connect and disconnect (and on a timer, so a stalled site's
//! share is reclaimed) and sends each connected site its [`Share`].

use konvert_protocol::Error as ProtocolError;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tracing::debug;

use super::server::StationSession;
use super::stream::{read_message, read_message_bounded, write_message, ConnectionFrames};
use crate::schedule::{Broker, BrokerConfig, Plan};
use crate::{Error, Message, Result, Share, SiteStatus};

/// How often an edge reports its status (and the center re-plans without news).
pub const STATUS_EVERY: Duration = Duration::from_secs(2);

/// The center's broker behind a lock, with the newest plan for the bandwidth streams.
pub struct BrokerDesk {
    broker: Mutex<Broker>,
    plans: watch::Sender<Arc<Plan>>,
    clock: fn() -> u64,
}

impl BrokerDesk {
    /// A desk for a center of `config.capacity_bytes_per_s`, reading time from `clock`
    /// (Unix milliseconds).
    pub fn new(config: BrokerConfig, clock: fn() -> u64) -> Arc<Self> {
        let (plans, _) = watch::channel(Arc::new(Plan {
            at_unix_ms: clock(),
            shares: Vec::new(),
        }));
        Arc::new(BrokerDesk {
            broker: Mutex::new(Broker::new(config)),
            plans,
            clock,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Broker, u64) -> T) -> T {
        // The broker holds no invariant a panicking holder could break halfway that a
        // re-plan does not repair, so a poisoned lock is taken over.
        let mut broker = self.broker.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut broker, (self.clock)())
    }

    /// Re-plans now and publishes the plan to every bandwidth stream.
    pub fn replan(&self) -> Arc<Plan> {
        let plan = Arc::new(self.with(|b, now| b.plan(now)));
        self.plans.send_replace(plan.clone());
        plan
    }

    /// The newest plan.
    pub fn plan(&self) -> Arc<Plan> {
        self.plans.borrow().clone()
    }

    /// Bytes of `site`'s packets that just arrived: the progress a share is judged by.
    pub fn received(&self, site: &str, bytes: u64) {
        self.with(|b, now| b.received(site, now, bytes));
    }

    /// Bytes `site` still has to send, as the broker knows it (0 if unknown).
    pub fn backlog(&self, site: &str) -> u64 {
        self.with(|b, _| b.site(site).map_or(0, |s| s.backlog_bytes))
    }

    /// How long a share stays valid at the edge.
    pub fn share_valid_ms(&self) -> u64 {
        self.with(|b, _| b.config().share_valid_ms)
    }

    /// Re-plans every [`STATUS_EVERY`] for as long as the runtime runs, so stalls are noticed.
    pub fn spawn_replanning(self: &Arc<Self>) {
        let desk = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(STATUS_EVERY);
            loop {
                every.tick().await;
                let Some(desk) = desk.upgrade() else { return };
                desk.replan();
            }
        });
    }
}

/// Serves a site's bandwidth stream, whose first message (`first`) was a `SiteStatus`:
/// takes its reports and sends it its share after every plan, until the stream ends.
pub(crate) async fn serve_bandwidth(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    first: SiteStatus,
    desk: Arc<BrokerDesk>,
    station: Arc<StationSession>,
    frames: ConnectionFrames,
) -> Result<()> {
    let site = station.site.clone();
    desk.with(|b, now| {
        b.connect(&site, now);
        b.report(&site, now, &first);
    });
    let mut plans = desk.plans.subscribe();
    desk.replan();
    // Reports are read on a task of their own: a half-read frame must never be dropped by
    // a select on the next plan.
    let (reports_tx, mut reports) = tokio::sync::mpsc::channel::<Result<Option<Message>>>(4);
    let reader = tokio::spawn(async move {
        loop {
            // A station's reports are held to the same frame limits as its packets.
            let msg = read_message_bounded(&mut recv, &frames).await;
            let end = !matches!(msg, Ok(Some(_)));
            if reports_tx.send(msg).await.is_err() || end {
                return;
            }
        }
    });
    let valid_ms = desk.share_valid_ms();
    let result = loop {
        let plan = plans.borrow_and_update().clone();
        if let Some(share) = plan.share(&site) {
            let share = share.message((desk.clock)(), valid_ms);
            if let Err(e) = write_message(&mut send, &Message::Share(share)).await {
                debug!(site = %site, "bandwidth stream closed: {e}");
                break Ok(());
            }
        }
        tokio::select! {
            changed = plans.changed() => if changed.is_err() { break Ok(()) },
            report = reports.recv() => match report {
                Some(Ok(Some(Message::SiteStatus(status)))) => {
                    desk.with(|b, now| b.report(&site, now, &status));
                    desk.replan();
                }
                Some(Ok(Some(other))) => break Err(ProtocolError::Unexpected {
                    expected: "SiteStatus",
                    got: other.kind().into(),
                }.into()),
                // The bandwidth stream lives as long as the connection: a connection that
                // ends (the station closed it, the link dropped) ends it too, normally.
                Some(Err(e)) => {
                    debug!(site = %site, "bandwidth stream closed: {e}");
                    break Ok(());
                }
                Some(Ok(None)) | None => break Ok(()),
            },
        }
    };
    reader.abort();
    desk.with(|b, now| b.disconnect(&site, now));
    desk.replan();
    debug!(site = %site, "bandwidth stream ended");
    result
}

/// The edge's side: reports `status()` every [`STATUS_EVERY`] and hands every share the
/// center sends to `on_share`, until the connection ends. A center that does not broker
/// bandwidth closes the stream; the edge then paces to its own configured rate.
pub async fn exchange_bandwidth(
    conn: &quinn::Connection,
    status: Arc<dyn Fn() -> SiteStatus + Send + Sync>,
    on_share: Arc<dyn Fn(Share) + Send + Sync>,
) -> Result<()> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| Error::Connection(e.to_string()))?;
    write_message(&mut send, &Message::SiteStatus(status())).await?;
    let shares = tokio::spawn(async move {
        loop {
            match read_message(&mut recv).await? {
                None => return Ok(()),
                Some(Message::Share(share)) => on_share(share),
                Some(Message::Reject { reason, detail }) => {
                    return Err(ProtocolError::Refused { reason, detail }.into())
                }
                Some(other) => {
                    return Err(ProtocolError::Unexpected {
                        expected: "Share",
                        got: other.kind().into(),
                    }
                    .into())
                }
            }
        }
    });
    let mut every = tokio::time::interval(STATUS_EVERY);
    every.tick().await;
    loop {
        if shares.is_finished() {
            return shares
                .await
                .unwrap_or_else(|e| Err(Error::Connection(format!("share reader failed: {e}"))));
        }
        every.tick().await;
        if let Err(e) = write_message(&mut send, &Message::SiteStatus(status())).await {
            shares.abort();
            return Err(e);
        }
    }
}
