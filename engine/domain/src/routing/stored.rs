//! The plan as stored with each message (`messages.routing`), compact: it
//! is written for every message on the hot path, so every byte counts
//! (with ten providers the readable form was about 1.2 KB a row, which
//! doubled the WAL per message and pushed rows past PostgreSQL's 2 KB
//! TOAST threshold). Provider names are not stored (the status read takes
//! them from the organization's connections); the destination country is
//! stored once; each place is an array `[provider id (32 hex), kind, args]`.
//!
//! ```json
//! {"r": "NG OTP cheapest", "i": "0195a1c27d3e7f408a1b2c3d4e5f6a7b", "s": "cheapest", "n": "NG",
//!  "c": [["01957f5618dc7e5f9a6b7c8d9e0f1a2b", "cheapest", 250, "NGN"],
//!        ["019589d0ba577d4e9f5a6b7c8d9e0f1a", "price", 400, "NGN"]],
//!  "x": [["0195a1c94b5c7d6e8f708192a3b4c5d6", "countryNotAllowed"]]}
//! ```

use std::sync::Arc;

use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::country::Country;
use super::plan::{Choice, Decider, Plan, Reason};
use super::rules::{Fallback, Strategy};
use crate::ids::ProviderId;

#[derive(Serialize)]
struct WireOut<'a> {
    r: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    i: Option<uuid::fmt::Simple>,
    s: Strategy,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<Country>,
    c: Places<'a>,
    #[serde(skip_serializing_if = "Places::is_empty")]
    x: Places<'a>,
    #[serde(skip_serializing_if = "Fallback::is_default")]
    f: &'a Fallback,
}

struct Places<'a>(&'a [Choice]);

impl Places<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Places<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for choice in self.0 {
            seq.serialize_element(&Place(choice))?;
        }
        seq.end()
    }
}

struct Place<'a>(&'a Choice);

impl Serialize for Place<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let mut seq = s.serialize_seq(None)?;
        seq.serialize_element(&c.provider_id.0.simple())?;
        match &c.reason {
            Reason::Cheapest { cost, currency, .. } => {
                seq.serialize_element("cheapest")?;
                seq.serialize_element(cost)?;
                seq.serialize_element(currency)?;
            }
            Reason::Price { cost, currency, .. } => {
                seq.serialize_element("price")?;
                seq.serialize_element(cost)?;
                seq.serialize_element(currency)?;
            }
            Reason::NoPrice { .. } => seq.serialize_element("noPrice")?,
            Reason::Priority { priority } => {
                seq.serialize_element("priority")?;
                seq.serialize_element(priority)?;
            }
            Reason::Listed { position } => {
                seq.serialize_element("listed")?;
                seq.serialize_element(position)?;
            }
            Reason::Delivery { ratio, samples } => {
                seq.serialize_element("delivery")?;
                seq.serialize_element(ratio)?;
                seq.serialize_element(samples)?;
            }
            Reason::FewSamples { samples } => {
                seq.serialize_element("fewSamples")?;
                seq.serialize_element(samples)?;
            }
            Reason::Weight { weight } => {
                seq.serialize_element("weight")?;
                seq.serialize_element(weight)?;
            }
            Reason::CircuitOpen => seq.serialize_element("circuitOpen")?,
            Reason::RateLimited => seq.serialize_element("rateLimited")?,
            Reason::Inactive => seq.serialize_element("inactive")?,
            Reason::CountryNotAllowed { .. } => seq.serialize_element("countryNotAllowed")?,
        }
        seq.end()
    }
}

/// The destination country the plan's reasons name (one per plan).
fn country_of(plan: &Plan) -> Option<Country> {
    plan.candidates
        .iter()
        .chain(&plan.excluded)
        .find_map(|c| match &c.reason {
            Reason::Cheapest { country, .. }
            | Reason::Price { country, .. }
            | Reason::NoPrice { country } => *country,
            Reason::CountryNotAllowed { country } => Some(*country),
            _ => None,
        })
}

impl Serialize for Plan {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireOut {
            r: &self.decider.rule,
            i: self.decider.rule_id.map(|id| id.simple()),
            s: self.decider.strategy,
            n: country_of(self),
            c: Places(&self.candidates),
            x: Places(&self.excluded),
            f: &self.fallback,
        }
        .serialize(s)
    }
}

#[derive(Deserialize)]
struct WireIn {
    r: String,
    #[serde(default)]
    i: Option<uuid::Uuid>,
    s: Strategy,
    #[serde(default)]
    n: Option<Country>,
    c: Vec<Vec<Value>>,
    #[serde(default)]
    x: Vec<Vec<Value>>,
    #[serde(default)]
    f: Fallback,
}

