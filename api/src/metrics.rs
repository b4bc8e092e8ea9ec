//! HTTP metrics and the `GET /metrics` page.
//!
//! [`record_request`] is a middleware: every answered request counts into
//! `msgengine_http_requests_total{method,route,status}` and
//! `msgengine_http_request_duration_seconds{method,route}`, where `route` is
//! the matched route pattern (`/api/messaging/status/{messageId}`), never
//! the path itself, so ids never become label values; `unmatched` when no
//! route matched.
//!
//! `GET /metrics` is open unless the operator sets a scrape token
//! (`metrics.bearer_token`): then only `Authorization: Bearer <token>` gets
//! the page (compared as SHA-256 digests in constant time), anything else a
//! 401 with the JSON error body.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use metrics::SharedString;
use msgengine_actors::metrics::{HTTP_REQUESTS, HTTP_REQUEST_DURATION};

use crate::error::ApiError;
use crate::state::AppState;

/// Counts and times a request.
pub async fn record_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let result = next.call(req).await;
    let (route, status) = match &result {
        Ok(res) => (route_label(res.request().match_pattern()), res.status()),
        Err(e) => (route_label(None), e.as_response_error().status_code()),
    };
    metrics::histogram!(HTTP_REQUEST_DURATION, "method" => method, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => route, "status" => status_label(status))
        .increment(1);
    result
}

/// The `method` label: the standard methods, `other` for extension methods.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// The `route` label: the matched pattern or `unmatched`.
pub fn route_label(pattern: Option<String>) -> SharedString {
    match pattern {
        Some(p) => SharedString::from(p),
        None => SharedString::const_str("unmatched"),
    }
}

/// The `status` label: the code's digits (static for the codes the server answers).
pub fn status_label(status: StatusCode) -> SharedString {
    let fixed = match status.as_u16() {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        _ => return SharedString::from(status.as_str().to_owned()),
    };
    SharedString::const_str(fixed)
}

/// `GET /metrics`: every series in the Prometheus text format (401 without
/// the scrape token when one is set).
pub async fn render(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    if let Some(token) = &state.metrics_token {
        if !token.admits(&req) {
            return Err(ApiError::unauthorized(
                "GET /metrics needs the scrape token: Authorization: Bearer <metrics.bearer_token>",
            ));
        }
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body((state.metrics)()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_closed_sets_or_the_route_pattern() {
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(
            method_label(&Method::from_bytes(b"BREW").expect("method")),
            "other"
        );
        assert_eq!(&*route_label(None), "unmatched");
        assert_eq!(
            &*route_label(Some("/api/messaging/status/{messageId}".into())),
            "/api/messaging/status/{messageId}"
        );
        assert_eq!(&*status_label(StatusCode::TOO_MANY_REQUESTS), "429");
        assert_eq!(&*status_label(StatusCode::IM_A_TEAPOT), "418");
    }

    #[test]
    fn the_scrape_token_admits_only_its_own_bearer() {
        use crate::state::ScrapeToken;
        use actix_web::http::header;
        use actix_web::test::TestRequest;
        use msgengine_domain::Secret;
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
