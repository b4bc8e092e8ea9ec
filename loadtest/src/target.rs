//! Where the load goes: only an engine on this machine.
//!
//! The harness refuses any base URL whose host is not a loopback address
//! (`127.0.0.0/8`, `::1`, or the name `localhost`, which the HTTP client is
//! then pinned to resolve to `127.0.0.1`), and it never follows redirects
//! (see [`crate::http`]), so no request can leave the machine.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{bail, Context, Result};
use url::Url;

/// A checked engine address.
#[derive(Debug, Clone)]
pub struct Target {
    /// The base URL without a trailing slash, e.g. `http://127.0.0.1:8080`.
    pub base: String,
    /// For `localhost`: the host name and the loopback address the client
    /// must use for it (never the system resolver's answer).
    pub pinned: Option<(String, SocketAddr)>,
}

impl Target {
    /// Parses `raw` and checks that it names a loopback host.
    pub fn parse(raw: &str) -> Result<Self> {
        let url = Url::parse(raw.trim()).with_context(|| format!("--base {raw:?} is not a URL"))?;
        match url.scheme() {
            "http" | "https" => {}
            other => bail!("--base must be an http:// or https:// URL, not {other}://"),
        }
        if url.query().is_some() || url.fragment().is_some() {
            bail!("--base must not have a query or fragment");
        }
        let host = url
            .host()
            .with_context(|| format!("--base {raw:?} has no host"))?;
        let port = url
            .port_or_known_default()
            .with_context(|| format!("--base {raw:?} has no port"))?;
        let pinned = match host {
            url::Host::Domain(name) if is_localhost_name(name) => Some((
                name.to_owned(),
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            )),
            url::Host::Domain(name) => {
                bail!("refusing to load {name}: only loopback targets (127.0.0.0/8, ::1, localhost) are allowed")
            }
            url::Host::Ipv4(ip) if is_loopback(IpAddr::V4(ip)) => None,
            url::Host::Ipv6(ip) if is_loopback(IpAddr::V6(ip)) => None,
            url::Host::Ipv4(ip) => {
                bail!("refusing to load {ip}: only loopback targets (127.0.0.0/8, ::1, localhost) are allowed")
            }
            url::Host::Ipv6(ip) => {
                bail!("refusing to load [{ip}]: only loopback targets (127.0.0.0/8, ::1, localhost) are allowed")
            }
        };
        let base = url.as_str().trim_end_matches('/').to_owned();
        Ok(Self { base, pinned })
    }

    /// The full URL of an API path (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// `localhost` (any case, with or without the root dot).
fn is_localhost_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    name.eq_ignore_ascii_case("localhost")
}

/// 127.0.0.0/8, ::1, or an IPv4-mapped 127.0.0.0/8.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_targets_are_accepted() {
        let t = Target::parse("http://127.0.0.1:8080").expect("loopback");
        assert_eq!(t.base, "http://127.0.0.1:8080");
        assert!(t.pinned.is_none());
        assert_eq!(t.url("/api/x"), "http://127.0.0.1:8080/api/x");
        assert_eq!(
            Target::parse("http://127.9.8.7:1/").expect("127/8").base,
            "http://127.9.8.7:1"
        );
        assert!(Target::parse("http://[::1]:8080").is_ok());
        assert!(Target::parse("http://[::ffff:127.0.0.1]:8080").is_ok());
        assert!(Target::parse("https://127.0.0.1").is_ok());
        // The URL standard reads a bare number as an IPv4 address: this one
        // is 127.0.0.1, and that is what the client would connect to.
        assert_eq!(
            Target::parse("http://2130706433:80").expect("numeric").base,
            "http://127.0.0.1"
        );
        assert!(Target::parse("http://167772161").is_err(), "10.0.0.1");
        let local = Target::parse("http://LocalHost:9000/prefix/").expect("localhost");
        assert_eq!(local.base, "http://localhost:9000/prefix");
        assert_eq!(
            local.pinned,
            Some((
                "localhost".to_owned(),
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9000)
            ))
        );
        assert_eq!(
            Target::parse("http://localhost")
                .expect("default port")
                .pinned
                .map(|(_, a)| a.port()),
            Some(80)
        );
    }

    #[test]
    fn everything_else_is_refused() {
        for raw in [
            "http://10.0.0.1:8080",
            "http://192.168.1.10",
            "http://172.16.0.1",
            "http://8.8.8.8",
            "http://0.0.0.0:8080",
            "http://[::]:8080",
            "http://[2001:db8::1]",
            "http://[::ffff:10.0.0.1]",
            "http://example.com",
            "http://localhost.example.com",
            "http://foo.localhost",
            "http://127.0.0.1.nip.io",
            "ftp://127.0.0.1",
            "file:///etc/passwd",
            "127.0.0.1:8080",
            "http://127.0.0.1:8080/?q=1",
            "not a url",
        ] {
            assert!(Target::parse(raw).is_err(), "{raw} must be refused");
        }
    }

    #[test]
    fn loopback_addresses() {
        assert!(is_loopback("127.0.0.1".parse().expect("ip")));
        assert!(is_loopback("127.255.255.254".parse().expect("ip")));
        assert!(is_loopback("::1".parse().expect("ip")));
        assert!(!is_loopback("128.0.0.1".parse().expect("ip")));
        assert!(!is_loopback("::2".parse().expect("ip")));
    }
}
