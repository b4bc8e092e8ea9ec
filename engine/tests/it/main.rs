//! Integration tests for the msgengine server: the whole HTTP stack over a
//! fresh PostgreSQL database per test (see msgengine-testkit).

mod admin;
mod audit;
mod bulkhead_accept;
mod crash;
mod e2e_sim;
mod edge_input;
mod encryption;
mod helpers;
mod isolation;
mod openapi;
mod org_webhooks;
mod pipeline;
mod prometheus;
mod providers;
mod startup;
mod suppressions;
mod validation;
mod webhooks;
