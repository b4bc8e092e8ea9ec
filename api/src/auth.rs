//! Authentication at the edge: the `Authorization: Bearer` header, checked
//! against the operator's admin token ([`Admin`]) or an organization's API key
//! ([`Tenant`]). Keys, their hashing and their cache live in the application
//! layer (`msgengine_actors::app::auth`).

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use msgengine_actors::app;

use crate::error::ApiError;
use crate::state::AppState;

fn bearer(req: &HttpRequest) -> Result<&str, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <key> header"))?;
    let text = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    let (scheme, token) = text
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("Authorization must be `Bearer <key>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthorized(
            "Authorization must be `Bearer <key>`",
        ));
    }
    Ok(token.trim())
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(ApiError::internal)
}

/// Extractor: the request carries the operator token.
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready((|| {
            let token = bearer(req)?;
            if state(req)?.app.is_admin_token(token) {
                Ok(Admin)
            } else {
                Err(ApiError::unauthorized("invalid admin token"))
            }
        })())
    }
}

/// Extractor: the request carries a valid API key; everything the handler
/// does is scoped to this organization.
#[derive(Debug, Clone, Copy)]
pub struct Tenant(pub app::Tenant);

impl std::ops::Deref for Tenant {
    type Target = app::Tenant;

    fn deref(&self) -> &app::Tenant {
        &self.0
    }
}

impl FromRequest for Tenant {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer(req).map(str::to_owned);
        let state = state(req);
        Box::pin(async move {
            let token = token?;
            let state = state?;
            match state.app.authenticate(&token).await? {
                Some(tenant) => Ok(Tenant(tenant)),
                None => Err(ApiError::unauthorized("unknown or revoked API key")),
            }
        })
    }
}
