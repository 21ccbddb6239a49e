//! A relay process for crash tests: `konvert-test-relay CONFIG` serves until killed.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("KONVERT_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let config = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: konvert-test-relay CONFIG"))?;
    let cfg = konvert_edge::relay::RelayConfig::load(config.as_ref())?;
    let relay = konvert_edge::relay::serve(&cfg).await?;
    println!("listening on {}", relay.addr);
    std::future::pending::<()>().await;
    Ok(())
}
