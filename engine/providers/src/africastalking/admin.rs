//! Africa's Talking beside sending: the connection probe, a read-only
//! `GET {root}/version1/user?username={username}` with the `apiKey` header
//! (the account's balance: Africa's Talking's user-data API, not in
//! providers.md §10, so its answer `{"UserData": {"balance": "KES 1785.50"}}`
//! is unconfirmed here), and the SMS management, which has nothing to offer:
//! Africa's Talking has no message status lookup (§10: delivery reports
//! arrive only at the callback URL).

use async_trait::async_trait;
use msgengine_domain::provider::AnyProviderSpec;
use reqwest::header::ACCEPT;
use serde::Deserialize;

use super::{classify_response, Account};
use crate::http;
use crate::manage::{self, ProviderStatus, SmsAdmin};
use crate::probe::{Check, CheckStatus, ConnectionProbe};
use crate::send::{FailureKind, ProviderError};

/// SMS management for an Africa's Talking connection.
pub struct AfricasTalkingAdmin;

#[async_trait]
impl SmsAdmin for AfricasTalkingAdmin {
    async fn message_status(
        &self,
        _provider_message_id: &str,
    ) -> Result<ProviderStatus, ProviderError> {
        let mut error = manage::unsupported("Africa's Talking", "a message status lookup");
        error.message = "Africa's Talking offers no message status lookup: delivery reports \
                         arrive only at the callback URL set in its dashboard (SMS → Callback \
                         URLs → Delivery Reports)"
            .into();
        Err(error)
    }
}

/// The live check for Africa's Talking connections.
pub struct AfricasTalkingProbe {
    http: crate::http::ProviderClient,
}

impl AfricasTalkingProbe {
    /// A probe calling out through the shared `http` client.
    pub fn new(http: crate::http::ProviderClient) -> Self {
        Self { http }
    }

    async fn check(&self, account: &Account) -> Result<String, String> {
        let (mut url, username, api_key) = account.call("user").map_err(|e| e.message)?;
        url.query_pairs_mut()
            .append_pair("username", username.expose());
        let request = self
            .http
            .get(url)
            .header("apiKey", api_key.expose())
            .header(ACCEPT, "application/json");
        let answer = self.http.execute(request).await.map_err(|e| {
            format!(
                "could not reach Africa's Talking: {}",
                account.scrub(e).message
            )
        })?;
        if answer.status == 200 {
            return Ok(match balance(&answer.body) {
                Some(balance) => format!(
                    "the username and apiKey work; the account balance is {}",
                    http::bound(&balance)
                ),
                None => "the username and apiKey work".into(),
            });
        }
        let error = account.scrub(classify_response(
            answer.status,
            &answer.headers,
            &answer.body,
        ));
        let said = format!("Africa's Talking said: {}", error.message);
        Err(match answer.status {
            401 | 403 => format!(
                "the username or apiKey is wrong (a sandbox key needs the username sandbox; {said})"
            ),
            404 => format!("Africa's Talking knows no such user, or baseUrl is wrong ({said})"),
            429 => {
                format!("Africa's Talking is rate limiting the account: try again shortly ({said})")
            }
            status if error.kind != FailureKind::Permanent => {
                format!("Africa's Talking could not answer now (HTTP {status}): try again ({said})")
            }
            status => format!("Africa's Talking refused the lookup (HTTP {status}; {said})"),
        })
    }
}

#[async_trait]
impl ConnectionProbe for AfricasTalkingProbe {
    async fn probe(&self, spec: &AnyProviderSpec) -> Check {
        let result = match spec {
            AnyProviderSpec::Sms(s) => self.check(&Account::new(s)).await,
            _ => Err("not an Africa's Talking SMS connection".into()),
        };
        let (status, message) = match result {
            Ok(message) => (CheckStatus::Passed, message),
            Err(message) => (CheckStatus::Failed, message),
        };
        Check {
            name: "connection",
            status,
            message,
        }
    }
}

/// `UserData.balance` of the user lookup.
fn balance(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "UserData")]
        user_data: UserData,
    }
    #[derive(Deserialize)]
    struct UserData {
        balance: Option<String>,
    }
    serde_json::from_slice::<Answer>(body)
        .ok()?
        .user_data
        .balance
        .filter(|b| !b.trim().is_empty())
}
