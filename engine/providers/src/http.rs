//! What every HTTP adapter shares: the pooled client, the call itself with
//! transport failures classified, `Retry-After` parsing, the default meaning
//! of an HTTP status, and scrubbing provider text before it becomes an error.
//!
//! Invariants: no request URL is ever formatted into an error (Twilio's path
//! holds the Account SID; a `baseUrl` may hold user info); response bodies are
//! read up to [`MAX_BODY_BYTES`] only; provider text in an error is bounded to
//! [`MAX_REASON_CHARS`] characters and scrubbed of the connection's secrets.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use url::Url;

pub use crate::address::is_public_ip;
use crate::address::{AddressPolicy, Refused};
use crate::send::{FailureKind, ProviderError};

/// The header our simulator and test servers use to detect duplicate sends.
/// Harmless for providers, which ignore unknown headers.
pub const IDEMPOTENCY_HEADER: &str = "X-Msgengine-Idempotency-Key";

/// Provider answers are small JSON documents; anything longer is cut here so
/// a misbehaving endpoint cannot make us buffer megabytes per attempt.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Upper bound on provider text carried in a [`ProviderError`].
pub const MAX_REASON_CHARS: usize = 500;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle keep-alive connections kept per provider host: enough for the
/// concurrency cap of a busy connection without hoarding sockets.
const POOL_MAX_IDLE_PER_HOST: usize = 256;
const USER_AGENT: &str = "msgengine/0.1";

/// A client configured for provider calls: connect timeout 5 s, the given
/// whole-request timeout, pooled keep-alive connections, no proxy taken from
/// the environment, no redirects (a provider API never redirects a send;
/// following one would turn the POST into a GET), user agent `msgengine/0.1`.
///
/// This crate enables no TLS backend (its tests speak http on loopback). The
/// binary must enable one on reqwest (e.g. `rustls-tls`; features unify), or
/// every https provider call fails as a transient connect error ("invalid
/// URL, scheme is not http").
pub fn try_http_client(request_timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(request_timeout)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .tcp_nodelay(true)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
        .build()
}

/// [`try_http_client`], for callers that cannot handle an error. Building
/// only fails when a TLS backend cannot initialise; then the default client
/// is returned (it would fail the same way for https, and works for http).
pub fn http_client(request_timeout: Duration) -> reqwest::Client {
    match try_http_client(request_timeout) {
        Ok(client) => client,
        Err(_) => reqwest::Client::new(),
    }
}

/// Like [`http_client`], but every host name must resolve to loopback
/// (`localhost`, or any name whose addresses are all loopback): a call to
/// any other host fails at once with a connect error naming the setting.
/// IP-literal URLs are not resolved: check them with
/// [`AddressPolicy::check_url`] first ([`ProviderClient`] does).
pub fn loopback_only_http_client(request_timeout: Duration) -> reqwest::Client {
    restricted_client(
        request_timeout,
        Restricted {
            policy: AddressPolicy::Loopback,
            refusal: AddressPolicy::Loopback.refusal(),
        },
    )
}

/// Like [`http_client`], but a host name that resolves to any address that
/// is not publicly routable ([`is_public_ip`]) is refused before connecting:
/// the guard against server-side request forgery for URLs a tenant chooses
/// (its outbound webhook endpoint). Checked on every connection, so a name
/// re-pointed at an internal address later (DNS rebinding) is refused too.
/// IP-literal URLs are not resolved: check them with [`is_public_ip`] first.
pub fn public_only_http_client(request_timeout: Duration) -> reqwest::Client {
    restricted_client(
        request_timeout,
        Restricted {
            policy: AddressPolicy::Public,
            refusal: "resolves to a private, loopback or link-local address, which webhook endpoints may not use (engine.webhooks_allow_private)",
        },
    )
}

fn restricted_client(request_timeout: Duration, restriction: Restricted) -> reqwest::Client {
    let built = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(request_timeout)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .tcp_nodelay(true)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
        .dns_resolver(std::sync::Arc::new(restriction))
        .build();
    built.unwrap_or_else(|_| reqwest::Client::new())
}

/// The HTTP client every provider call goes through, with the
/// [`AddressPolicy`] it enforces: host names are checked by its resolver on
/// every new connection, IP literals by [`ProviderClient::execute`] before
/// the request is sent. Derefs to the `reqwest::Client` for building
/// requests; sending them goes through [`ProviderClient::execute`] only
/// (never `RequestBuilder::send`, which would skip the literal check).
#[derive(Debug, Clone)]
pub struct ProviderClient {
    client: reqwest::Client,
    policy: AddressPolicy,
}

