//! Re-sealing one table's sealed column under the key ring's newest key (the
//! `keys rotate` command), shared by every table that stores secrets.

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use crate::crypto::{Binding, KeyRing};
use crate::error::StoreError;

/// A sealed column: its table, its column (`bytea`, NULL when unset), and how
/// a row's ciphertext is bound (organization id, row id).
pub(crate) struct SealedColumn {
    pub table: &'static str,
    pub column: &'static str,
    pub binding: fn(Uuid, Uuid) -> Binding<'static>,
}

/// What one rotation did.
#[derive(Debug, Default)]
pub(crate) struct Rotated {
    pub rotated: u64,
    pub current: u64,
    /// Rows that could not be opened (unknown key or tampered), by id.
    pub failed: Vec<(Uuid, String)>,
}

/// Re-seals every row's `column` under the ring's newest key, `batch` rows at
/// a time, each with a compare-and-set on the old ciphertext: safe beside a
/// running server (a row it changed meanwhile is already under the newest
/// key, and the update matches 0 rows) and safe to interrupt (a re-run
/// continues).
pub(crate) async fn rotate(
    client: &impl GenericClient,
    ring: &KeyRing,
    sealed: &SealedColumn,
    batch: i64,
) -> Result<Rotated, StoreError> {
    let SealedColumn {
        table,
        column,
        binding,
    } = sealed;
    let select = client
        .prepare_cached(&format!(
            "SELECT id, organization_id, {column} FROM {table}
              WHERE {column} IS NOT NULL AND id > $1 ORDER BY id LIMIT $2"
        ))
        .await?;
    let swap = client
        .prepare_cached(&format!(
            "UPDATE {table} SET {column} = $3 WHERE id = $1 AND {column} = $2"
        ))
        .await?;
    let mut report = Rotated::default();
    let mut after = Uuid::nil();
    loop {
        let rows = client.query(&select, &[&after, &batch]).await?;
        let Some(last) = rows.last() else { break };
        after = last.try_get("id")?;
        for row in &rows {
            let id: Uuid = row.try_get("id")?;
            let org: Uuid = row.try_get("organization_id")?;
            let old: Vec<u8> = row.try_get(*column)?;
            match ring.reseal(&old, &binding(org, id)) {
                Ok(None) => report.current += 1,
                Ok(Some(fresh)) => {
                    client.execute(&swap, &[&id, &old, &fresh]).await?;
                    report.rotated += 1;
                }
                Err(e) => report.failed.push((id, e.to_string())),
            }
        }
    }
    Ok(report)
}
