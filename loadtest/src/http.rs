//! The one HTTP client of a run and the engine calls the harness makes.
//!
//! One `reqwest::Client` (HTTP/1.1 keep-alive, a connection pool as large as
//! the in-flight cap, no proxy, no redirects, `TCP_NODELAY`) is shared by
//! every task. Send bodies arrive already serialized ([`crate::payload`]);
//! answers are classified into [`SendOutcome`] and [`ErrorKind`] without
//! panicking on anything the server says.

use std::fmt;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Client, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::target::Target;

/// The request header that makes a send idempotent.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The answer header marking a replayed (not newly created) 202.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// How the client is built.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Idle connections kept per host (size it to the in-flight cap).
    pub pool_size: usize,
    /// Whole-request timeout.
    pub request_timeout: Duration,
}

/// The engine's API over one shared client.
#[derive(Debug, Clone)]
pub struct Api {
    client: Client,
    target: Target,
    send_url: reqwest::Url,
}

/// Why a request did not get its messages accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The server answered with this non-success status.
    Http(u16),
    /// No connection could be made.
    Connect,
    /// The request timed out.
    Timeout,
    /// Any other transport error (reset connection, broken body...).
    Transport,
    /// A success status whose body is not the documented answer.
    BadResponse,
    /// Open model only: the in-flight cap was reached, so the request was
    /// never sent (the client, not the server, was the limit).
    ClientSaturated,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Http(429) => f.write_str("http_429_rate_limited"),
            ErrorKind::Http(code) => write!(f, "http_{code}"),
            ErrorKind::Connect => f.write_str("connect"),
            ErrorKind::Timeout => f.write_str("timeout"),
            ErrorKind::Transport => f.write_str("transport"),
            ErrorKind::BadResponse => f.write_str("bad_response"),
            ErrorKind::ClientSaturated => f.write_str("not_sent_client_saturated"),
        }
    }
}

impl ErrorKind {
    /// Whether a request that failed this way may be sent again (with the
    /// same `Idempotency-Key` and body): transport errors, timeouts, 429
    /// and 5xx.
    pub fn is_retryable(self) -> bool {
        match self {
            ErrorKind::Connect | ErrorKind::Timeout | ErrorKind::Transport => true,
            ErrorKind::Http(code) => code == 429 || (500..=599).contains(&code),
            ErrorKind::BadResponse | ErrorKind::ClientSaturated => false,
        }
    }

    fn of(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            ErrorKind::Timeout
        } else if e.is_connect() {
            ErrorKind::Connect
        } else if let Some(status) = e.status() {
            ErrorKind::Http(status.as_u16())
        } else {
            ErrorKind::Transport
        }
    }
}

/// The result of one send request.
#[derive(Debug)]
pub enum SendOutcome {
    /// 202: the accepted message ids, in request order; `replayed` when the
    /// engine answered `Idempotent-Replayed: true` (a repeated
    /// `Idempotency-Key`: nothing new was created).
    Accepted { ids: Vec<String>, replayed: bool },
    /// Not accepted; `retry_after` is the server's `Retry-After`, if any.
    Failed {
        kind: ErrorKind,
        retry_after: Option<Duration>,
    },
}

/// One message's answer to the status API (only what the harness reads).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDoc {
    pub status: String,
    #[serde(default)]
    pub attempt_count: Option<i64>,
    #[serde(default)]
    pub events: Vec<StatusEvent>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// One entry of a message's status history.
#[derive(Debug, Clone, Deserialize)]
pub struct StatusEvent {
    pub state: String,
    #[serde(default)]
    pub at: Option<String>,
    /// The provider's own time, on entries from provider webhooks.
    #[serde(default, rename = "providerAt")]
    pub provider_at: Option<String>,
}

/// The result of one status request.
#[derive(Debug)]
pub enum StatusOutcome {
    Found(StatusDoc),
    /// The request failed; the message's state is unknown this round.
    Failed(ErrorKind),
}

#[derive(Deserialize)]
struct AcceptedOne {
    id: String,
}

#[derive(Deserialize)]
struct AcceptBody {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    messages: Option<Vec<AcceptedOne>>,
}

impl Api {
    /// Builds the client for a checked loopback target.
    pub fn new(target: Target, options: &ClientOptions) -> Result<Self> {
        let mut builder = Client::builder()
            .http1_only()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .pool_max_idle_per_host(options.pool_size)
            .pool_idle_timeout(Duration::from_secs(90))
            .connect_timeout(Duration::from_secs(5))
            .timeout(options.request_timeout)
            .user_agent(concat!("msgengine-load/", env!("CARGO_PKG_VERSION")));
        if let Some((host, addr)) = &target.pinned {
            builder = builder.resolve(host, *addr);
        }
        let client = builder.build().context("building the HTTP client")?;
        let send_url = reqwest::Url::parse(&target.url("/api/messaging/send"))
            .context("building the send URL")?;
        Ok(Self {
            client,
            target,
            send_url,
        })
    }

    /// The engine's base URL.
    pub fn base(&self) -> &str {
        &self.target.base
    }