impl ProviderClient {
    /// A pooled client (see [`try_http_client`]) enforcing `policy`.
    pub fn new(request_timeout: Duration, policy: AddressPolicy) -> Self {
        let client = match policy {
            AddressPolicy::Any => http_client(request_timeout),
            _ => restricted_client(
                request_timeout,
                Restricted {
                    policy,
                    refusal: policy.refusal(),
                },
            ),
        };
        Self { client, policy }
    }

    /// What this client may reach.
    pub fn policy(&self) -> AddressPolicy {
        self.policy
    }

    /// Sends the request and reads the answer; a failure to get one is
    /// classified here (timeout, connect error...). An IP-literal host the
    /// policy refuses is a permanent misconfiguration, and nothing is sent.
    pub async fn execute(&self, request: RequestBuilder) -> Result<Answer, ProviderError> {
        let (_, request) = request.build_split();
        let request = request.map_err(classify_transport)?;
        self.policy
            .check_url(request.url())
            .map_err(|refused| ProviderError::misconfigured(bound(&refused.to_string())))?;
        // Sent on this client whatever built it: its resolver checks names.
        let response = self
            .client
            .execute(request)
            .await
            .map_err(classify_transport)?;
        read_answer(response).await
    }
}

impl std::ops::Deref for ProviderClient {
    type Target = reqwest::Client;

    fn deref(&self) -> &reqwest::Client {
        &self.client
    }
}

/// A resolver that answers only names whose every address the policy allows.
struct Restricted {
    policy: AddressPolicy,
    refusal: &'static str,
}

impl reqwest::dns::Resolve for Restricted {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let (policy, refusal) = (self.policy, self.refusal);
        Box::pin(async move {
            match policy.resolve(&host, 0).await {
                Ok(found) => {
                    let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
                    Ok(addrs)
                }
                Err(Refused::Address { host, .. }) => Err(format!("{host} {refusal}").into()),
                Err(unresolved) => Err(unresolved.to_string().into()),
            }
        })
    }
}

/// The wait a `Retry-After` header asks for: delay-seconds (`120`) or an
/// HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`, and the obsolete RFC 850 and
/// asctime forms), measured from `now`. A date in the past means zero.
/// Clamping into a sane window is the retry policy's job, not this one's.
pub fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    // Not RFC 9110, but seen in the wild: fractional seconds ("1.5").
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0)
            .then(|| Duration::try_from_secs_f64(seconds).ok())
            .flatten();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// What an HTTP status means when the body says nothing more specific:
/// 429 rate limited; 408 and 5xx transient; 401/403 (bad credentials) and
/// other 4xx permanent; 3xx permanent (redirects are not followed, so a
/// `baseUrl` that redirects is misconfigured); a 2xx that reached
/// classification carried no usable answer and is transient (the provider
/// may retry-dedupe on the idempotency key; losing the message is worse).
pub fn kind_for_status(status: u16) -> FailureKind {
    match status {
        429 => FailureKind::RateLimited,
        408 | 500..=599 => FailureKind::Transient,
        300..=499 => FailureKind::Permanent,
        _ => FailureKind::Transient,
    }
}

/// A classified error from an HTTP answer: `retry_after` from the headers
/// unless the failure is permanent.
pub fn error_from_answer(
    kind: FailureKind,
    status: u16,
    headers: &HeaderMap,
    code: Option<String>,
    message: String,
) -> ProviderError {
    let retry_after = match kind {
        FailureKind::Permanent => None,
        _ => parse_retry_after(headers, SystemTime::now()),
    };
    ProviderError {
        kind,
        retry_after,
        http_status: Some(status),
        code,
        message: bound(&message),
    }
}

