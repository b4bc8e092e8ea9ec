//! `GET /api/providers/health`: the organization's running connections as
//! their provider actors see them now. The use case is
//! `msgengine_actors::app::provider_health`.

use actix_web::{web, HttpResponse};
use msgengine_actors::app::provider_health::ConnectionHealth;
use msgengine_domain::Channel;
use serde::Serialize;

use crate::auth::Tenant;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Serialize)]
struct HealthList {
    providers: Vec<ConnectionView>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConnectionView {
    provider_id: uuid::Uuid,
    channel: Channel,
    provider_type: &'static str,
    name: String,
    /// `closed`, `open` or `half_open`.
    circuit: String,
    success_rate: f64,
    samples: usize,
    latency_ewma_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit: Option<RateView>,
    waiting: usize,
    in_flight: usize,
    /// Delivered over final receipts, decaying with a 5-minute half-life;
    /// `null` before the first receipt.
    delivery_ratio: Option<f64>,
    delivery_samples: u32,
    rate_limited: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RateView {
    per_second: u32,
    burst: u32,
}

impl From<ConnectionHealth> for ConnectionView {
    fn from(c: ConnectionHealth) -> Self {
        ConnectionView {
            provider_id: c.provider_id.0,
            channel: c.channel,
            provider_type: c.provider_type,
            name: c.name,
            circuit: c.health.breaker,
            success_rate: c.health.success_rate,
            samples: c.samples,
            latency_ewma_ms: c.health.latency_ewma_ms,
            last_error: c.health.last_error,
            rate_limit: c
                .limit
                .map(|(per_second, burst)| RateView { per_second, burst }),
            waiting: c.waiting,
            in_flight: c.in_flight,
            delivery_ratio: c.delivery_ratio,
            delivery_samples: c.delivery_samples,
            rate_limited: c.rate_limited,
        }
    }
}

pub async fn list(tenant: Tenant, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let all = state.app.provider_health(*tenant).await?;
    Ok(HttpResponse::Ok().json(HealthList {
        providers: all.into_iter().map(ConnectionView::from).collect(),
    }))
}
