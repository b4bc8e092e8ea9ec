//! The connection-test seam: the `POST /api/{channel}/providers/{id}/test`
//! endpoint goes through a [`ProviderRegistry`] that checks a connection's
//! configuration and then asks the [`ConnectionProbe`] registered for its
//! channel and type to make a real, authenticated, side-effect-free call to the
//! provider. With no probe registered for a type, the live check is reported as
//! skipped, never as passed. [`ProviderRegistry::live`] registers the probe of
//! every descriptor in the registry's list that has one.
//!
//! A probe's words can carry a provider's own text (its error message), so
//! the live check's message is reflected capped: control characters
//! escaped, at most [`MAX_REASON_CHARS`](crate::http::MAX_REASON_CHARS)
//! characters.

use std::collections::HashMap;
use std::sync::Arc;

use msgengine_domain::provider::{AnyProviderSpec, ProviderSpec};
use msgengine_domain::Channel;

use crate::http::{self, ProviderClient};
use crate::probe::{Check, CheckStatus, ConnectionProbe, TestReport};

/// Maps (channel, provider type) to the probe that tests it.
#[derive(Default, Clone)]
pub struct ProviderRegistry {
    probes: HashMap<(Channel, &'static str), Arc<dyn ConnectionProbe>>,
}

impl ProviderRegistry {
    /// A registry with no live probes: tests check configuration only.
    pub fn new() -> Self {
        Self::default()
    }

    /// The registry the server uses: the live probe of every provider type
    /// whose descriptor has one (the [`PROVIDERS`](super) list), calling out
    /// through the shared `http` client.
    pub fn live(http: &ProviderClient) -> Self {
        super::providers()
            .iter()
            .fold(Self::new(), |registry, descriptor| {
                match descriptor.probe(http) {
                    Some(probe) => {
                        let key = descriptor.key();
                        registry.with_probe(key.channel(), key.provider_type(), probe)
                    }
                    None => registry,
                }
            })
    }

    /// Registers the probe for a channel's provider type (`"MAILGUN"`).
    pub fn with_probe(
        mut self,
        channel: Channel,
        provider_type: &'static str,
        probe: Arc<dyn ConnectionProbe>,
    ) -> Self {
        self.probes.insert((channel, provider_type), probe);
        self
    }

    /// Whether a live probe is registered for a channel's provider type.
    pub fn has_probe(&self, channel: Channel, provider_type: &str) -> bool {
        self.probes
            .keys()
            .any(|(c, t)| *c == channel && *t == provider_type)
    }

