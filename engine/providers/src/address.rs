//! Which network addresses provider calls may reach: the guard against a
//! tenant pointing a connection (`baseUrl`, an SMTP host) at the engine's own
//! network: cloud metadata, a database, an admin port on loopback.
//!
//! Invariants:
//! - The check is on addresses, after DNS resolution, every time a
//!   connection is opened (the HTTP client's resolver; the SMTP sender
//!   resolves and connects to the address it checked), so a name re-pointed
//!   at an internal address later (DNS rebinding) is refused too.
//! - IP-literal hosts, which no resolver sees, are checked before the request
//!   is sent ([`AddressPolicy::check_url`], called by
//!   [`crate::http::ProviderClient::execute`]).
//! - A refused address is never connected to: the refusal happens before any
//!   packet leaves.
//! - Addresses that embed an IPv4 address (IPv4-mapped, IPv4-compatible,
//!   SIIT, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by the IPv4
//!   address they reach; other transition and special-purpose IPv6 ranges
//!   (Teredo and the rest of `2001::/23`, `64:ff9b:1::/48`, anything outside
//!   global unicast `2000::/3`) are refused outright.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

/// Which addresses outbound provider calls (HTTP and SMTP) may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressPolicy {
    /// Publicly routable addresses only ([`is_public_ip`]): the default.
    #[default]
    Public,
    /// Loopback only (`engine.outbound_loopback_only`: tests and load tests
    /// against the simulator, so nothing can reach a real provider).
    Loopback,
    /// Anything (`engine.providers_allow_private`: a provider or relay on a
    /// private network).
    Any,
}

/// Why an address was refused (or a name could not be resolved).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The host is, or resolves to, an address the policy refuses.
    #[error("{host} {why}")]
    Address { host: String, why: &'static str },
    /// The host name has no address.
    #[error("could not resolve {host}: {cause}")]
    Unresolved { host: String, cause: String },
}

impl AddressPolicy {
    /// Whether a connection to `ip` is allowed.
    pub fn allows(self, ip: IpAddr) -> bool {
        match self {
            AddressPolicy::Public => is_public_ip(ip),
            AddressPolicy::Loopback => ip.is_loopback(),
            AddressPolicy::Any => true,
        }
    }

    /// The words after the host name in a refusal.
    pub fn refusal(self) -> &'static str {
        match self {
            AddressPolicy::Public => {
                "is or resolves to a private, loopback, link-local or otherwise non-public \
                 address, which provider connections may not use \
                 (engine.providers_allow_private)"
            }
            AddressPolicy::Loopback => {
                "is not a loopback host and outbound calls are limited to loopback \
                 (engine.outbound_loopback_only)"
            }
            AddressPolicy::Any => "is refused",
        }
    }

    /// Checks a URL whose host is an IP literal (no resolver sees those);
    /// host names pass here and are checked when they are resolved.
    pub fn check_url(self, url: &Url) -> Result<(), Refused> {
        let ip = match url.host() {
            Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
            Some(Host::Domain(_)) | None => return Ok(()),
        };
        self.check_ip(&ip.to_string(), ip)
    }

    fn check_ip(self, host: &str, ip: IpAddr) -> Result<(), Refused> {
        if self.allows(ip) {
            return Ok(());
        }
        Err(Refused::Address {
            host: host.to_owned(),
            why: self.refusal(),
        })
    }

    /// Resolves `host` (a name or an IP literal, IPv6 with or without
    /// brackets) and returns its addresses with `port`, only when every one
    /// of them is allowed: a name with one internal address among public
    /// ones is refused whole, since the connector may pick any of them.
    pub async fn resolve(self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refused> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            self.check_ip(bare, ip)?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let found: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| Refused::Unresolved {
                host: bare.to_owned(),
                cause: e.to_string(),
            })?
            .collect();
        if found.is_empty() {
            return Err(Refused::Unresolved {
                host: bare.to_owned(),
                cause: "no addresses".into(),
            });
        }
        if found.iter().all(|a| self.allows(a.ip())) {
            return Ok(found);
        }
        Err(Refused::Address {
            host: bare.to_owned(),
            why: self.refusal(),
        })
    }
}

