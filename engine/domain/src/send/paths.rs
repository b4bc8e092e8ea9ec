//! Field paths in send-body errors: a message's errors are named relative to
//! the message (`to`) and moved under its place in a batch (`messages[3].to`);
//! serde's errors are turned into the same shape.

use crate::validate::{self as v, ValidationError};

/// Joins a message's path and a field path (`messages[3]` + `to`).
pub(super) fn join_path(prefix: &str, field: &str) -> String {
    match (prefix, field) {
        ("", field) => field.to_owned(),
        (prefix, "") => prefix.to_owned(),
        (prefix, field) => format!("{prefix}.{field}"),
    }
}

/// Moves an error named relative to a message under the message's path.
pub(super) fn with_prefix(prefix: &str, mut error: ValidationError) -> ValidationError {
    if prefix.is_empty() {
        return error;
    }
    let message = match error.message.strip_prefix(error.field.as_str()) {
        Some(rest) => format!("{prefix}.{}{rest}", error.field),
        None => format!("{prefix}: {}", error.message),
    };
    error.field = join_path(prefix, &error.field);
    error.message = message;
    error
}

/// A serde error as a [`ValidationError`] naming the field under `prefix`
/// (`body` when the error is about the whole body).
pub(super) fn serde_error(
    prefix: &str,
    error: &serde_path_to_error::Error<serde_json::Error>,
) -> ValidationError {
    let inner = error.path().to_string();
    let inner = inner.trim_start_matches('.');
    let message = error.inner().to_string();
    // serde_path_to_error's path already ends with an unknown field's name.
    let mut result = v::from_serde(&join_path(prefix, inner), &message);
    if result.field.is_empty() {
        result.field = "body".to_owned();
    }
    result
}
