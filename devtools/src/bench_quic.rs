//! `konvert bench quic`: konvert's transport alone — QUIC with mutual TLS on loopback, with
//! konvert's own transport settings, several streams at once, nothing read from or written
//! to disk, nothing sealed, hashed or verified. It bounds what any packet transfer built
//! on it can reach on this machine: the real one does all of that on top.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use konvert_replication::{pki, tls};

use crate::stats::{CpuSpan, MachineCpu};

/// The server name in the throwaway center certificate.
const SERVER_NAME: &str = "center.konvert";
/// Bytes written to a stream at a time (as the edge sends a packet, 1 MiB chunks).
const CHUNK: usize = 1 << 20;

/// What one run moved and what it cost.
#[derive(Debug, Clone)]
pub struct QuicFigures {
    /// Payload bytes delivered.
    pub bytes: u64,
    /// From the first byte written to the last stream acknowledged by the receiver.
    pub elapsed: Duration,
    /// How busy the machine was meanwhile.
    pub cpu: Option<CpuSpan>,
    /// Datagrams per send (GSO) and per receive (GRO) quinn found on loopback.
    pub offload: Option<(usize, usize)>,
}

impl QuicFigures {
    /// Payload megabytes per second.
    pub fn mbps(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Sends `total` bytes as `streams` streams at once over one connection on loopback; the
/// receiver answers each stream with one byte once it has read all of it.
pub async fn run(total: u64, streams: usize) -> anyhow::Result<QuicFigures> {
    let ca = pki::Ca::generate("konvert bench CA")?;
    let center = ca.issue_center(SERVER_NAME)?;
    let station = ca.issue_station("0101")?;
    let server = tls::server_endpoint("127.0.0.1:0".parse()?, tls::server_config(&ca.cert_pem, &center, &[])?)?;
    let addr = server.local_addr()?;
    let receiving = tokio::spawn(receive_all(server.clone()));
    let client = tls::client_endpoint(tls::client_config(&ca.cert_pem, &station)?)?;
    let conn = client
        .connect(addr, SERVER_NAME)
        .context("cannot start the QUIC handshake")?
        .await
        .context("the QUIC handshake on loopback failed")?;

    let mut data = vec![0u8; CHUNK];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut data);
    let data = Bytes::from(data);
    let streams = streams.max(1);
    let per_stream = total / streams as u64;
    let cpu_at_start = MachineCpu::now();
    let started = Instant::now();
    let mut sending = tokio::task::JoinSet::new();
    for _ in 0..streams {
        let (conn, data) = (conn.clone(), data.clone());
        sending.spawn(async move {
            let (mut send, mut recv) = conn.open_bi().await?;
            let mut left = per_stream;
            while left > 0 {
                let n = left.min(CHUNK as u64) as usize;
                send.write_chunk(data.slice(..n)).await?;
                left -= n as u64;
            }
            send.finish()?;
            let mut ack = [0u8; 1];
            recv.read_exact(&mut ack).await?;
            anyhow::Ok(per_stream)
        });
    }
    let mut bytes = 0;
    while let Some(done) = sending.join_next().await {
        bytes += done??;
    }
    let elapsed = started.elapsed();
    let cpu = MachineCpu::since(cpu_at_start);
    conn.close(0u32.into(), b"done");
    client.wait_idle().await;
    server.close(0u32.into(), b"done");
    receiving.abort();
    let offload = tls::udp_offload("127.0.0.1:0".parse()?).ok();
    Ok(QuicFigures {
        bytes,
        elapsed,
        cpu,
        offload,
    })
}

/// Accepts connections and streams, reads every stream to its end and answers one byte.
async fn receive_all(endpoint: quinn::Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            let conn = Arc::new(conn);
            while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                tokio::spawn(async move {
                    while let Ok(Some(_chunk)) = recv.read_chunk(usize::MAX, true).await {}
                    let _ = send.write_all(&[1]).await;
                    let _ = send.finish();
                    let _ = send.stopped().await;
                });
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_byte_crosses_and_is_acknowledged() {
        let f = run(6_000_000, 3).await.unwrap();
        assert_eq!(f.bytes, 6_000_000);
        assert!(f.elapsed > Duration::ZERO);
        let cpu = f.cpu.unwrap();
        assert!(
            cpu.core_seconds > 0.0 && cpu.busy_cores <= cpu.cores as f64 + 1e-9,
            "{cpu:?}"
        );
    }
}
