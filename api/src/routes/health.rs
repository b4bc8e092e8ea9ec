//! Liveness and readiness for orchestrators and load balancers.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

/// `GET /healthz`: the process is up and serving HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers and the actor system runs. 503
/// otherwise, so traffic goes elsewhere.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db_ok = match state.pool.get().await {
        Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
        Err(_) => false,
    };
    let actors_ok = state.engine.is_running().await;
    let checks = json!({
        "database": if db_ok { "ok" } else { "unreachable" },
        "actors": if actors_ok { "ok" } else { "stopped" },
    });
    if db_ok && actors_ok {
        HttpResponse::Ok().json(json!({"status": "ready", "checks": checks}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "unavailable", "checks": checks}))
    }
}