/// True for an address on the public internet. Refused: loopback, private
/// (RFC 1918), link-local (incl. the cloud metadata address
/// 169.254.169.254), carrier-grade NAT (100.64/10, incl. Alibaba's metadata
/// 100.100.100.200), `0/8`, IETF protocol assignments (192.0.0/24, incl.
/// Oracle's metadata 192.0.0.192), the 6to4 relay anycast, benchmarking,
/// documentation, multicast, reserved and broadcast; in IPv6 everything
/// outside global unicast `2000::/3` (loopback, unspecified, unique-local
/// incl. AWS's metadata `fd00:ec2::254`, link-local, site-local, multicast,
/// discard-only), and within it `2001::/23` (Teredo, benchmarking, ORCHID),
/// documentation (`2001:db8::/32`, `3fff::/20`) and SRv6 `5f00::/16`.
/// IPv6 forms that embed an IPv4 address are judged by that address.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    !(v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 192 && b == 88 && c == 99)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(v6: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(v6) {
        return is_public_v4(v4);
    }
    let s = v6.segments();
    let global_unicast = (s[0] & 0xe000) == 0x2000;
    // 2001::/23 (IETF protocol assignments) and 2001:db8::/32 (documentation).
    let special = (s[0] == 0x2001 && (s[1] < 0x0200 || s[1] == 0x0db8))
        || (s[0] == 0x3fff && (s[1] & 0xf000) == 0)
        || s[0] == 0x5f00;
    global_unicast && !special
}

