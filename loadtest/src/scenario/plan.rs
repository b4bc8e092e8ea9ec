//! What request `i` of a scenario sends: which organization, which channel,
//! how many messages, to which countries.
//!
//! Every pick is a weighted choice driven by a hash of (seed, request or
//! message number, what is picked), so a request is built from its index
//! alone, in any order, on any task, with no shared random state, and the
//! same seed gives the same traffic. Message `n` of a run (request `i`,
//! position `j`: `n = i * 1000 + j`, unique across the phases of a run
//! through [`ScenarioSource::phase`]) goes to a number of its country picked
//! by the hash, or to `user{n}@example.com`.

use std::io::Write;

use bytes::Bytes;
use reqwest::header::HeaderValue;

use super::countries::Country;
use super::{Scenario, MAX_BATCH};
use crate::open_loop::{PlannedRequest, RequestSource};
use crate::payload::Channel;

/// SplitMix64: a fast, well-mixed hash of one u64.
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn hash(seed: u64, n: u64, what: u64) -> u64 {
    mix64(seed ^ mix64(n ^ mix64(what)))
}

/// A weighted choice among items.
#[derive(Debug, Clone)]
pub struct Weighted<T> {
    items: Vec<T>,
    /// Running totals of the weights (zero weights left out).
    cumulative: Vec<u64>,
}

impl<T: Clone> Weighted<T> {
    /// Items with their weights; `None` when no weight is positive.
    pub fn new(pairs: impl IntoIterator<Item = (T, u32)>) -> Option<Self> {
        let mut items = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0u64;
        for (item, weight) in pairs {
            if weight > 0 {
                total += u64::from(weight);
                items.push(item);
                cumulative.push(total);
            }
        }
        (!items.is_empty()).then_some(Self { items, cumulative })
    }

    /// The item a hash value falls on (each with its weight's share).
    pub fn pick(&self, h: u64) -> &T {
        let total = self.cumulative.last().copied().unwrap_or(1);
        let x = h % total;
        let i = self.cumulative.partition_point(|c| *c <= x);
        &self.items[i.min(self.items.len() - 1)]
    }
}

/// The scenario's traffic mix, ready to pick from.
#[derive(Debug, Clone)]
pub struct Mix {
    /// Organization indexes (expanded `count`s) by share.
    pub tenants: Weighted<u16>,
    pub channels: Weighted<Channel>,
    pub batches: Weighted<u32>,
    /// `None` when the scenario sends no SMS or WhatsApp.
    pub countries: Option<Weighted<Country>>,
}

impl Mix {
    /// The mix of a validated scenario.
    pub fn new(scenario: &Scenario) -> anyhow::Result<Self> {
        let mut tenants = Vec::new();
        for t in &scenario.tenants {
            for _ in 0..t.count {
                let index = u16::try_from(tenants.len())?;
                tenants.push((index, t.share));
            }
        }
        let none = |what: &str| anyhow::anyhow!("{what}: no positive weight");
        Ok(Self {
            tenants: Weighted::new(tenants).ok_or_else(|| none("tenants"))?,
            channels: Weighted::new(scenario.channels.iter().map(|(c, w)| (*c, *w)))
                .ok_or_else(|| none("channels"))?,
            batches: Weighted::new(
                scenario
                    .batches
                    .iter()
                    .map(|b| (b.size.clamp(1, MAX_BATCH), b.weight)),
            )
            .ok_or_else(|| none("batches"))?,
            countries: Weighted::new(
                scenario
                    .countries
                    .iter()
                    .filter_map(|(code, w)| Country::from_code(code).map(|c| (c, *w))),
            ),
        })
    }
}

/// The requests of one phase of a scenario run.
#[derive(Debug, Clone)]
pub struct ScenarioSource {
    mix: Mix,
    /// One API key per organization, by tenant index.
    auths: Vec<HeaderValue>,
    seed: u64,
    /// Added to request indexes, so phases (warm-up, measured, ramp steps)
    /// send different messages.
    first_request: u64,
    /// Written into every message's text.
    label: String,
}

/// The picks of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestShape {
    pub tenant: u16,
    pub channel: Channel,
    pub messages: u32,
}

impl ScenarioSource {
    pub fn new(mix: Mix, auths: Vec<HeaderValue>, seed: u64, label: &str) -> Self {
        Self {
            mix,
            auths,
            seed,
            first_request: 0,
            label: label.chars().filter(char::is_ascii_alphanumeric).collect(),
        }
    }

    /// The same source for a phase starting at request `first_request`.
    pub fn phase(&self, first_request: u64) -> Self {
        Self {
            first_request,
            ..self.clone()
        }
    }

    /// What request `index` of this phase is.
    pub fn shape(&self, index: u64) -> RequestShape {
        let i = self.first_request + index;
        RequestShape {
            tenant: *self.mix.tenants.pick(hash(self.seed, i, 1)),
            channel: *self.mix.channels.pick(hash(self.seed, i, 2)),
            messages: *self.mix.batches.pick(hash(self.seed, i, 3)),
        }
    }

