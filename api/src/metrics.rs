//! HTTP metrics (the page itself is `routes::health::metrics`).
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
use actix_web::web;
use dashmap::DashMap;
use metrics::{Counter, Histogram, SharedString};
use msgengine_actors::metrics::{HTTP_REQUESTS, HTTP_REQUEST_DURATION};

use crate::routes::ROUTES;

/// Counts and times a request. The label values are static strings (the
/// route is the matched resource's name, which is its pattern, looked up in
/// [`ROUTES`]) and the counter and histogram handles are resolved once per
/// (method, route, status) and kept in [`HttpSeries`]: nothing is allocated
/// or looked up in the recorder's registry per request.
pub async fn record_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    // An app without the shared series (a test's bare App) counts into a
    // throwaway one: the same series, resolved per request.
    let series = req
        .app_data::<web::Data<HttpSeries>>()
        .cloned()
        .unwrap_or_default();
    let method = method_label(req.method());
    let result = next.call(req).await;
    let (route, status) = match &result {
        Ok(res) => (route_label(res.request().match_name()), res.status()),
        Err(e) => (route_label(None), e.as_response_error().status_code()),
    };
    let elapsed = started.elapsed().as_secs_f64();
    series.record(method, route, status, elapsed);
    result
}

/// The HTTP series' handles, by their labels. The server registers one as
/// app data (`web::Data<HttpSeries>`), shared by every worker.
#[derive(Default)]
pub struct HttpSeries {
    requests: DashMap<(&'static str, &'static str, u16), Counter>,
    durations: DashMap<(&'static str, &'static str), Histogram>,
}

impl HttpSeries {
    /// Records one answer. The handles are read under a shard's read lock;
    /// only a label set seen for the first time takes the write lock.
    fn record(&self, method: &'static str, route: &'static str, status: StatusCode, secs: f64) {
        let key = (method, route);
        match self.durations.get(&key) {
            Some(h) => h.record(secs),
            None => self
                .durations
                .entry(key)
                .or_insert_with(|| {
                    metrics::histogram!(HTTP_REQUEST_DURATION, "method" => method, "route" => route)
                })
                .record(secs),
        }
        let key = (method, route, status.as_u16());
        match self.requests.get(&key) {
            Some(c) => c.increment(1),
            None => self
                .requests
                .entry(key)
                .or_insert_with(|| {
                    metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => route, "status" => status_label(status))
                })
                .increment(1),
        }
    }
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

/// The `route` label: the matched resource's name (every resource is named
/// by its pattern, `routes::resource`) as the static string in [`ROUTES`],
/// or `unmatched`.
pub fn route_label(name: Option<&str>) -> &'static str {
    name.and_then(|name| ROUTES.iter().find(|(_, path)| *path == name))
        .map_or("unmatched", |(_, path)| path)
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
        assert_eq!(route_label(None), "unmatched");
        assert_eq!(
            route_label(Some("/api/messaging/status/{messageId}")),
            "/api/messaging/status/{messageId}"
        );
        assert_eq!(route_label(Some("/not/a/route")), "unmatched");
        assert_eq!(&*status_label(StatusCode::TOO_MANY_REQUESTS), "429");
        assert_eq!(&*status_label(StatusCode::IM_A_TEAPOT), "418");
    }
}
