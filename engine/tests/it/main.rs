//! Integration tests for the msgengine server: the whole HTTP stack over a
//! fresh PostgreSQL database per test (see msgengine-testkit).

mod admin;
mod audit;
mod bounds;
mod bulkhead_accept;
mod bulkheads;
mod contract;
mod crash;
mod e2e_sim;
mod edge_input;
mod encryption;
mod helpers;
mod hostile;
mod isolation;
mod leases;
mod lifecycle;
mod openapi;
mod org_webhooks;
mod pipeline;
mod prometheus;
mod provider_health;
mod providers;
mod routing_attrs;
mod routing_failover;
mod routing_rules;
mod secrets_bound;
mod startup;
mod suppressions;
mod validation;
mod webhook_replay;
mod webhooks;