    /// Checks the configuration (every field well-formed, the type's required
    /// fields present) and, if it is sound, the live connection.
    pub async fn test(&self, spec: &AnyProviderSpec) -> TestReport {
        let configuration = check_configuration(spec);
        let connection = if configuration.status == CheckStatus::Failed {
            Check {
                name: "connection",
                status: CheckStatus::Skipped,
                message: "not attempted: fix the configuration first".into(),
            }
        } else {
            match self.probes.get(&(spec.channel(), spec.provider_type())) {
                Some(probe) => {
                    let mut check = probe.probe(spec).await;
                    check.message = reflected(&check.message);
                    check
                }
                None => Check {
                    name: "connection",
                    status: CheckStatus::Skipped,
                    message: format!(
                        "no live check for {} yet: the authenticated call to the provider arrives with its adapter",
                        spec.provider_type()
                    ),
                },
            }
        };
        let checks = vec![configuration, connection];
        TestReport {
            ok: checks.iter().all(|c| c.status != CheckStatus::Failed),
            checks,
        }
    }
}

/// Provider-supplied text as a report may show it: control characters
/// (NUL, newlines, escape sequences) written as `\u{..}`, then cut to
/// [`MAX_REASON_CHARS`](crate::http::MAX_REASON_CHARS) characters.
fn reflected(text: &str) -> String {
    let escaped: String = text
        .chars()
        .map(|c| match c {
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect();
    http::bound(&escaped)
}

/// Re-validates a stored spec, so a rule tightened after it was saved shows up here.
fn check_configuration(spec: &AnyProviderSpec) -> Check {
    let result = match spec.clone() {
        AnyProviderSpec::Email(mut s) => s.validate(),
        AnyProviderSpec::Sms(mut s) => s.validate(),
        AnyProviderSpec::Whatsapp(mut s) => s.validate(),
    };
    match result {
        Ok(()) => Check {
            name: "configuration",
            status: CheckStatus::Passed,
            message: format!(
                "every field required for {} is present and well-formed",
                spec.provider_type()
            ),
        },
        Err(e) => Check {
            name: "configuration",
            status: CheckStatus::Failed,
            message: e.message,
        },
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use msgengine_domain::provider::{from_object, SmsProviderSpec};
    use serde_json::json;

    use super::*;

    fn termii(api_key: &str) -> AnyProviderSpec {
        let object = json!({"providerType": "TERMII", "name": "t", "senderId": "Acme",
                            "credentials": {"apiKey": api_key}});
        let spec: Result<SmsProviderSpec, _> = match object {
            serde_json::Value::Object(m) => from_object(m),
            _ => unreachable!("literal object"),
        };
        spec.map(ProviderSpec::into_any).expect("valid spec")
    }

    struct Refuses;

    #[async_trait]
    impl ConnectionProbe for Refuses {
        async fn probe(&self, _: &AnyProviderSpec) -> Check {
            Check {
                name: "connection",
                status: CheckStatus::Failed,
                message: "401: invalid API key".into(),
            }
        }
    }

    #[tokio::test]
    async fn without_a_probe_the_live_check_is_skipped_not_passed() {
        let report = ProviderRegistry::new().test(&termii("TL-key")).await;
        assert!(report.ok);
        assert_eq!(report.checks[0].status, CheckStatus::Passed);
        assert_eq!(report.checks[1].status, CheckStatus::Skipped);
    }

    #[tokio::test]
    async fn a_failing_probe_fails_the_test_with_its_words() {
        let registry =
            ProviderRegistry::new().with_probe(Channel::Sms, "TERMII", Arc::new(Refuses));
        let report = registry.test(&termii("TL-key")).await;
        assert!(!report.ok);
        assert_eq!(report.checks[1].message, "401: invalid API key");
    }

    struct Rambles;

    #[async_trait]
    impl ConnectionProbe for Rambles {
        async fn probe(&self, _: &AnyProviderSpec) -> Check {
            Check {
                name: "connection",
                status: CheckStatus::Failed,
                message: format!("bad\u{0}thing\n\u{1b}[31m{}", "x".repeat(5_000)),
            }
        }
    }

    #[tokio::test]
    async fn provider_text_in_a_report_is_escaped_and_capped() {
        let registry =
            ProviderRegistry::new().with_probe(Channel::Sms, "TERMII", Arc::new(Rambles));
        let report = registry.test(&termii("TL-key")).await;
        let message = &report.checks[1].message;
        assert!(
            message.starts_with("bad\\u{0}thing\\u{a}\\u{1b}[31m"),
            "{message}"
        );
        assert!(!message.chars().any(char::is_control), "{message}");
        assert_eq!(
            message.chars().count(),
            crate::http::MAX_REASON_CHARS + 1,
            "cut, with an ellipsis"
        );
    }

    #[tokio::test]
    async fn a_spec_that_no_longer_validates_fails_configuration() {
        let mut spec = termii("TL-key");
        if let AnyProviderSpec::Sms(s) = &mut spec {
            s.sender_id = Some("!".into());
        }
        let report = ProviderRegistry::new().test(&spec).await;
        assert!(!report.ok);
        assert_eq!(report.checks[0].status, CheckStatus::Failed);
        assert_eq!(report.checks[1].status, CheckStatus::Skipped);
    }
}
