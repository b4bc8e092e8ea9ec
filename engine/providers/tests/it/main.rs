//! The providers crate's one integration-test binary: every HTTP adapter
//! against a wiremock server on 127.0.0.1 (never the internet), and the sandbox.

mod classification;
mod gupshup;
mod helpers;
mod mailgun;
mod mailjet;
mod sandbox;
mod sendgrid;
mod twilio_sms;
