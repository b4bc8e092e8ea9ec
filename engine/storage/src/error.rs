//! Storage errors, classified from PostgreSQL SQLSTATE codes (never from text).

use tokio_postgres::error::SqlState;

/// What went wrong in the store, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint was violated; `constraint` names it.
    #[error("conflict on {constraint}")]
    Conflict { constraint: String },
    /// The row does not exist (or belongs to another organization).
    #[error("not found")]
    NotFound,
    /// The database cannot be reached, the pool is exhausted, or a statement ran past
    /// `statement_timeout` / waited past `lock_timeout`.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A query failed for another reason. Shown with the server's message and
    /// SQLSTATE (never its DETAIL, which can carry row values).
    #[error("query failed: {}", query_summary(.0))]
    Query(#[source] tokio_postgres::Error),
    /// A stored secret could not be decrypted or encrypted.
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    /// Stored data does not match the shape the code expects.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Migrations could not be applied.
    #[error("migration failed: {0}")]
    Migration(String),
    /// The storage configuration is invalid.
    #[error("{0}")]
    Config(String),
}

/// `message (SQLSTATE)` for an error the server reported, else the client's own words.
fn query_summary(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => err.to_string(),
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> Self {
        if let Some(db) = err.as_db_error() {
            if *db.code() == SqlState::UNIQUE_VIOLATION {
                return StoreError::Conflict {
                    constraint: db.constraint().unwrap_or_default().to_owned(),
                };
            }
            if *db.code() == SqlState::FOREIGN_KEY_VIOLATION {
                return StoreError::NotFound;
            }
            // A statement past `statement_timeout` (57014) or a lock wait past `lock_timeout`
            // (55P03): the database did not answer in time, like one that is down, so
            // callers back off and retry instead of treating the data as bad.
            if *db.code() == SqlState::QUERY_CANCELED || *db.code() == SqlState::LOCK_NOT_AVAILABLE
            {
                return StoreError::Unavailable(format!("{} ({})", db.message(), db.code().code()));
            }
            if db.code().code().starts_with("08") || db.code().code().starts_with("57P") {
                return StoreError::Unavailable(db.message().to_owned());
            }
        }
        if err.is_closed() || err.as_db_error().is_none() && err.code().is_none() {
            // Connection-level failures carry no SQLSTATE.
            if err.is_closed() {
                return StoreError::Unavailable("connection closed".to_owned());
            }
        }
        StoreError::Query(err)
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        match err {
            deadpool_postgres::PoolError::Backend(e) => StoreError::from(e),
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}
