//! Inbound provider webhooks: `POST /api/webhooks/{channel}/{providerId}`
//! (and Meta's `GET` verify-token handshake on the WhatsApp path).
//!
//! The edge hands the request as it arrived (method, the URL as called,
//! headers, query, body) to the use case (`msgengine_actors::app::webhooks`),
//! which finds the connection, verifies the provider's signature, claims a
//! single-use nonce where the signature needs one, cleans and records the
//! events. A bad or missing signature is 401 and writes nothing; Meta's GET
//! handshake answers a wrong verify token with 403, as Meta documents.

use actix_web::{web, HttpRequest, HttpResponse};
use msgengine_actors::app::webhooks::{Handshake, WebhookRequest};
use msgengine_domain::Channel;
use serde::Serialize;

pub use msgengine_actors::app::webhooks::MAX_WEBHOOK_BYTES;

use crate::error::ApiError;
use crate::state::AppState;

/// What a webhook did.
#[derive(Serialize)]
struct ReceivedView {
    received: usize,
    duplicates: usize,
    applied: usize,
    pending: usize,
}

#[derive(Serialize)]
struct Empty {}

/// The URL as the provider called it (Twilio signs it): scheme and host as
/// this server was reached (honouring `Forwarded` / `X-Forwarded-*` from a
/// proxy in front), path and query.
fn called_url(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}{}", info.scheme(), info.host(), req.uri())
}

fn request<'a>(req: &'a HttpRequest, url: &'a str, body: &'a [u8]) -> WebhookRequest<'a> {
    WebhookRequest {
        method: req.method().as_str(),
        url,
        headers: req
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()))
            .collect(),
        query: req.query_string(),
        body,
    }
}

pub async fn receive(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (channel, provider) = path.into_inner();
    let channel: Channel = channel
        .parse()
        .map_err(|_| ApiError::not_found("webhook"))?;
    let url = called_url(&req);
    let done = state
        .app
        .receive_webhook(channel, &provider, request(&req, &url, &body))
        .await?;
    Ok(HttpResponse::Ok().json(ReceivedView {
        received: done.received,
        duplicates: done.duplicates,
        applied: done.applied,
        pending: done.pending,
    }))
}

/// Meta's subscription handshake: `hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`.
pub async fn handshake(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let url = called_url(&req);
    let reply = state
        .app
        .webhook_handshake(&path, request(&req, &url, &[]))
        .await?;
    Ok(match reply {
        Handshake::Challenge(text) => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(text),
        Handshake::Ok => HttpResponse::Ok().json(Empty {}),
    })
}
