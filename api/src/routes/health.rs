//! Liveness and readiness for orchestrators and load balancers.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

use crate::state::AppState;

/// `GET /healthz`: the process is up and serving HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers, the actor system runs and no shared
/// writer (status outcomes, inbound webhooks, outbound deliveries) is stuck
/// waiting to write. 503 otherwise, naming what fails, so traffic goes
/// elsewhere.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db_ok = match state.pool.get().await {
        Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
        Err(_) => false,
    };
    let actors_ok = state.engine.is_running().await;
    let (writers, writers_ok) = writer_checks(&state.engine.writer_health());
    let checks = json!({
        "database": if db_ok { "ok" } else { "unreachable" },
        "actors": if actors_ok { "ok" } else { "stopped" },
        "writers": writers,
    });
    if db_ok && actors_ok && writers_ok {
        HttpResponse::Ok().json(json!({"status": "ready", "checks": checks}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "unavailable", "checks": checks}))
    }
}

/// `{"<writer>": {"state": "ok"}}`, or `{"state": "failing", "failingForSecs": n}`
/// for a writer that cannot write; and whether all are ok.
fn writer_checks(health: &[(&'static str, Option<Duration>)]) -> (Value, bool) {
    let mut all_ok = true;
    let mut out = Map::new();
    for (writer, failing) in health {
        let check = match failing {
            None => json!({"state": "ok"}),
            Some(for_how_long) => {
                all_ok = false;
                json!({"state": "failing", "failingForSecs": for_how_long.as_secs()})
            }
        };
        out.insert((*writer).to_owned(), check);
    }
    (Value::Object(out), all_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_writer_is_named_with_its_age_and_makes_the_node_unready() {
        let (checks, ok) =
            writer_checks(&[("status", Some(Duration::from_secs(12))), ("webhook", None)]);
        assert!(!ok);
        assert_eq!(
            checks,
            json!({"status": {"state": "failing", "failingForSecs": 12},
                   "webhook": {"state": "ok"}})
        );
        let (_, ok) = writer_checks(&[("status", None), ("outbound", None)]);
        assert!(ok);
    }
}
