//! Termii management and connection test.
//!
//! - [`TermiiAdmin`]: providers.md §11 documents no message lookup, so
//!   `message_status` is refused in words (statuses arrive through the
//!   delivery webhook).
//! - [`TermiiProbe`]: the account balance, `GET {baseUrl}/api/get-balance?api_key=…`
//!   answering `{"user", "balance", "currency"}`. §11 names `balance` and
//!   `user` only in the send answer; the endpoint is the one Termii's API
//!   reference and client libraries use (unconfirmed in providers.md). It is
//!   read-only and checks the key and the account's base URL. The key rides
//!   in the query string (Termii's scheme for GETs), so the request URL is
//!   never put into words.

use async_trait::async_trait;
use msgengine_domain::provider::AnyProviderSpec;
use serde::Deserialize;
use serde_json::Value;

use super::{classify_response, DEFAULT_BASE_URL};
use crate::http;
use crate::manage::{unsupported, ProviderStatus, SmsAdmin};
use crate::probe::{Check, CheckStatus, ConnectionProbe};
use crate::send::{FailureKind, ProviderError};

/// Termii management: no lookup is documented.
pub struct TermiiAdmin;

#[async_trait]
impl SmsAdmin for TermiiAdmin {
    async fn message_status(
        &self,
        _provider_message_id: &str,
    ) -> Result<ProviderStatus, ProviderError> {
        Err(unsupported(
            "TERMII",
            "a documented message status lookup (providers.md §11): statuses arrive through \
             its delivery webhook",
        ))
    }
}

/// The live connection test: the account balance (see the module docs).
pub struct TermiiProbe {
    http: crate::http::ProviderClient,
}

impl TermiiProbe {
    /// A probe calling out through the shared `http` client.
    pub fn new(http: crate::http::ProviderClient) -> Self {
        Self { http }
    }
}

#[derive(Deserialize)]
struct Balance {
    balance: Value,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

fn check(status: CheckStatus, message: String) -> Check {
    Check {
        name: "connection",
        status,
        message,
    }
}

#[async_trait]
impl ConnectionProbe for TermiiProbe {
    async fn probe(&self, spec: &AnyProviderSpec) -> Check {
        let AnyProviderSpec::Sms(spec) = spec else {
            return check(
                CheckStatus::Failed,
                "the Termii check only tests SMS connections".into(),
            );
        };
        let endpoint = http::endpoint(
            spec.base_url.as_deref(),
            DEFAULT_BASE_URL,
            &["api", "get-balance"],
        );
        let (Some(endpoint), Some(api_key)) = (endpoint, spec.credential("apiKey")) else {
            return check(
                CheckStatus::Failed,
                "TERMII needs credentials.apiKey, and baseUrl (when set) must be an http(s) URL"
                    .into(),
            );
        };
        let secrets = [api_key.expose()];
        let request = self
            .http
            .get(endpoint)
            .query(&[("api_key", api_key.expose())]);
        let answer = match self.http.execute(request).await {
            Ok(answer) => answer,
            Err(e) => {
                return check(
                    CheckStatus::Failed,
                    failure_words(&http::scrub(e, &secrets)),
                )
            }
        };
        if (200..300).contains(&answer.status) {
            if let Ok(balance) = serde_json::from_slice::<Balance>(&answer.body) {
                return check(CheckStatus::Passed, balance_words(&balance));
            }
        }
        let mut error = classify_response(answer.status, &answer.headers, &answer.body);
        if (200..300).contains(&answer.status) && error.message == super::NO_ID_REASON {
            error.message =
                "Termii answered without a balance: is baseUrl your account's Termii API host?"
                    .into();
        }
        check(
            CheckStatus::Failed,
            failure_words(&http::scrub(error, &secrets)),
        )
    }
}

fn balance_words(b: &Balance) -> String {
    let amount = match &b.balance {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let held = match b.currency.as_deref().filter(|c| !c.is_empty()) {
        Some(currency) => format!("{amount} {currency}"),
        None => amount.clone(),
    };
    let account = b
        .user
        .as_deref()
        .map(|u| format!(" of {u}"))
        .unwrap_or_default();
    let empty = amount.parse::<f64>().is_ok_and(|v| v <= 0.0);
    let warning = if empty {
        ": sends will fail until the account is topped up"
    } else {
        ""
    };
    format!(
        "Termii accepted the API key (read-only balance lookup): the account{account} holds \
         {held}{warning}"
    )
}

/// What a failed balance lookup says about the connection, in words.
fn failure_words(e: &ProviderError) -> String {
    let reason = &e.message;
    match (e.kind, e.http_status) {
        (FailureKind::Timeout, _) => "Termii did not answer within the request timeout".into(),
        (FailureKind::Transient, None) => format!("could not reach Termii: {reason}"),
        (_, Some(s @ (401 | 403))) => format!("Termii refused the API key (HTTP {s}: {reason})"),
        (_, Some(404)) => format!(
            "no Termii API at baseUrl (HTTP 404: {reason}): set baseUrl to your account's API \
             host from the Termii dashboard"
        ),
        (FailureKind::RateLimited, _) => {
            format!("Termii is rate limiting this API key; try again later ({reason})")
        }
        (FailureKind::Transient, Some(s)) if !(200..300).contains(&s) => {
            format!("Termii is unavailable (HTTP {s}: {reason}); try again later")
        }
        (_, Some(s)) => format!("Termii refused the balance lookup (HTTP {s}: {reason})"),
        (_, None) => format!("Termii refused: {reason}"),
    }
}
