//! Request extractors that fail with [`ApiError`]s: a JSON body with a size
//! limit, a content-type check and the failing field named; ids in paths.
//!
//! Every JSON body is also held to what PostgreSQL can store, whatever the
//! route (see [`check_storable`]): no string (key or value, at any depth)
//! holds U+0000, which `text` and `jsonb` refuse, and arrays and objects
//! nest at most [`MAX_JSON_DEPTH`] deep. Invalid UTF-8 and lone surrogates
//! are already refused by serde_json (400 `invalid_json`); length is bounded
//! by the body limit here and per field by the domain's validation.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::{header, StatusCode};
use actix_web::web::BytesMut;
use actix_web::{FromRequest, HttpRequest};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use uuid::Uuid;

mod storable;

pub use storable::{check_storable, MAX_JSON_DEPTH};

use crate::error::ApiError;
use crate::state::AppState;
use storable::strip_position;

/// Marks a route (resource `app_data`) whose bodies may be as large as
/// `max_send_body_bytes` instead of `max_body_bytes`.
#[derive(Debug, Clone, Copy)]
pub struct SendBody;

/// A JSON request body deserialised into `T`.
///
/// - not `application/json` (or `+json`): 415 `unsupported_media_type`;
/// - larger than the configured limit: 413 `payload_too_large`;
/// - not JSON: 400 `invalid_json`;
/// - JSON of the wrong shape: 422 naming the field.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_json::<T>(req, payload, false);
        Box::pin(async move {
            match body.await? {
                Some(value) => Ok(Json(value)),
                None => Err(ApiError::bad_request(
                    "invalid_json",
                    "the request body is empty; send a JSON object",
                )),
            }
        })
    }
}

/// An optional JSON body: a request with no body at all gives `None`; a body
/// that is present must be valid, exactly as for [`Json`].
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_json::<T>(req, payload, true);
        Box::pin(async move { body.await.map(OptionalJson) })
    }
}

type BodyFuture<T> = Pin<Box<dyn Future<Output = Result<Option<T>, ApiError>>>>;

fn read_json<T: DeserializeOwned + 'static>(
    req: &HttpRequest,
    payload: &mut Payload,
    allow_absent: bool,
) -> BodyFuture<T> {
    {
        let state = req.app_data::<actix_web::web::Data<AppState>>();
        let limit = match (state, req.app_data::<SendBody>()) {
            (Some(s), Some(_)) => s.limits.max_send_body_bytes,
            (Some(s), None) => s.limits.max_body_bytes,
            (None, _) => 256 * 1024,
        };
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .is_some_and(|m| {
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let has_content_type = req.headers().contains_key(header::CONTENT_TYPE);
        let mut payload = payload.take();
        Box::pin(async move {
            if allow_absent && !has_content_type && declared.unwrap_or(0) == 0 {
                return Ok(None);
            }
            if !is_json {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as JSON with Content-Type: application/json",
                ));
            }
            if declared.is_some_and(|n| n > limit) {
                return Err(too_large(limit));
            }
            let mut body = BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|_| {
                    ApiError::bad_request("invalid_body", "the request body could not be read")
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(too_large(limit));
                }
                body.extend_from_slice(&chunk);
            }
            parse_json(&body).map(Some)
        })
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body is larger than {limit} bytes"),
    )
}

/// Parses JSON bytes, naming the failing field on a shape error.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the request body is empty; send a JSON object",
        ));
    }
    check_storable(body)?;
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => ApiError::from(
                msgengine_domain::validate::from_serde(&path, &strip_position(&inner.to_string())),
            ),
            _ => ApiError::bad_request(
                "invalid_json",
                format!("the request body is not valid JSON: {inner}"),
            ),
        }
    })?;
    de.end().map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("the request body is not valid JSON: {e}"),
        )
    })?;
    Ok(value)
}

/// Parses an id from a path segment. A malformed id answers 404 like a missing one.
pub fn parse_id(segment: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(segment).map_err(|_| ApiError::not_found(what))
}

/// A list's `limit` query parameter: 1 to 500, default 100.
pub fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(100);
    if (1..=500).contains(&limit) {
        Ok(limit)
    } else {
        Err(
            ApiError::bad_request("invalid_query", "limit must be between 1 and 500")
                .with_field("limit"),
        )
    }
}