    fn write_message(&self, buf: &mut Vec<u8>, channel: Channel, n: u64) {
        buf.extend_from_slice(b"{\"channel\":\"");
        buf.extend_from_slice(channel.as_str().as_bytes());
        buf.extend_from_slice(b"\",\"to\":\"");
        match (channel, &self.mix.countries) {
            (Channel::Email, _) | (_, None) => {
                let _ = write!(buf, "user{n}@example.com\",\"subject\":\"load test {n}");
            }
            (_, Some(countries)) => {
                let country = countries.pick(hash(self.seed, n, 4));
                country.write_number(buf, hash(self.seed, n, 5));
            }
        }
        let _ = write!(
            buf,
            "\",\"text\":\"load test {} message {n}\"}}",
            self.label
        );
    }

    /// The body of request `index` (one message object for a single, else
    /// `{"messages": [...]}`).
    pub fn body(&self, index: u64, shape: RequestShape) -> Bytes {
        let i = self.first_request + index;
        let count = u64::from(shape.messages);
        let mut buf = Vec::with_capacity(16 + shape.messages as usize * 110);
        if count == 1 {
            self.write_message(&mut buf, shape.channel, i * u64::from(MAX_BATCH));
        } else {
            buf.extend_from_slice(b"{\"messages\":[");
            for j in 0..count {
                if j > 0 {
                    buf.push(b',');
                }
                self.write_message(&mut buf, shape.channel, i * u64::from(MAX_BATCH) + j);
            }
            buf.extend_from_slice(b"]}");
        }
        Bytes::from(buf)
    }
}

impl RequestSource for ScenarioSource {
    fn messages(&self, index: u64) -> u32 {
        self.shape(index).messages
    }

    fn request(&self, index: u64) -> PlannedRequest {
        let shape = self.shape(index);
        let auth = self
            .auths
            .get(usize::from(shape.tenant))
            .or(self.auths.first())
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static(""));
        PlannedRequest {
            tenant: shape.tenant,
            auth,
            body: self.body(index, shape),
            messages: shape.messages,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn scenario() -> Scenario {
        Scenario::from_toml(
            r#"
name = "mix"
seed = 7
[load]
rate = 10
duration_secs = 1
[[tenants]]
name = "big"
share = 3
[[tenants]]
name = "small"
share = 1
count = 2
[channels]
sms = 1
email = 1
[[batches]]
size = 1
weight = 1
[[batches]]
size = 5
weight = 1
[countries]
NG = 1
KE = 1
[[providers]]
channel = "sms"
type = "twilio"
[[providers]]
channel = "email"
type = "mailgun"
"#,
        )
        .expect("valid")
    }

    fn source() -> ScenarioSource {
        let auths = (0..3)
            .map(|i| HeaderValue::from_str(&format!("Bearer k{i}")).expect("header"))
            .collect();
        ScenarioSource::new(Mix::new(&scenario()).expect("mix"), auths, 7, "mix")
    }

    #[test]
    fn weighted_picks_follow_the_weights() {
        let w = Weighted::new([("a", 3), ("zero", 0), ("b", 1)]).expect("weights");
        let mut a = 0;
        for i in 0..40_000u64 {
            if *w.pick(mix64(i)) == "a" {
                a += 1;
            }
        }
        assert!((29_000..31_000).contains(&a), "{a}");
        assert_eq!(*w.pick(0), "a");
        assert_eq!(*w.pick(3), "b");
        assert!(Weighted::new([("x", 0)]).is_none());
    }

    #[test]
    fn tenants_expand_counts_and_get_their_shares() {
        let s = source();
        let mut per_tenant = [0u32; 3];
        for i in 0..10_000 {
            per_tenant[usize::from(s.shape(i).tenant)] += 1;
        }
        // Shares 3 : 1 : 1.
        assert!((5_700..6_300).contains(&per_tenant[0]), "{per_tenant:?}");
        assert!((1_800..2_200).contains(&per_tenant[1]), "{per_tenant:?}");
    }

    #[test]
    fn bodies_hold_the_picked_channel_size_and_valid_recipients() {
        let s = source();
        let mut countries = std::collections::BTreeSet::new();
        for i in 0..200 {
            let shape = s.shape(i);
            let planned = s.request(i);
            assert_eq!(planned.messages, shape.messages);
            assert_eq!(planned.tenant, shape.tenant);
            let v: Value = serde_json::from_slice(&planned.body).expect("JSON");
            let messages: Vec<Value> = match v.get("messages") {
                Some(list) => list.as_array().expect("array").clone(),
                None => vec![v.clone()],
            };
            assert_eq!(messages.len() as u32, shape.messages);
            for m in messages {
                assert_eq!(m["channel"], shape.channel.as_str());
                let to = m["to"].as_str().expect("to");
                if shape.channel == Channel::Email {
                    assert!(to.ends_with("@example.com"));
                    assert!(m["subject"].is_string());
                } else {
                    let parsed = phonenumber::parse(None, to).expect("number");
                    assert!(phonenumber::is_valid(&parsed), "{to}");
                    countries.insert(to[..4].to_owned());
                }
            }
        }
        assert_eq!(countries.into_iter().collect::<Vec<_>>(), ["+234", "+254"]);
        // The same index gives the same request; another phase another one.
        assert_eq!(s.request(5).body, s.request(5).body);
        assert_ne!(s.phase(1000).request(5).body, s.request(5).body);
    }
}
