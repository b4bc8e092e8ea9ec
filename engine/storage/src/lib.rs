//! PostgreSQL storage for msgengine.
//!
//! Owns the connection pool, the embedded SQL migrations (from the workspace's
//! `migrations/` folder), the private PostgreSQL cluster used when no
//! `DATABASE_URL` is given, credential encryption, and one repository module per
//! aggregate. Repositories are plain functions over `&impl GenericClient` so a
//! caller can join them into its own transaction.

pub mod crypto;
pub mod embedded;
pub mod error;
pub mod migrate;
pub mod pool;
pub mod repo;
pub mod tls;

pub use error::StoreError;

/// The database driver crates, re-exported so upper layers use the same versions.
pub mod driver {
    pub use deadpool_postgres;
    pub use tokio_postgres;
}
pub use pool::{connect_pool, PoolSettings};
