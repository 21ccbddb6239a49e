//! An edge process for crash tests: `konvert-test-edge SITE_TOML` pushes the outbox and
//! prints `progress OFFSET SIZE` for every chunk handed to the connection, so a test can
//! kill it mid-packet.

use std::sync::Arc;
use std::time::Duration;

use konvert_edge::push::PushEvent;
use konvert_edge::{push, PushOptions, SiteConfig};
use konvert_replication::Outbox;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: konvert-test-edge SITE_TOML"))?;
    let cfg = SiteConfig::load(config.as_ref())?;
    let outbox = Arc::new(Outbox::open(&cfg.data_dir)?);
    let on_event = Arc::new(|ev: PushEvent| {
        if let PushEvent::Progress { offset, size, .. } = ev {
            println!("progress {offset} {size}");
        }
    });
    let report = push(
        &cfg,
        outbox,
        PushOptions {
            max_wait: Duration::from_secs(120),
            on_event,
            more_coming: None,
            expected: None,
        },
    )
    .await?;
    println!("delivered {}", report.delivered);
    Ok(())
}
