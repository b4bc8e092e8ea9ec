//! The one error every use case answers with. It says what kind of failure
//! it is ([`ErrorKind`]), a stable machine-readable `code`, a message for a
//! person (never a secret, never a row value) and the offending field. The
//! HTTP edge maps the kind to a status and renders
//! `{"error":{"code","message","field"}}`; nothing else is decided there.

use msgengine_domain::ValidationError;
use msgengine_storage::driver::{deadpool_postgres, tokio_postgres};
use msgengine_storage::StoreError;

/// What kind of failure; the edge maps each to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed (400).
    BadRequest,
    /// Missing or wrong credentials (401).
    Unauthorized,
    /// Understood and authenticated, but refused (403).
    Forbidden,
    /// The resource does not exist, or is another organization's (404).
    NotFound,
    /// The resource does not answer this method (405).
    MethodNotAllowed,
    /// The request conflicts with stored state (409).
    Conflict,
    /// Well-formed but invalid, or not possible for this resource (422).
    Unprocessable,
    /// Over a rate; retry after `retry_after_secs` (429).
    TooManyRequests,
    /// A provider failed the operation asked of it (502).
    BadGateway,
    /// A dependency is unavailable for now; retry (503).
    Unavailable,
    /// A fault of ours; the log has the details (500).
    Internal,
}

/// A use case's failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind:?} {code}: {message}")]
pub struct AppError {
    pub kind: ErrorKind,
    /// Stable, machine-readable.
    pub code: &'static str,
    /// For a person; never contains secrets.
    pub message: String,
    /// The offending request field, camelCase and dotted, when there is one.
    pub field: Option<String>,
    /// Seconds for a `Retry-After` header.
    pub retry_after_secs: Option<u64>,
}

impl AppError {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
            field: None,
            retry_after_secs: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        let field = field.into();
        self.field = (!field.is_empty()).then_some(field);
        self
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    /// The same answer for a missing resource and another tenant's resource.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            ErrorKind::NotFound,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unprocessable, code, message)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, "unauthorized", message)
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, code, message)
    }

    pub fn internal() -> Self {
        Self::new(
            ErrorKind::Internal,
            "internal",
            "internal error; the server log has the details",
        )
    }
}

/// Maps a store's `NotFound` to a not-found naming `what`; other errors pass through.
pub fn not_found(what: &'static str) -> impl Fn(StoreError) -> AppError {
    move |e| match e {
        StoreError::NotFound => AppError::not_found(what),
        other => other.into(),
    }
}

impl From<ValidationError> for AppError {
    fn from(e: ValidationError) -> Self {
        AppError::new(ErrorKind::Unprocessable, e.code, e.message).with_field(e.field)
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AppError::not_found("resource"),
            StoreError::Conflict { constraint }
                if constraint == "providers_org_channel_name_key" =>
            {
                AppError::conflict(
                    "duplicate_name",
                    "a provider with this name already exists on this channel",
                )
                .with_field("name")
            }
            StoreError::Conflict { constraint } => {
                tracing::warn!(%constraint, "unexpected uniqueness conflict");
                AppError::conflict("conflict", "the request conflicts with existing data")
            }
            StoreError::Rejected {
                sqlstate,
                reason,
                column,
            } => {
                tracing::warn!(%sqlstate, %reason, ?column, "the database refused a request's data");
                AppError::unprocessable(
                    "storage_rejected",
                    format!("the request holds a value that cannot be stored: {reason}"),
                )
                .with_field(column.unwrap_or_default())
            }
            StoreError::Unavailable(reason) => {
                tracing::error!(%reason, "database unavailable");
                AppError::unavailable("unavailable", "the database is unavailable; retry shortly")
            }
            StoreError::Crypto(err) => {
                tracing::error!(error = %err, "stored credentials could not be opened");
                AppError::new(
                    ErrorKind::Internal,
                    "credentials_unreadable",
                    "stored credentials cannot be decrypted with the configured master keys",
                )
            }
            other => {
                tracing::error!(error = %other, source = ?std::error::Error::source(&other), "storage error");
                AppError::internal()
            }
        }
    }
}

impl From<deadpool_postgres::PoolError> for AppError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        AppError::from(StoreError::from(e))
    }
}

impl From<tokio_postgres::Error> for AppError {
    fn from(e: tokio_postgres::Error) -> Self {
        AppError::from(StoreError::from(e))
    }
}
