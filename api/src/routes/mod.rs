//! The route table. [`ROUTES`] lists every (method, path) the server answers;
//! a test checks the OpenAPI description documents exactly these.

pub mod admin;
pub mod audit;
pub mod health;
pub mod manage;
pub mod messaging;
pub mod org_webhooks;
pub mod provider_health;
pub mod providers;
pub mod routing;
pub mod suppressions;
pub mod webhooks;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, Resource};
use futures::future::LocalBoxFuture;
use futures::StreamExt;
use msgengine_domain::provider::{
    EmailProviderSpec, ProviderSpec, SmsProviderSpec, WhatsappProviderSpec,
};

use crate::error::ApiError;

/// Every route: (method, path in OpenAPI form).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/openapi.json"),
    ("GET", "/metrics"),
    ("POST", "/api/admin/organizations"),
    ("GET", "/api/admin/organizations"),
    ("GET", "/api/admin/organizations/{id}"),
    ("POST", "/api/admin/organizations/{id}/disable"),
    ("POST", "/api/admin/organizations/{id}/enable"),
    ("PUT", "/api/admin/organizations/{id}/rate-limit"),
    ("POST", "/api/admin/organizations/{id}/api-keys"),
    ("GET", "/api/admin/organizations/{id}/api-keys"),
    ("DELETE", "/api/admin/organizations/{id}/api-keys/{keyId}"),
    ("GET", "/api/email/providers"),
    ("POST", "/api/email/providers"),
    ("GET", "/api/email/providers/{id}"),
    ("PUT", "/api/email/providers/{id}"),
    ("DELETE", "/api/email/providers/{id}"),
    ("POST", "/api/email/providers/{id}/test"),
    ("POST", "/api/email/providers/{id}/verify-domain"),
    ("GET", "/api/email/providers/{id}/stats"),
    ("GET", "/api/sms/providers"),
    ("POST", "/api/sms/providers"),
    ("GET", "/api/sms/providers/{id}"),
    ("PUT", "/api/sms/providers/{id}"),
    ("DELETE", "/api/sms/providers/{id}"),
    ("POST", "/api/sms/providers/{id}/test"),
    ("GET", "/api/whatsapp/providers"),
    ("POST", "/api/whatsapp/providers"),
    ("GET", "/api/whatsapp/providers/{id}"),
    ("PUT", "/api/whatsapp/providers/{id}"),
    ("DELETE", "/api/whatsapp/providers/{id}"),
    ("POST", "/api/whatsapp/providers/{id}/test"),
    ("GET", "/api/whatsapp/providers/{id}/templates"),
    ("POST", "/api/whatsapp/providers/{id}/templates"),
    ("GET", "/api/audit"),
    ("GET", "/api/providers/health"),
    ("GET", "/api/routing/rules"),
    ("POST", "/api/routing/rules"),
    ("GET", "/api/routing/rules/{id}"),
    ("PUT", "/api/routing/rules/{id}"),
    ("DELETE", "/api/routing/rules/{id}"),
    ("POST", "/api/routing/simulate"),
    ("GET", "/api/routing/quiet-hours"),
    ("PUT", "/api/routing/quiet-hours"),
    ("DELETE", "/api/routing/quiet-hours"),
    ("POST", "/api/messaging/send"),
    ("GET", "/api/messaging/status/{messageId}"),
    ("GET", "/api/suppressions"),
    ("POST", "/api/suppressions"),
    ("GET", "/api/suppressions/{recipient}"),
    ("DELETE", "/api/suppressions/{recipient}"),
    ("POST", "/api/webhooks/email/{providerId}"),
    ("POST", "/api/webhooks/sms/{providerId}"),
    ("POST", "/api/webhooks/whatsapp/{providerId}"),
    ("GET", "/api/webhooks/whatsapp/{providerId}"),
    ("PUT", "/api/webhook-endpoint"),
    ("GET", "/api/webhook-endpoint"),
    ("DELETE", "/api/webhook-endpoint"),
    ("POST", "/api/webhook-endpoint/test"),
];

/// The OpenAPI description, served at `/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// Registers every route on an actix app or scope.
///
/// Order is speed: actix tries resources in registration order, and each
/// resource with a `{param}` costs a regex capture on every request that
/// reaches it (a static path is a string compare). So the hot routes come
/// first (send, status), then the provider webhooks (the receipts, one per
/// message), then everything else. No earlier pattern matches a later
/// route's paths, so the order changes nothing but the cost.
pub fn configure(cfg: &mut web::ServiceConfig) {
    configure_hot(cfg);
    configure_webhooks(cfg);
    configure_rest(cfg);
}

/// Every route but the provider webhooks, hot routes first.
pub fn configure_api(cfg: &mut web::ServiceConfig) {
    configure_hot(cfg);
    configure_rest(cfg);
}

/// The per-message routes: send and status.
fn configure_hot(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/messaging/send")
            .app_data(crate::extract::SendBody)
            .route(web::post().to(messaging::send)),
    )
    .service(resource("/api/messaging/status/{messageId}").route(web::get().to(messaging::status)));
}

/// The provider webhook routes (`/api/webhooks/…`), which the server can serve on a
/// listener of their own (`server.webhook_listen`).
pub fn configure_webhooks(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/webhooks/whatsapp/{providerId}")
            .route(web::get().to(webhooks::handshake))
            .route(web::post().to(whatsapp_webhook)),
    )
    .service(
        resource("/api/webhooks/{channel}/{providerId}").route(web::post().to(channel_webhook)),
    );
}

/// The webhook listener's routes: the webhooks and `/healthz`.
pub fn configure_webhook_listener(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz").route(web::get().to(health::healthz)));
    configure_webhooks(cfg);
}

