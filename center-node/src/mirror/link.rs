//! One QUIC connection of the mirror: each message is one unidirectional stream, read
//! whole within [`konvert_mirror::MAX_MESSAGE_LEN`] before anything parses it. Streams are
//! read one after the other, in the order the peer opened them, so batches arrive in the
//! order they were sent and the receiver seldom answers "out of sequence".

use std::sync::atomic::{AtomicU64, Ordering};

use konvert_mirror::{Node, MAX_MESSAGE_LEN};
use tokio::sync::mpsc;

use crate::mirror::node::{close, Input, LinkCommand, NodeHandle};

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Runs `conn`, authenticated as `peer`, until it closes: messages in go to the node,
/// the node's messages for `peer` go out.
pub async fn serve_connection(conn: quinn::Connection, peer: Node, node: NodeHandle) {
    let id = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel();
    if !node
        .send(Input::Connected {
            peer,
            conn: id,
            out: tx,
        })
        .await
    {
        conn.close(close::DONE.into(), b"the node is stopping");
        return;
    }
    tracing::info!(%peer, remote = %conn.remote_address(), "mirror connection open");
    let writer = async {
        while let Some(cmd) = rx.recv().await {
            match cmd {
                LinkCommand::Send(bytes) => {
                    let sent = async {
                        let mut s = conn.open_uni().await?;
                        s.write_all(&bytes).await?;
                        s.finish()?;
                        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
                    };
                    if let Err(e) = sent.await {
                        tracing::debug!(%peer, error = %e, "mirror message not sent; the connection is gone");
                        return;
                    }
                }
                LinkCommand::Close(code, why) => {
                    conn.close(code.into(), why.as_bytes());
                    return;
                }
            }
        }
    };
    let reader = async {
        loop {
            let mut stream = match conn.accept_uni().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::info!(%peer, reason = %e, "mirror connection closed");
                    return;
                }
            };
            let bytes = match stream.read_to_end(MAX_MESSAGE_LEN).await {
                Ok(b) => b,
                Err(quinn::ReadToEndError::TooLong) => {
                    tracing::warn!(%peer, max = MAX_MESSAGE_LEN, "mirror message over the limit; connection closed");
                    node.hooks_closed(peer, "a message over the mirror's limit");
                    conn.close(close::PROTOCOL.into(), b"a message over the mirror's limit");
                    return;
                }
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "mirror message not read");
                    continue;
                }
            };
            if !node.send(Input::Bytes { peer, conn: id, bytes }).await {
                return;
            }
        }
    };
    tokio::select! {
        () = writer => {}
        () = reader => {}
    }
    let _ = node.send(Input::Disconnected { peer, conn: id }).await;
}
