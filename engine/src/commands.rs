//! Operator commands besides `serve`: `keys generate` and `keys rotate`.

use anyhow::Context;
use msgengine_storage::crypto::KeyRing;
use msgengine_storage::repo::org_webhooks;
use msgengine_storage::repo::providers::rotate_secrets;
use msgengine_storage::{connect_pool, migrate, PoolSettings};

use crate::bootstrap::{self, ClusterUse, Database};
use crate::settings::Settings;

/// Prints a new key ring entry (`id:base64key`) to append to MSGENGINE_MASTER_KEYS.
pub fn generate_key(id: &str) -> anyhow::Result<String> {
    let entry = KeyRing::generate_entry(id);
    // Parse it back: this also validates the id.
    KeyRing::parse(&entry).context("invalid key id")?;
    Ok(entry)
}

/// Re-seals every stored secret under the newest key of the ring. Safe to run
/// while the server runs and safe to interrupt: re-run it until it reports 0
/// rotated, then remove the old key from the ring.
pub async fn rotate_keys(settings: &Settings) -> anyhow::Result<()> {
    if settings.database.url.is_none() {
        bootstrap::ensure_data_dir(&settings.data_dir)?;
    }
    let ring = bootstrap::load_key_ring(settings)?;
    let database = Database::resolve(settings, ClusterUse::Share).await?;
    let result = async {
        let pool = connect_pool(database.conninfo.expose(), &PoolSettings::default()).await?;
        let mut client = pool.get().await?;
        migrate::run(&mut client).await?;
        let providers = rotate_secrets(&client, &ring, 500).await?;
        let endpoints = org_webhooks::rotate_secrets(&client, &ring, 500).await?;
        Ok::<_, msgengine_storage::StoreError>((providers, endpoints))
    }
    .await;
    database.shutdown().await;
    let (report, endpoints) = result.context("key rotation failed")?;
    println!(
        "re-encrypted {} provider secret(s) under key `{}`; {} already current; {} unreadable",
        report.rotated,
        ring.active_key_id(),
        report.current,
        report.failed.len()
    );
    for (id, reason) in &report.failed {
        println!("  provider {id}: {reason}");
    }
    println!(
        "re-encrypted {} webhook endpoint secret(s); {} already current; {} unreadable",
        endpoints.rotated,
        endpoints.current,
        endpoints.failed.len()
    );
    for (id, reason) in &endpoints.failed {
        println!("  webhook endpoint {id}: {reason}");
    }
    let failed = report.failed.len() + endpoints.failed.len();
    if failed > 0 {
        anyhow::bail!("{failed} secret(s) could not be re-encrypted; see above");
    }
    Ok(())
}
