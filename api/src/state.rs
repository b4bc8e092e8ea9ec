//! What every handler shares: the use cases, the metrics renderer and the
//! request limits. Built once by the server binary and passed in (no
//! process globals).

use std::sync::Arc;

use actix_web::http::header;
use actix_web::HttpRequest;
use msgengine_actors::app::auth::TokenDigest;
use msgengine_actors::app::App;
use msgengine_domain::Secret;

/// Request limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted JSON body, in bytes. Default 262144 (256 KiB).
    pub max_body_bytes: usize,
    /// Largest send request body, in bytes (a batch of 1,000). Default 8 MiB.
    pub max_send_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 256 * 1024,
            max_send_body_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Shared application state, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The use cases every route calls (one per request).
    pub app: App,
    /// Renders the Prometheus text page for `GET /metrics`.
    pub metrics: RenderMetrics,
    /// When set, `GET /metrics` requires this bearer token.
    pub metrics_token: Option<Arc<ScrapeToken>>,
    pub limits: Limits,
}

/// Renders the process's metrics in the Prometheus text format.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// The bearer token a scraper must present for `GET /metrics`.
pub struct ScrapeToken(TokenDigest);

impl ScrapeToken {
    pub fn new(token: &Secret) -> Self {
        Self(TokenDigest::new(token))
    }

    /// Whether the request carries `Authorization: Bearer <this token>`.
    pub fn admits(&self, req: &HttpRequest) -> bool {
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .is_some_and(|token| self.0.verify(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scrape_token_admits_only_its_own_bearer() {
        use actix_web::http::header;
        use actix_web::test::TestRequest;
        let token = ScrapeToken::new(&Secret::new("scrape-token-0123456789"));
        let with = |value: &str| {
            TestRequest::default()
                .insert_header((header::AUTHORIZATION, value.to_owned()))
                .to_http_request()
        };
        assert!(token.admits(&with("Bearer scrape-token-0123456789")));
        assert!(!token.admits(&with("Bearer scrape-token-012345678")));
        assert!(!token.admits(&with("Basic scrape-token-0123456789")));
        assert!(!token.admits(&TestRequest::default().to_http_request()));
    }
}
