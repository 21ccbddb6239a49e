//! Starting the center: the QUIC endpoint, the accept loop, and the metrics endpoint.

use std::net::SocketAddr;
use std::sync::Arc;

use konvert_crypto::keyfile;
use konvert_replication::{driver, pki, tls, Inbox};
use tracing::{info, warn};

use crate::config::CenterConfig;
use crate::intake::CenterIntake;
use crate::metrics::{serve_metrics, Metrics};
use crate::revocation::{self, Revocation};
use crate::test_packets::{TestDesk, TestPacketRecord};
use crate::{Error, Result};

/// A center that is serving.
pub struct RunningCenter {
    /// The QUIC address it listens on.
    pub addr: SocketAddr,
    /// The `/metrics` address, if enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// Its metrics.
    pub metrics: Metrics,
    /// Its inbox.
    pub inbox: Arc<Inbox>,
    endpoint: quinn::Endpoint,
    /// Watches the station revocation list and closes revoked stations' connections.
    pub revocation: Revocation,
}

impl RunningCenter {
    /// Stops accepting and closes every connection.
    pub async fn shutdown(self) {
        self.endpoint.close(0u32.into(), b"center shutting down");
        self.endpoint.wait_idle().await;
    }
}

/// Puts back on the test desk any stored test packet whose desk record was never
/// written (a crash or full disk between storing it and recording it).
fn restore_test_desk(inbox: &Inbox, desk: &TestDesk) -> Result<()> {
    for record in inbox.records()? {
        let desk_record = TestPacketRecord::from_inbox(&record);
        if record.test_packet && !desk.contains(&desk_record.envelope_id) {
            desk.record_received(&desk_record)?;
            info!(packet = %desk_record.packet_id, version = desk_record.version, "test packet put back on the desk");
        }
    }
    Ok(())
}

/// Starts the center described by `cfg` and returns once it listens.
pub async fn serve(cfg: &CenterConfig) -> Result<RunningCenter> {
    let read = |p: &std::path::Path| std::fs::read_to_string(p).map_err(Error::file(p));
    let ca_pem = read(&cfg.ca_cert)?;
    let cert = pki::IssuedCert {
        cert_pem: read(&cfg.cert)?,
        key_pem: read(&cfg.key)?.into(),
    };
    let receipt_key = keyfile::read_signing_key(&cfg.receipt_key)?;
    let inbox = Arc::new(Inbox::open(&cfg.data_dir)?);
    restore_test_desk(&inbox, &TestDesk::open(&cfg.data_dir)?)?;
    let metrics = Metrics::new()?;
    let intake = Arc::new(CenterIntake::new(cfg, inbox.clone(), receipt_key, metrics.clone())?);
    let crl = revocation::load_crl(cfg)?;
    let server_config = tls::server_config(&ca_pem, &cert, std::slice::from_ref(&crl.der))?;
    let endpoint = tls::server_endpoint(cfg.listen, server_config)?;
    let revocation = revocation::start(cfg, endpoint.clone(), ca_pem, cert, crl, &metrics.registry)?;
    let live = revocation.live();
    let addr = endpoint.local_addr()?;
    let metrics_addr = match cfg.metrics_listen {
        Some(a) => Some(serve_metrics(a, metrics.clone()).await?),
        None => None,
    };
    info!(%addr, name = %cfg.name, "center listening");
    let ep = endpoint.clone();
    let name = cfg.name.clone();
    let m = metrics.clone();
    let slots = Arc::new(tokio::sync::Semaphore::new(cfg.max_connections));
    tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            // A full center refuses at once; the edge backs off and retries.
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                warn!(
                    "refusing a station connection: {} connections are open",
                    m.connections.get()
                );
                incoming.refuse();
                continue;
            };
            let intake = intake.clone();
            let name = name.clone();
            let m = m.clone();
            let live = live.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let conn = match incoming.await {
                    Ok(c) => c,
                    Err(e) => {
                        warn!("handshake with a station failed: {e}");
                        return;
                    }
                };
                m.connections.inc();
                let _live = live.register(&conn);
                if let Err(e) = driver::serve_connection(conn, intake, name).await {
                    warn!("station connection ended with an error: {e}");
                }
                m.connections.dec();
            });
        }
    });
    Ok(RunningCenter {
        addr,
        metrics_addr,
        metrics,
        inbox,
        endpoint,
        revocation,
    })
}
