//! The one HTTP error type. Every failure a client sees is
//! `{"error": {"code": "...", "message": "...", "field": ...}}` with a 4xx or
//! 5xx status; internal details are logged once here, never sent.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use msgengine_domain::ValidationError;
use msgengine_storage::StoreError;
use serde_json::json;

/// An error answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, machine-readable.
    pub code: &'static str,
    /// For a person; never contains secrets.
    pub message: String,
    /// The offending request field, camelCase and dotted, when there is one.
    pub field: Option<String>,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after_secs: None,
        }
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        let field = field.into();
        self.field = (!field.is_empty()).then_some(field);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// The same answer for a missing resource and another tenant's resource.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the details",
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after_secs {
            response.insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()));
        }
        response.json(json!({
            "error": {"code": self.code, "message": self.message, "field": self.field}
        }))
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code, e.message).with_field(e.field)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found("resource"),
            StoreError::Conflict { constraint }
                if constraint == "providers_org_channel_name_key" =>
            {
                ApiError::conflict(
                    "duplicate_name",
                    "a provider with this name already exists on this channel",
                )
                .with_field("name")
            }
            StoreError::Conflict { constraint } => {
                tracing::warn!(%constraint, "unexpected uniqueness conflict");
                ApiError::conflict("conflict", "the request conflicts with existing data")
            }
            StoreError::Rejected {
                sqlstate,
                reason,
                column,
            } => {
                tracing::warn!(%sqlstate, %reason, ?column, "the database refused a request's data");
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "storage_rejected",
                    format!("the request holds a value that cannot be stored: {reason}"),
                )
                .with_field(column.unwrap_or_default())
            }
            StoreError::Unavailable(reason) => {
                tracing::error!(%reason, "database unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is unavailable; retry shortly",
                )
            }
            StoreError::Crypto(err) => {
                tracing::error!(error = %err, "stored credentials could not be opened");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "credentials_unreadable",
                    "stored credentials cannot be decrypted with the configured master keys",
                )
            }
            other => {
                tracing::error!(error = %other, source = ?std::error::Error::source(&other), "storage error");
                ApiError::internal()
            }
        }
    }
}

impl From<deadpool_postgres_error::PoolError> for ApiError {
    fn from(e: deadpool_postgres_error::PoolError) -> Self {
        ApiError::from(StoreError::from(e))
    }
}

impl From<tokio_postgres_error::Error> for ApiError {
    fn from(e: tokio_postgres_error::Error) -> Self {
        ApiError::from(StoreError::from(e))
    }
}

// Re-exported through storage so the API does not pin its own driver versions.
use msgengine_storage::driver::deadpool_postgres as deadpool_postgres_error;
use msgengine_storage::driver::tokio_postgres as tokio_postgres_error;