fn place<E: serde::de::Error>(raw: Vec<Value>, country: Option<Country>) -> Result<Choice, E> {
    let id = raw
        .first()
        .and_then(Value::as_str)
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .ok_or_else(|| E::custom("a stored place needs a provider id"))?;
    let kind = raw.get(1).and_then(Value::as_str).unwrap_or("");
    let int = |i: usize| raw.get(i).and_then(Value::as_u64);
    let text = |i: usize| raw.get(i).and_then(Value::as_str).map(str::to_owned);
    let missing = || E::custom(format!("stored reason `{kind}` is incomplete"));
    let reason = match kind {
        "cheapest" | "price" => {
            let cost = int(2).ok_or_else(missing)?;
            let currency = text(3).ok_or_else(missing)?;
            if kind == "cheapest" {
                Reason::Cheapest {
                    country,
                    cost,
                    currency,
                }
            } else {
                Reason::Price {
                    country,
                    cost,
                    currency,
                }
            }
        }
        "noPrice" => Reason::NoPrice { country },
        "priority" => Reason::Priority {
            priority: raw
                .get(2)
                .and_then(Value::as_i64)
                .and_then(|p| i32::try_from(p).ok())
                .ok_or_else(missing)?,
        },
        "listed" => Reason::Listed {
            position: int(2).ok_or_else(missing)? as usize,
        },
        "delivery" => Reason::Delivery {
            ratio: raw.get(2).and_then(Value::as_f64).ok_or_else(missing)?,
            samples: int(3).ok_or_else(missing)? as u32,
        },
        "fewSamples" => Reason::FewSamples {
            samples: int(2).ok_or_else(missing)? as u32,
        },
        "weight" => Reason::Weight {
            weight: int(2)
                .and_then(|w| u16::try_from(w).ok())
                .ok_or_else(missing)?,
        },
        "circuitOpen" => Reason::CircuitOpen,
        "rateLimited" => Reason::RateLimited,
        "inactive" => Reason::Inactive,
        "countryNotAllowed" => Reason::CountryNotAllowed {
            country: country.ok_or_else(missing)?,
        },
        other => return Err(E::custom(format!("unknown stored reason `{other}`"))),
    };
    Ok(Choice {
        provider_id: ProviderId(id),
        name: Arc::from(""),
        reason,
    })
}

impl<'de> Deserialize<'de> for Plan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = WireIn::deserialize(d)?;
        let places = |list: Vec<Vec<Value>>| {
            list.into_iter()
                .map(|raw| place::<D::Error>(raw, wire.n))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Plan {
            decider: Decider {
                rule_id: wire.i,
                rule: wire.r,
                strategy: wire.s,
            },
            candidates: places(wire.c)?,
            excluded: places(wire.x)?,
            fallback: wire.f,
        })
    }
}

impl Plan {
    /// Gives each place its connection's name (`name_of` answers `None`
    /// for one that is gone: its explanation then says so).
    pub fn name_places(&mut self, name_of: &dyn Fn(ProviderId) -> Option<Arc<str>>) {
        for c in self.candidates.iter_mut().chain(self.excluded.iter_mut()) {
            if let Some(name) = name_of(c.provider_id) {
                c.name = name;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    fn pid(n: u128) -> ProviderId {
        ProviderId(Uuid::from_u128(n))
    }

    fn choice(n: u128, reason: Reason) -> Choice {
        Choice {
            provider_id: pid(n),
            name: Arc::from(""),
            reason,
        }
    }

    #[test]
    fn every_reason_round_trips_and_the_form_is_compact() {
        let ng: Country = "NG".parse().expect("country");
        let plan = Plan {
            decider: Decider {
                rule_id: Some(Uuid::from_u128(7)),
                rule: "NG OTP cheapest".into(),
                strategy: Strategy::Cheapest,
            },
            candidates: vec![
                choice(
                    1,
                    Reason::Cheapest {
                        country: Some(ng),
                        cost: 250,
                        currency: "NGN".into(),
                    },
                ),
                choice(
                    2,
                    Reason::Price {
                        country: Some(ng),
                        cost: 400,
                        currency: "USD".into(),
                    },
                ),
                choice(3, Reason::NoPrice { country: Some(ng) }),
                choice(4, Reason::Priority { priority: -5 }),
                choice(5, Reason::Listed { position: 2 }),
                choice(
                    6,
                    Reason::Delivery {
                        ratio: 0.975,
                        samples: 412,
                    },
                ),
                choice(7, Reason::FewSamples { samples: 3 }),
                choice(8, Reason::Weight { weight: 300 }),
                choice(9, Reason::CircuitOpen),
                choice(10, Reason::RateLimited),
            ],
            excluded: vec![
                choice(11, Reason::Inactive),
                choice(12, Reason::CountryNotAllowed { country: ng }),
            ],
            fallback: Fallback {
                receipt_timeout_seconds: Some(120),
                ..Fallback::default()
            },
        };
        let stored = serde_json::to_value(&plan).expect("serialises");
        assert_eq!(stored["n"], "NG");
        assert_eq!(
            stored["c"][0],
            json!(["00000000000000000000000000000001", "cheapest", 250, "NGN"])
        );
        let back: Plan = serde_json::from_value(stored).expect("reads back");
        assert_eq!(back, plan);

        let default = Plan {
            decider: Decider {
                rule_id: None,
                rule: "default".into(),
                strategy: Strategy::Priority,
            },
            candidates: vec![choice(1, Reason::Priority { priority: 100 })],
            excluded: Vec::new(),
            fallback: Fallback::default(),
        };
        let text = serde_json::to_string(&default).expect("serialises");
        assert_eq!(
            text,
            r#"{"r":"default","s":"priority","c":[["00000000000000000000000000000001","priority",100]]}"#
        );
        assert!(serde_json::from_str::<Plan>(
            r#"{"r":"x","s":"priority","c":[["zz","priority",1]]}"#
        )
        .is_err());
        assert!(serde_json::from_str::<Plan>(
            r#"{"r":"x","s":"priority","c":[["00000000000000000000000000000001","priority"]]}"#
        )
        .is_err());
    }

    #[test]
    fn names_are_given_back_from_the_connections() {
        let mut plan: Plan = serde_json::from_value(json!({"r": "default", "s": "priority",
            "c": [[pid(1).0.simple().to_string(), "priority", 1], [pid(2).0.simple().to_string(), "priority", 2]]}))
            .expect("stored plan");
        plan.name_places(&|id| (id == pid(1)).then(|| Arc::from("termii")));
        assert_eq!(plan.candidates[0].explanation(), "termii: priority 1");
        assert_eq!(
            plan.candidates[1].explanation(),
            "(removed provider): priority 2"
        );
    }
}
