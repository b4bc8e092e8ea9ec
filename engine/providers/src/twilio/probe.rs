//! The Twilio connection probe: a read-only, authenticated call. With the
//! Auth Token, `GET .../Accounts/{AccountSid}.json` (the Account resource,
//! whose `status` must be `active`); with an API key,
//! `GET .../Accounts/{AccountSid}/Messages.json?PageSize=1` instead, because
//! Twilio's standard API keys may not read Account resources (Twilio's
//! API-key documentation, not providers.md: unconfirmed).

use async_trait::async_trait;
use msgengine_domain::provider::AnyProviderSpec;
use serde::Deserialize;

use super::{classify_response, AuthKind, TwilioAccount};
use crate::http;
use crate::probe::{Check, CheckStatus, ConnectionProbe};
use crate::send::FailureKind;

impl TwilioAccount {
    /// A read-only authenticated call that tells whether the credentials work.
    pub async fn probe(&self) -> Check {
        let call = match self.auth_kind() {
            Some(AuthKind::ApiKey) => self.resource(&["Messages.json"]).map(|mut url| {
                url.query_pairs_mut().append_pair("PageSize", "1");
                url
            }),
            _ => self.resource(&[]),
        };
        let request = match call.and_then(|url| self.authed(self.http.get(url))) {
            Ok(request) => request,
            Err(e) => return failed(e.message),
        };
        let answer = match self.http.execute(request).await {
            Ok(answer) => answer,
            Err(e) => return failed(format!("could not reach Twilio: {}", self.scrub(e).message)),
        };
        if answer.status == 200 {
            return self.passed_probe(&answer.body);
        }
        let error = self.scrub(classify_response(
            answer.status,
            &answer.headers,
            &answer.body,
        ));
        let said = format!("Twilio said: {}", error.message);
        failed(match (answer.status, self.auth_kind()) {
            (401, Some(AuthKind::ApiKey)) => format!(
                "the API key SID or secret is wrong, or the key belongs to another account ({said})"
            ),
            (401, _) => format!("the Account SID or Auth Token is wrong ({said})"),
            (403, _) => format!("the credentials may not read this account ({said})"),
            (404, _) => format!("Twilio knows no account with this Account SID ({said})"),
            (429, _) => format!("Twilio is rate limiting the account: try again shortly ({said})"),
            (status, _) if error.kind != FailureKind::Permanent => {
                format!("Twilio could not answer now (HTTP {status}): try again ({said})")
            }
            (status, _) => format!("Twilio refused the lookup (HTTP {status}; {said})"),
        })
    }

    fn passed_probe(&self, body: &[u8]) -> Check {
        if self.auth_kind() == Some(AuthKind::ApiKey) {
            return passed("the API key works for this Account SID".into());
        }
        #[derive(Deserialize)]
        struct Account {
            #[serde(default)]
            status: Option<String>,
        }
        let status = serde_json::from_slice::<Account>(body)
            .ok()
            .and_then(|a| a.status);
        match status.as_deref() {
            Some("active") | None => {
                passed("the Account SID and Auth Token work; the account is active".into())
            }
            Some(other) => failed(format!(
                "the Account SID and Auth Token work, but the account is {}: Twilio will not send",
                http::bound(other)
            )),
        }
    }
}

fn passed(message: String) -> Check {
    Check {
        name: "connection",
        status: CheckStatus::Passed,
        message,
    }
}

fn failed(message: String) -> Check {
    Check {
        name: "connection",
        status: CheckStatus::Failed,
        message,
    }
}

/// The live check for Twilio connections, SMS and WhatsApp.
pub struct TwilioProbe {
    http: crate::http::ProviderClient,
}

impl TwilioProbe {
    /// A probe calling out through the shared `http` client.
    pub fn new(http: crate::http::ProviderClient) -> Self {
        Self { http }
    }
}

#[async_trait]
impl ConnectionProbe for TwilioProbe {
    async fn probe(&self, spec: &AnyProviderSpec) -> Check {
        let account = match spec {
            AnyProviderSpec::Sms(s) => TwilioAccount::from_sms(s, self.http.clone()),
            AnyProviderSpec::Whatsapp(s) => TwilioAccount::from_whatsapp(s, self.http.clone()),
            AnyProviderSpec::Email(_) => {
                return failed("not a Twilio SMS or WhatsApp connection".into())
            }
        };
        account.probe().await
    }
}