/// The reason to show for a body that is not the provider's JSON error: the
/// text itself when it is short plain text (Mailgun answers 401 with
/// `Forbidden`), otherwise the status line (`HTTP 404 Not Found`).
pub fn plain_reason(status: u16, body: &[u8]) -> String {
    let text = std::str::from_utf8(body).map(str::trim).unwrap_or("");
    if !text.is_empty() && !text.starts_with('<') && !text.starts_with('{') {
        return bound(&text.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    format!("HTTP {status} {reason}").trim_end().to_owned()
}

/// Provider text made safe to carry: control characters (NUL included)
/// escaped and at most [`MAX_REASON_CHARS`] characters kept. The rules live
/// in one place, `msgengine_domain::text::clean_untrusted`.
pub fn bound(text: &str) -> String {
    msgengine_domain::text::clean_untrusted(text, MAX_REASON_CHARS)
}

/// Replaces every occurrence of each (non-empty) secret in the error's
/// message and code with `***`: providers echo request paths and values in
/// their reasons (Twilio's 404 names the Account SID).
pub fn scrub(mut error: ProviderError, secrets: &[&str]) -> ProviderError {
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if error.message.contains(secret) {
            error.message = error.message.replace(secret, "***");
        }
        if let Some(code) = &error.code {
            if code.contains(secret) {
                error.code = Some(code.replace(secret, "***"));
            }
        }
    }
    error
}

/// `base` (or `default` when unset) with `segments` appended as path
/// segments, each percent-encoded. `None` when the base is not an http(s) URL.
pub fn endpoint(base: Option<&str>, default: &str, segments: &[&str]) -> Option<Url> {
    let mut url = Url::parse(base.unwrap_or(default)).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    url.path_segments_mut()
        .ok()?
        .pop_if_empty()
        .extend(segments);
    Some(url)
}

/// A provider's answer, body cut at [`MAX_BODY_BYTES`].
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Reads an answer, body cut at [`MAX_BODY_BYTES`].
async fn read_answer(mut response: reqwest::Response) -> Result<Answer, ProviderError> {
    let status = response.status().as_u16();
    let headers = std::mem::take(response.headers_mut());
    let mut body = Vec::new();
    while body.len() < MAX_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_BODY_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => break,
            Err(e) => {
                let mut error = classify_transport(e);
                error.http_status = Some(status);
                return Err(error);
            }
        }
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// Classifies a failure to get an answer. The text is the innermost cause
/// (`Connection refused (os error 111)`), never the URL.
pub fn classify_transport(error: reqwest::Error) -> ProviderError {
    let cause = root_cause(&error);
    if error.is_timeout() {
        return ProviderError::new(
            FailureKind::Timeout,
            "the provider did not answer within the request timeout",
        );
    }
    if error.is_connect() {
        return ProviderError::new(
            FailureKind::Transient,
            format!("could not connect to the provider: {cause}"),
        );
    }
    if error.is_builder() {
        return ProviderError::misconfigured(format!("could not build the request: {cause}"));
    }
    ProviderError::new(
        FailureKind::Transient,
        format!("the request to the provider failed: {cause}"),
    )
}

fn root_cause(error: &reqwest::Error) -> String {
    let mut innermost: &dyn std::error::Error = error;
    let mut depth = 0;
    while let Some(source) = innermost.source() {
        innermost = source;
        depth += 1;
    }
    if depth == 0 {
        // No deeper cause: reqwest's own text would name the URL.
        return "unknown cause".into();
    }
    bound(&innermost.to_string())
}

/// The usual end of a send: a 2xx answer whose body yields the provider's
/// message id is `Sent`; anything else is the adapter's classification of the
/// answer. Either way the connection's secrets are scrubbed from errors.
pub fn sent_or_error(
    answer: &Answer,
    secrets: &[&str],
    id_of: impl FnOnce(&[u8]) -> Option<String>,
    classify: impl FnOnce(u16, &reqwest::header::HeaderMap, &[u8]) -> ProviderError,
) -> Result<crate::send::SendReceipt, ProviderError> {
    if (200..300).contains(&answer.status) {
        if let Some(id) = id_of(&answer.body) {
            return Ok(crate::send::SendReceipt {
                provider_message_id: id,
                state: msgengine_domain::message::MessageState::Sent,
                segments: None,
            });
        }
    }
    Err(scrub(
        classify(answer.status, &answer.headers, &answer.body),
        secrets,
    ))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[tokio::test]
    async fn the_public_only_client_refuses_names_of_internal_addresses() {
        let client = public_only_http_client(Duration::from_secs(2));
        let err = client
            .get("http://localhost:9/")
            .send()
            .await
            .expect_err("localhost is refused");
        assert!(
            format!("{err:?}").contains("webhooks_allow_private"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn the_public_provider_client_refuses_internal_hosts_before_connecting() {
        // A server on loopback that must see nothing: the name `localhost`
        // and the literal 127.0.0.1 both lead to it, and both are refused.
        let server = wiremock::MockServer::start().await;
        let port = server.address().port();
        let client = ProviderClient::new(Duration::from_secs(2), AddressPolicy::Public);
        let e = client
            .execute(client.get(format!("http://localhost:{port}/v3/x")))
            .await
            .err();
        assert!(
            e.as_ref()
                .is_some_and(|e| e.message.contains("providers_allow_private")),
            "{e:?}"
        );
        // IP literals never reach a resolver: refused before the request is
        // sent (nothing is connected to, so 10.x and the metadata address are
        // safe to name here), as a permanent misconfiguration.
        for url in [
            format!("http://127.0.0.1:{port}/v3/x"),
            "http://10.0.0.1/v3/x".to_owned(),
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "http://[fd00:ec2::254]/latest/meta-data/".to_owned(),
            "http://[::ffff:10.0.0.1]/".to_owned(),
        ] {
            let e = client.execute(client.get(url.as_str())).await.err();
            assert!(
                e.as_ref().is_some_and(|e| e.kind == FailureKind::Permanent
                    && e.code.as_deref() == Some("msgengine_misconfigured")
                    && e.message.contains("providers_allow_private")
                    && !e.message.contains("/v3/x")),
                "{url}: {e:?}"
            );
        }
        let received = server.received_requests().await.unwrap_or_default();
        assert!(received.is_empty(), "{received:?}");

        // The loopback policy (tests) reaches the same server.
        let loopback = ProviderClient::new(Duration::from_secs(2), AddressPolicy::Loopback);
        let answer = loopback
            .execute(loopback.get(format!("http://127.0.0.1:{port}/v3/x")))
            .await;
        assert_eq!(answer.map(|a| a.status).ok(), Some(404));
    }

    fn retry_after(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(RETRY_AFTER, v);
        }
        headers
    }

    fn at(unix_seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix_seconds)
    }

    #[test]
    fn retry_after_in_seconds() {
        let now = at(1_445_412_480);
        assert_eq!(
            parse_retry_after(&retry_after("120"), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after(&retry_after(" 0 "), now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after(&retry_after("1.5"), now),
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn retry_after_as_an_http_date_is_measured_from_now() {
        // Wed, 21 Oct 2015 07:28:00 GMT = 1445412480.
        let now = at(1_445_412_480 - 30);
        for date in [
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Wednesday, 21-Oct-15 07:28:00 GMT",
            "Wed Oct 21 07:28:00 2015",
        ] {
            assert_eq!(
                parse_retry_after(&retry_after(date), now),
                Some(Duration::from_secs(30)),
                "{date}"
            );
        }
    }

    #[test]
    fn retry_after_in_the_past_is_zero_and_garbage_is_none() {
        let now = at(1_445_412_480 + 60);
        assert_eq!(
            parse_retry_after(&retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), now),
            Some(Duration::ZERO)
        );
        for bad in ["soon", "-5", "NaN", "inf", ""] {
            assert_eq!(parse_retry_after(&retry_after(bad), now), None, "{bad}");
        }
        assert_eq!(parse_retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn statuses_have_their_default_meaning() {
        use FailureKind::*;
        for (status, kind) in [
            (429, RateLimited),
            (408, Transient),
            (500, Transient),
            (503, Transient),
            (400, Permanent),
            (401, Permanent),
            (403, Permanent),
            (404, Permanent),
            (302, Permanent),
            (200, Transient),
        ] {
            assert_eq!(kind_for_status(status), kind, "{status}");
        }
    }

    #[test]
    fn plain_reason_keeps_short_text_and_hides_markup() {
        assert_eq!(plain_reason(401, b"Forbidden\n"), "Forbidden");
        assert_eq!(
            plain_reason(404, b"<html><body>nope</body></html>"),
            "HTTP 404 Not Found"
        );
        assert_eq!(plain_reason(502, b""), "HTTP 502 Bad Gateway");
        assert_eq!(plain_reason(599, b""), "HTTP 599");
    }

    #[test]
    fn bound_escapes_control_characters() {
        assert_eq!(bound("bad\u{0}thing\r\n"), "bad\\u{0}thing  ");
    }

    #[test]
    fn bound_cuts_long_text_on_a_character_boundary() {
        let long = "é".repeat(MAX_REASON_CHARS + 10);
        let cut = bound(&long);
        assert_eq!(cut.chars().count(), MAX_REASON_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn scrub_replaces_secrets_in_message_and_code() {
        let mut e = ProviderError::new(FailureKind::Permanent, "no /Accounts/AC123/x for AC123");
        e.code = Some("AC123".into());
        let e = scrub(e, &["AC123", ""]);
        assert_eq!(e.message, "no /Accounts/***/x for ***");
        assert_eq!(e.code.as_deref(), Some("***"));
    }

    #[test]
    fn endpoint_appends_encoded_segments_to_the_base_path() {
        let url = endpoint(
            Some("http://127.0.0.1:9/sim/"),
            "https://x",
            &["v3", "a b", "m"],
        );
        assert_eq!(
            url.map(String::from).as_deref(),
            Some("http://127.0.0.1:9/sim/v3/a%20b/m")
        );
        let url = endpoint(None, "https://api.mailgun.net", &["v3", "d", "messages"]);
        assert_eq!(
            url.map(String::from).as_deref(),
            Some("https://api.mailgun.net/v3/d/messages")
        );
        assert!(endpoint(Some("mailto:a@b"), "https://x", &["v"]).is_none());
        assert!(endpoint(Some("not a url"), "https://x", &["v"]).is_none());
    }

    #[test]
    fn the_client_builds() {
        assert!(try_http_client(Duration::from_secs(30)).is_ok());
    }
}