/// Every route but the hot ones and the provider webhooks.
fn configure_rest(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz").route(web::get().to(health::healthz)))
        .service(resource("/readyz").route(web::get().to(health::readyz)))
        .service(resource("/openapi.json").route(web::get().to(openapi)))
        .service(resource("/metrics").route(web::get().to(health::metrics)))
        .service(
            resource("/api/admin/organizations")
                .route(web::post().to(admin::create_organization))
                .route(web::get().to(admin::list_organizations)),
        )
        .service(
            resource("/api/admin/organizations/{id}").route(web::get().to(admin::get_organization)),
        )
        .service(
            resource("/api/admin/organizations/{id}/disable")
                .route(web::post().to(admin::disable_organization)),
        )
        .service(
            resource("/api/admin/organizations/{id}/enable")
                .route(web::post().to(admin::enable_organization)),
        )
        .service(
            resource("/api/admin/organizations/{id}/rate-limit")
                .route(web::put().to(admin::set_rate_limit)),
        )
        .service(
            resource("/api/admin/organizations/{id}/api-keys")
                .route(web::post().to(admin::issue_api_key))
                .route(web::get().to(admin::list_api_keys)),
        )
        .service(
            resource("/api/admin/organizations/{id}/api-keys/{keyId}")
                .route(web::delete().to(admin::revoke_api_key)),
        )
        .service(resource("/api/audit").route(web::get().to(audit::list)))
        .service(resource("/api/providers/health").route(web::get().to(provider_health::list)))
        .service(
            resource("/api/routing/rules")
                .route(web::get().to(routing::list))
                .route(web::post().to(routing::create)),
        )
        .service(resource("/api/routing/simulate").route(web::post().to(routing::simulate)))
        .service(
            resource("/api/routing/quiet-hours")
                .route(web::get().to(routing::get_quiet_hours))
                .route(web::put().to(routing::put_quiet_hours))
                .route(web::delete().to(routing::delete_quiet_hours)),
        )
        .service(
            resource("/api/routing/rules/{id}")
                .route(web::get().to(routing::get))
                .route(web::put().to(routing::replace))
                .route(web::delete().to(routing::delete)),
        );
    cfg.service(
        resource("/api/email/providers/{id}/verify-domain")
            .route(web::post().to(manage::verify_domain)),
    )
    .service(resource("/api/email/providers/{id}/stats").route(web::get().to(manage::stats)))
    .service(
        resource("/api/whatsapp/providers/{id}/templates")
            .route(web::get().to(manage::list_templates))
            .route(web::post().to(manage::create_template)),
    );
    cfg.service(
        resource("/api/suppressions")
            .route(web::get().to(suppressions::list))
            .route(web::post().to(suppressions::add)),
    )
    .service(
        resource("/api/suppressions/{recipient}")
            .route(web::get().to(suppressions::get))
            .route(web::delete().to(suppressions::remove)),
    );
    cfg.service(
        resource("/api/webhook-endpoint")
            .route(web::put().to(org_webhooks::put))
            .route(web::get().to(org_webhooks::get))
            .route(web::delete().to(org_webhooks::delete)),
    )
    .service(resource("/api/webhook-endpoint/test").route(web::post().to(org_webhooks::test)));
    provider_routes::<EmailProviderSpec>(cfg);
    provider_routes::<SmsProviderSpec>(cfg);
    provider_routes::<WhatsappProviderSpec>(cfg);
}

fn provider_routes<S: ProviderSpec>(cfg: &mut web::ServiceConfig) {
    let base = format!("/api/{}/providers", S::CHANNEL.as_str());
    cfg.service(
        resource(&base)
            .route(web::get().to(providers::list::<S>))
            .route(web::post().to(providers::create::<S>)),
    )
    .service(
        resource(&format!("{base}/{{id}}"))
            .route(web::get().to(providers::get::<S>))
            .route(web::put().to(providers::update::<S>))
            .route(web::delete().to(providers::delete::<S>)),
    )
    .service(resource(&format!("{base}/{{id}}/test")).route(web::post().to(providers::test::<S>)));
}

/// POST on the WhatsApp path (its own resource for the GET handshake).
async fn whatsapp_webhook(
    state: web::Data<crate::state::AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    WebhookBody(body): WebhookBody,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    webhooks::receive(
        state,
        req,
        web::Path::from(("whatsapp".to_owned(), id)),
        body,
    )
    .await
}

/// POST on the email and SMS paths.
async fn channel_webhook(
    state: web::Data<crate::state::AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    WebhookBody(body): WebhookBody,
) -> Result<HttpResponse, ApiError> {
    webhooks::receive(state, req, path, body).await
}

/// A provider webhook's raw body, at most [`webhooks::MAX_WEBHOOK_BYTES`]. A
/// larger one is refused with the JSON error body (actix's own `Bytes`
/// extractor answers its refusal in plain text).
struct WebhookBody(web::Bytes);

impl FromRequest for WebhookBody {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = webhooks::MAX_WEBHOOK_BYTES;
        let too_large = move || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request body is larger than {limit} bytes"),
            )
        };
        let declared = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|n| n > limit) {
                return Err(too_large());
            }
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|_| {
                    ApiError::bad_request("invalid_body", "the request body could not be read")
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(WebhookBody(body.freeze()))
        })
    }
}

/// A resource whose unmatched methods answer 405 with the JSON error body,
/// named by its pattern (the metrics' `route` label reads the name, which
/// costs no allocation, where the matched pattern would).
fn resource(path: &str) -> Resource {
    web::resource(path)
        .name(path)
        .default_service(web::to(method_not_allowed))
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.path()),
    ))
}

/// The answer for a path no route matches.
pub async fn route_not_found(req: HttpRequest) -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        format!("no route for {} {}", req.method(), req.path()),
    ))
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI_JSON)
}