    /// A ready `Authorization: Bearer ...` value (marked sensitive).
    pub fn bearer(token: &str) -> Result<HeaderValue> {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
            .context("the token is not a valid header value")?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// A JSON call used during set-up: the status and the body (JSON, or the
    /// raw text as a JSON string when it is not JSON).
    pub async fn call_json(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: &HeaderValue,
        body: &Value,
    ) -> Result<(StatusCode, Value)> {
        let response = self
            .client
            .request(method.clone(), self.target.url(path))
            .header(AUTHORIZATION, auth.clone())
            .json(body)
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .with_context(|| format!("reading the answer to {method} {path}"))?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }

    /// Like [`Api::call_json`], but any non-success status is an error.
    pub async fn call_ok(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: &HeaderValue,
        body: &Value,
    ) -> Result<Value> {
        let (status, value) = self.call_json(method.clone(), path, auth, body).await?;
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {value}");
        }
        Ok(value)
    }

    /// `POST /api/messaging/send` with a pre-serialized body holding
    /// `expected` messages.
    pub async fn send(&self, auth: &HeaderValue, body: Bytes, expected: usize) -> SendOutcome {
        self.send_keyed(auth, body, expected, None).await
    }

    /// Like [`Api::send`], with an `Idempotency-Key` header when `key` is
    /// given (a retry must repeat the same key and the same body bytes).
    pub async fn send_keyed(
        &self,
        auth: &HeaderValue,
        body: Bytes,
        expected: usize,
        key: Option<&HeaderValue>,
    ) -> SendOutcome {
        let mut request = self
            .client
            .post(self.send_url.clone())
            .header(AUTHORIZATION, auth.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = key {
            request = request.header(IDEMPOTENCY_KEY, key.clone());
        }
        let response = request.body(body).send().await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                return SendOutcome::Failed {
                    kind: ErrorKind::of(&e),
                    retry_after: None,
                }
            }
        };
        let status = response.status();
        let replayed = response
            .headers()
            .get(IDEMPOTENT_REPLAYED)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if status != StatusCode::ACCEPTED {
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            // Drain the body so the connection can be reused.
            let _ = response.bytes().await;
            return SendOutcome::Failed {
                kind: ErrorKind::Http(status.as_u16()),
                retry_after,
            };
        }
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return SendOutcome::Failed {
                    kind: ErrorKind::of(&e),
                    retry_after: None,
                }
            }
        };
        match parse_accept(&bytes, expected) {
            Some(ids) => SendOutcome::Accepted { ids, replayed },
            None => SendOutcome::Failed {
                kind: ErrorKind::BadResponse,
                retry_after: None,
            },
        }
    }

    /// `GET /api/messaging/status/{id}`.
    pub async fn status(&self, auth: &HeaderValue, id: &str) -> StatusOutcome {
        let url = self.target.url(&format!("/api/messaging/status/{id}"));
        let response = match self
            .client
            .get(url)
            .header(AUTHORIZATION, auth.clone())
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return StatusOutcome::Failed(ErrorKind::of(&e)),
        };
        let status = response.status();
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return StatusOutcome::Failed(ErrorKind::of(&e)),
        };
        if status != StatusCode::OK {
            return StatusOutcome::Failed(ErrorKind::Http(status.as_u16()));
        }
        match serde_json::from_slice::<StatusDoc>(&bytes) {
            Ok(doc) => StatusOutcome::Found(doc),
            Err(_) => StatusOutcome::Failed(ErrorKind::BadResponse),
        }
    }
}

/// The ids of a 202 answer (`{"id"}` or `{"messages": [{"id"}...]}`), if
/// it holds exactly `expected` of them.
pub fn parse_accept(body: &[u8], expected: usize) -> Option<Vec<String>> {
    let parsed: AcceptBody = serde_json::from_slice(body).ok()?;
    let ids = match (parsed.messages, parsed.id) {
        (Some(items), _) => items.into_iter().map(|m| m.id).collect::<Vec<_>>(),
        (None, Some(id)) => vec![id],
        (None, None) => return None,
    };
    (ids.len() == expected && ids.iter().all(|id| !id.is_empty())).then_some(ids)
}

/// `Retry-After` in seconds (integer or decimal); HTTP dates are not used by
/// the engine and read as absent.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_answers_single_and_batch() {
        assert_eq!(
            parse_accept(br#"{"id":"a","status":"queued"}"#, 1),
            Some(vec!["a".to_owned()])
        );
        assert_eq!(
            parse_accept(
                br#"{"messages":[{"id":"a","status":"queued"},{"id":"b"}]}"#,
                2
            ),
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(parse_accept(br#"{"messages":[{"id":"a"}]}"#, 2), None);
        assert_eq!(parse_accept(br#"{"status":"queued"}"#, 1), None);
        assert_eq!(parse_accept(b"not json", 1), None);
        assert_eq!(parse_accept(br#"{"id":""}"#, 1), None);
    }

    #[test]
    fn retry_after_is_seconds() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("1e9"), Some(Duration::from_secs(3600)));
    }

    #[test]
    fn error_kinds_have_stable_names() {
        assert_eq!(ErrorKind::Http(429).to_string(), "http_429_rate_limited");
        assert_eq!(ErrorKind::Http(503).to_string(), "http_503");
        assert_eq!(ErrorKind::Connect.to_string(), "connect");
        assert_eq!(
            ErrorKind::ClientSaturated.to_string(),
            "not_sent_client_saturated"
        );
    }
}
