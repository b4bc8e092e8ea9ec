//! Liveness and readiness for orchestrators and load balancers, and the
//! Prometheus page.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use msgengine_actors::app::health::Readiness;
use serde::Serialize;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Serialize)]
struct Live {
    status: &'static str,
}

#[derive(Serialize)]
struct Ready {
    status: &'static str,
    checks: Checks,
}

#[derive(Serialize)]
struct Checks {
    database: &'static str,
    actors: &'static str,
    writers: BTreeMap<&'static str, WriterCheck>,
}

/// `{"state": "ok"}`, or `{"state": "failing", "failingForSecs": n}`.
#[derive(Serialize, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct WriterCheck {
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    failing_for_secs: Option<u64>,
}

/// `GET /healthz`: the process is up and serving HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Live { status: "ok" })
}

/// `GET /readyz`: the database answers, the actor system runs and no shared
/// writer (status outcomes, inbound webhooks, outbound deliveries) is stuck
/// waiting to write. 503 otherwise, naming what fails, so traffic goes
/// elsewhere.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let found = state.app.readiness().await;
    let body = render(&found);
    if found.is_ready() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

fn render(found: &Readiness) -> Ready {
    Ready {
        status: if found.is_ready() {
            "ready"
        } else {
            "unavailable"
        },
        checks: Checks {
            database: if found.database { "ok" } else { "unreachable" },
            actors: if found.actors { "ok" } else { "stopped" },
            writers: writer_checks(&found.writers),
        },
    }
}

fn writer_checks(
    health: &[(&'static str, Option<Duration>)],
) -> BTreeMap<&'static str, WriterCheck> {
    health
        .iter()
        .map(|(writer, failing)| {
            let check = match failing {
                None => WriterCheck {
                    state: "ok",
                    failing_for_secs: None,
                },
                Some(for_how_long) => WriterCheck {
                    state: "failing",
                    failing_for_secs: Some(for_how_long.as_secs()),
                },
            };
            (*writer, check)
        })
        .collect()
}

/// `GET /metrics`: every series in the Prometheus text format (401 without
/// the scrape token when one is set).
pub async fn metrics(
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
    use serde_json::json;

    #[test]
    fn a_failing_writer_is_named_with_its_age_and_makes_the_node_unready() {
        let found = Readiness {
            database: true,
            actors: true,
            writers: vec![("status", Some(Duration::from_secs(12))), ("webhook", None)],
        };
        assert!(!found.is_ready());
        assert_eq!(
            serde_json::to_value(render(&found)).ok(),
            Some(json!({
                "status": "unavailable",
                "checks": {
                    "database": "ok",
                    "actors": "ok",
                    "writers": {"status": {"state": "failing", "failingForSecs": 12},
                                "webhook": {"state": "ok"}}
                }
            }))
        );
        let found = Readiness {
            writers: vec![("status", None), ("outbound", None)],
            ..found
        };
        assert!(found.is_ready());
    }
}
