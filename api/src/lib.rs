//! msgengine's HTTP edge (actix-web): routes, authentication, request and
//! response shapes, the OpenAPI description and the one error type.
//!
//! The server binary builds an [`AppState`] and mounts [`configure`]; nothing
//! here reads the environment or owns a global.

pub mod auth;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod routes;
pub mod state;

pub use error::ApiError;
pub use routes::{
    configure, configure_api, configure_webhook_listener, configure_webhooks, route_not_found,
    ROUTES,
};
pub use state::{AppState, Limits, RenderMetrics};

/// Query-string errors answer 400 with the JSON error body.
pub fn query_config() -> actix_web::web::QueryConfig {
    actix_web::web::QueryConfig::default().error_handler(|err, _req| {
        ApiError::bad_request("invalid_query", format!("invalid query string: {err}")).into()
    })
}
