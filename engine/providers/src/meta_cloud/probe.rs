//! Testing a META_CLOUD connection: `GET /{phoneNumberId}?fields=
//! display_phone_number,verified_name` with the access token, a read-only
//! lookup that proves the token works and can see the number. When
//! `businessAccountId` is set, `GET /{WABA_ID}?fields=id,name` checks it
//! too (templates need it).

use async_trait::async_trait;
use msgengine_domain::provider::AnyProviderSpec;
use serde::Deserialize;

use super::{graph_error, Connection, RATE_LIMITED_CODES};
use crate::http::{self, Answer};
use crate::probe::{Check, CheckStatus, ConnectionProbe};
use crate::send::{FailureKind, ProviderError};

/// The live check of META_CLOUD connections.
pub struct MetaCloudProbe {
    http: crate::http::ProviderClient,
}

impl MetaCloudProbe {
    /// A probe calling out through the shared `http` client.
    pub fn new(http: crate::http::ProviderClient) -> Self {
        Self { http }
    }
}

#[async_trait]
impl ConnectionProbe for MetaCloudProbe {
    async fn probe(&self, spec: &AnyProviderSpec) -> Check {
        let AnyProviderSpec::Whatsapp(spec) = spec else {
            return failed("not a WhatsApp connection".into());
        };
        let c = Connection::new(spec, self.http.clone());
        let phone = match lookup_phone_number(&c).await {
            Ok(phone) => phone,
            Err(words) => return failed(words),
        };
        let waba = match &c.business_account_id {
            Some(waba) => match lookup(&c, waba, "id,name").await {
                Ok(_) => format!("; business account {waba} is visible too"),
                Err(words) => {
                    return failed(format!(
                        "the phone number works, but businessAccountId {waba} does not (templates need it): {words}"
                    ))
                }
            },
            None => String::new(),
        };
        Check {
            name: "connection",
            status: CheckStatus::Passed,
            message: format!("Meta accepted the access token: {phone}{waba}"),
        }
    }
}

fn failed(message: String) -> Check {
    Check {
        name: "connection",
        status: CheckStatus::Failed,
        message,
    }
}

#[derive(Deserialize)]
struct PhoneNumber {
    #[serde(default)]
    display_phone_number: Option<String>,
    #[serde(default)]
    verified_name: Option<String>,
}

/// The phone number in words, or what is wrong in words.
async fn lookup_phone_number(c: &Connection) -> Result<String, String> {
    let id = c.phone_number_id().map_err(|e| e.message)?;
    let answer = lookup(c, id, "display_phone_number,verified_name").await?;
    let number: PhoneNumber = serde_json::from_slice(&answer.body)
        .map_err(|_| format!("Meta answered the lookup of phone number id {id} with something other than a phone number"))?;
    let display = number.display_phone_number.unwrap_or_default();
    Ok(match number.verified_name.filter(|n| !n.is_empty()) {
        Some(name) => format!("phone number id {id} is {display} ({name})"),
        None => format!("phone number id {id} is {display}"),
    })
}

/// `GET /{node}?fields=…`; a failure explained in words, secrets scrubbed.
async fn lookup(c: &Connection, node: &str, fields: &str) -> Result<Answer, String> {
    let words = |e: ProviderError| c.scrub(e).message;
    let mut url = c.url(&[node]).map_err(words)?;
    url.query_pairs_mut().append_pair("fields", fields);
    let token = c.token().map_err(words)?;
    let request = c.http.get(url).bearer_auth(token.expose());
    let answer = match c.http.execute(request).await {
        Ok(answer) => answer,
        Err(e) => return Err(format!("could not reach Meta's Graph API: {}", words(e))),
    };
    if (200..300).contains(&answer.status) {
        return Ok(answer);
    }
    // Wrapped in an error only to reuse the connection's scrubbing.
    Err(words(ProviderError::new(
        FailureKind::Permanent,
        explain(node, &answer),
    )))
}

/// What a refused lookup of `node` means, in words.
fn explain(node: &str, answer: &Answer) -> String {
    let error = graph_error(&answer.body).unwrap_or_default();
    let code = error.code;
    let said = error
        .reason()
        .unwrap_or_else(|| http::plain_reason(answer.status, &answer.body));
    let status = answer.status;
    let detail = match code {
        Some(code) => format!("HTTP {status}, code {code}: {said}"),
        None => format!("HTTP {status}: {said}"),
    };
    if status == 401 || matches!(code, Some(0 | 190)) {
        return format!(
            "Meta refused the access token: it is invalid, expired or revoked; create a new system-user token ({detail})"
        );
    }
    if status == 404 || (code == Some(100) && error.error_subcode == Some(33)) {
        return format!(
            "Meta does not know {node}, or the token's app cannot see it: check the id ({detail})"
        );
    }
    if status == 403 || matches!(code, Some(3 | 10 | 200..=299)) {
        return format!(
            "the access token lacks a permission for {node} (whatsapp_business_messaging / whatsapp_business_management) ({detail})"
        );
    }
    if status == 429 || code.is_some_and(|c| RATE_LIMITED_CODES.contains(&c)) {
        return format!("Meta is rate limiting this app; try again later ({detail})");
    }
    if status >= 500 {
        return format!("Meta's Graph API is failing; try again later ({detail})");
    }
    format!("Meta refused the lookup of {node} ({detail})")
}
