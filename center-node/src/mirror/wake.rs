//! What wakes a node to look at its outbox: `NOTIFY konvert_mirror` from the process that
//! wrote rows (closing an exam sends its results up at once, `002:7451`), and, in case a
//! notification was missed (the listening connection was down), a look every so often.

use std::sync::Arc;
use std::time::Duration;

use konvert_records::PgRecords;
use tokio::sync::Notify;

use crate::mirror::node::NodeWaker;

/// How long the listening thread waits for a notification before it checks whether the
/// node still runs.
const LISTEN_SLICE: Duration = Duration::from_secs(1);
/// How long it waits before it connects again after losing its connection.
const RECONNECT: Duration = Duration::from_secs(2);

/// Wakes `node` on every notification and every `every`; the returned [`Notify`] is
/// notified on each notification too (a region starts an exchange on it).
/// Both stop once the node is gone.
pub fn spawn(records_url: String, node: NodeWaker, every: Duration) -> Arc<Notify> {
    let notified = Arc::new(Notify::new());
    let ticker = node.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !ticker.wake().await {
                return;
            }
        }
    });
    let to_notify = notified.clone();
    let spawned = std::thread::Builder::new()
        .name("mirror-listen".into())
        .spawn(move || listen(&records_url, &node, &to_notify));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the thread that listens for konvert_mirror; the outbox is looked at on schedule only");
    }
    notified
}

fn listen(url: &str, node: &NodeWaker, notified: &Notify) {
    while !node.is_stopped() {
        let listener = PgRecords::connect(url).and_then(|r| r.listen());
        let mut listener = match listener {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for konvert_mirror; trying again");
                std::thread::sleep(RECONNECT);
                continue;
            }
        };
        loop {
            match listener.wait(LISTEN_SLICE) {
                Ok(true) => {
                    notified.notify_one();
                    if !node.wake_blocking() {
                        return;
                    }
                }
                Ok(false) if node.is_stopped() => return,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "lost the konvert_mirror listener; connecting again");
                    std::thread::sleep(RECONNECT);
                    break;
                }
            }
        }
    }
}