/// The IPv4 address an IPv6 address stands for, in the forms that reach an
/// IPv4 host: IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`
/// (deprecated; `::` and `::1` are judged as 0.0.0.0 and 0.0.0.1, both
/// refused), SIIT `::ffff:0:a.b.c.d`, NAT64 well-known `64:ff9b::a.b.c.d`
/// and 6to4 `2002:AABB:CCDD::/48`.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let o = v6.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    let zeros = |range: std::ops::Range<usize>| s[range].iter().all(|&x| x == 0);
    if zeros(0..5) && (s[5] == 0 || s[5] == 0xffff) {
        return Some(tail);
    }
    if zeros(0..4) && s[4] == 0xffff && s[5] == 0 {
        return Some(tail);
    }
    if s[0] == 0x0064 && s[1] == 0xff9b && zeros(2..6) {
        return Some(tail);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_publicly_routable_addresses_count_as_public() {
        let table = [
            // IPv4
            ("8.8.8.8", true),
            ("41.58.0.1", true),
            ("1.1.1.1", true),
            ("127.0.0.1", false),
            ("127.8.9.10", false),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("172.31.255.255", false),
            ("172.32.0.1", true),
            ("192.168.1.1", false),
            ("169.254.169.254", false),
            ("169.254.0.1", false),
            ("100.64.0.1", false),
            ("100.100.100.200", false),
            ("100.127.255.255", false),
            ("100.128.0.1", true),
            ("0.0.0.0", false),
            ("0.1.2.3", false),
            ("192.0.0.192", false),
            ("192.0.2.1", false),
            ("198.51.100.1", false),
            ("203.0.113.1", false),
            ("192.88.99.1", false),
            ("198.18.0.1", false),
            ("224.0.0.1", false),
            ("239.255.255.250", false),
            ("240.0.0.1", false),
            ("255.255.255.255", false),
            // IPv6 proper
            ("2606:4700::1111", true),
            ("2a00:1450:4001::200e", true),
            ("::1", false),
            ("::", false),
            ("fd00::1", false),
            ("fd00:ec2::254", false),
            ("fc00::1", false),
            ("fe80::1", false),
            ("fec0::1", false),
            ("ff02::1", false),
            ("100::1", false),
            ("2001:db8::1", false),
            ("3fff::1", false),
            ("5f00::1", false),
            ("2001:2::1", false),
            ("2001:10::1", false),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", false), // Teredo
            ("64:ff9b:1::a00:1", false),                     // local-use NAT64
            ("64:ff9b:1::808:808", false),
            ("4000::1", false),
            ("3fff:0fff::1", false),
            ("3fff:1000::1", true),
            // IPv6 forms embedding IPv4: judged by the IPv4 address
            ("::ffff:10.0.0.1", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:169.254.169.254", false),
            ("::ffff:8.8.4.4", true),
            ("::10.0.0.1", false),
            ("::127.0.0.1", false),
            ("::8.8.8.8", true),
            ("::ffff:0:10.0.0.1", false),
            ("::ffff:0:8.8.8.8", true),
            ("64:ff9b::a9fe:a9fe", false), // NAT64 of 169.254.169.254
            ("64:ff9b::7f00:1", false),
            ("64:ff9b::808:808", true),
            ("2002:a00:1::1", false),    // 6to4 of 10.0.0.1
            ("2002:7f00:1::1", false),   // 6to4 of 127.0.0.1
            ("2002:a9fe:a9fe::", false), // 6to4 of 169.254.169.254
            ("2002:808:808::1", true),
        ];
        for (text, public) in table {
            let ip: IpAddr = text.parse().expect("address");
            assert_eq!(is_public_ip(ip), public, "{text}");
        }
    }

    #[test]
    fn policies_allow_what_they_say() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("address");
        assert!(AddressPolicy::Loopback.allows(ip("127.0.0.1")));
        assert!(AddressPolicy::Loopback.allows(ip("::1")));
        assert!(!AddressPolicy::Loopback.allows(ip("8.8.8.8")));
        assert!(!AddressPolicy::Public.allows(ip("127.0.0.1")));
        assert!(AddressPolicy::Public.allows(ip("8.8.8.8")));
        assert!(AddressPolicy::Any.allows(ip("10.0.0.1")));
        assert_eq!(AddressPolicy::default(), AddressPolicy::Public);
    }

    #[test]
    fn ip_literal_urls_are_checked_and_names_left_to_the_resolver() {
        let url = |s: &str| Url::parse(s).expect("url");
        let public = AddressPolicy::Public;
        for refused in [
            "http://10.0.0.1/v3",
            "http://169.254.169.254/latest/meta-data",
            "http://[fd00:ec2::254]/",
            "http://[::ffff:127.0.0.1]:8080/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://127.1/",
            "http://0x7f000001/",
        ] {
            let e = public.check_url(&url(refused)).err();
            assert!(
                e.as_ref()
                    .is_some_and(|e| e.to_string().contains("providers_allow_private")),
                "{refused}: {e:?}"
            );
        }
        assert!(public.check_url(&url("https://8.8.8.8/")).is_ok());
        assert!(public.check_url(&url("https://localhost/")).is_ok());
        assert!(AddressPolicy::Loopback
            .check_url(&url("http://127.0.0.1:9/"))
            .is_ok());
        assert!(AddressPolicy::Loopback
            .check_url(&url("http://8.8.8.8/"))
            .is_err());
        assert!(AddressPolicy::Any
            .check_url(&url("http://10.0.0.1/"))
            .is_ok());
    }

    #[tokio::test]
    async fn resolve_refuses_names_of_internal_addresses_and_keeps_the_port() {
        let e = AddressPolicy::Public.resolve("localhost", 25).await.err();
        assert!(
            matches!(e, Some(Refused::Address { ref host, .. }) if host == "localhost"),
            "{e:?}"
        );
        let e = AddressPolicy::Public.resolve("10.0.0.1", 25).await.err();
        assert!(matches!(e, Some(Refused::Address { .. })), "{e:?}");
        let e = AddressPolicy::Public.resolve("[::1]", 25).await.err();
        assert!(matches!(e, Some(Refused::Address { .. })), "{e:?}");
        let found = AddressPolicy::Loopback.resolve("127.0.0.1", 2525).await;
        assert_eq!(found, Ok(vec!["127.0.0.1:2525".parse().expect("addr")]));
        let found = AddressPolicy::Loopback.resolve("localhost", 2525).await;
        assert!(
            found.as_ref().is_ok_and(
                |a| !a.is_empty() && a.iter().all(|a| a.ip().is_loopback() && a.port() == 2525)
            ),
            "{found:?}"
        );
    }
}
