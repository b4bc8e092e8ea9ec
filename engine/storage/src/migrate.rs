//! Embedded SQL migrations from the workspace's `migrations/` folder, applied
//! with refinery at start-up. A hash of the migration files names the test
//! template database, so a changed migration gets a fresh template.

use crate::error::StoreError;

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// Applies every pending migration inside the database `client` points at.
/// Safe to run concurrently from several processes: refinery takes no lock, so
/// we serialise on a PostgreSQL advisory lock.
pub async fn run(client: &mut tokio_postgres::Client) -> Result<(), StoreError> {
    const MIGRATION_LOCK: i64 = 0x6d73_6765_6e67_0001;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let outcome = embedded::migrations::runner()
        .set_abort_divergent(true)
        .run_async(client)
        .await
        .map_err(|e| StoreError::Migration(e.to_string()));
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    outcome.map(|_| ())
}

/// A stable fingerprint of the embedded migrations (names, versions and SQL).
pub fn fingerprint() -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for m in embedded::migrations::runner().get_migrations() {
        hasher.update(m.version().to_le_bytes());
        hasher.update(m.name().as_bytes());
        hasher.update(m.checksum().to_le_bytes());
    }
    hex::encode(&hasher.finalize()[..8])
}
