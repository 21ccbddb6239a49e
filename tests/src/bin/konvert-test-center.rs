//! A center process for crash tests: `konvert-test-center CONFIG` serves until killed.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: konvert-test-center CONFIG"))?;
    let cfg = konvert_center::CenterConfig::load(config.as_ref())?;
    let center = konvert_center::serve(&cfg).await?;
    println!("listening on {}", center.addr);
    std::future::pending::<()>().await;
    Ok(())
}
