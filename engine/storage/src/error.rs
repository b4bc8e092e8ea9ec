//! Storage errors, classified from PostgreSQL SQLSTATE codes (never from text).
//!
//! Three families matter to a writer that serves many organizations at once:
//! - tied to the data ([`StoreError::is_data_error`]): the server refused
//!   *these rows* (class 22 data exception, such as a NUL in `text`/`jsonb`
//!   or an untranslatable character; class 23 integrity violations; class 54
//!   program limits). Retrying the same rows can never succeed, and other
//!   rows written in the same transaction are innocent: split and retry them.
//! - unavailable ([`StoreError::Unavailable`]): connection failures (class
//!   08), the server shutting down (57P), pool errors. Nothing is wrong with
//!   the rows; the caller retries later.
//! - anything else ([`StoreError::Query`]).

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
    /// The server refused the values written (SQLSTATE class 22, 23 other
    /// than unique and foreign-key violations, or 54): the same rows can
    /// never be written. `reason` is the server's message (never its DETAIL,
    /// which can carry row values); `column` names the column when the
    /// server said which.
    #[error("the database refused the data: {reason} ({sqlstate})")]
    Rejected {
        sqlstate: String,
        reason: String,
        column: Option<String>,
    },
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
            let code = db.code().code();
            if code.starts_with("08") || code.starts_with("57P") {
                return StoreError::Unavailable(db.message().to_owned());
            }
            if is_data_sqlstate(code) {
                return StoreError::Rejected {
                    sqlstate: code.to_owned(),
                    reason: db.message().to_owned(),
                    column: db.column().map(str::to_owned),
                };
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

/// SQLSTATEs that say the server refused the values themselves: class 22
/// (data exception: 22P05 untranslatable character, 22021 character not in
/// repertoire, 22001 string too long, ...), class 23 (integrity; unique and
/// foreign-key violations are mapped before this is asked), class 54
/// (program limit exceeded: a value too large to index, too many columns).
fn is_data_sqlstate(code: &str) -> bool {
    code.starts_with("22") || code.starts_with("23") || code.starts_with("54")
}

impl StoreError {
    /// Whether the failure is tied to the rows written rather than to the
    /// database: a refused value ([`StoreError::Rejected`]) or a uniqueness
    /// conflict. A group writer splits its batch on such an error so that
    /// only the rows at fault fail.
    pub fn is_data_error(&self) -> bool {
        matches!(
            self,
            StoreError::Rejected { .. } | StoreError::Conflict { .. }
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_sqlstates_are_the_value_classes() {
        for code in ["22P05", "22021", "22001", "23502", "23514", "54000"] {
            assert!(is_data_sqlstate(code), "{code}");
        }
        for code in ["08006", "57P01", "40P01", "42P01", "XX000"] {
            assert!(!is_data_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn rejected_and_conflicts_are_data_errors_and_unavailable_is_not() {
        let rejected = StoreError::Rejected {
            sqlstate: "22P05".into(),
            reason: "unsupported Unicode escape sequence".into(),
            column: None,
        };
        assert!(rejected.is_data_error());
        assert!(StoreError::Conflict {
            constraint: "messages_pkey".into()
        }
        .is_data_error());
        assert!(!StoreError::Unavailable("down".into()).is_data_error());
        assert!(!StoreError::NotFound.is_data_error());
    }
}
