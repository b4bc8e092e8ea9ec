//! The providers crate's one integration-test binary: every HTTP adapter
//! against a wiremock server on 127.0.0.1 (never the internet), SMTP against
//! a real SMTP server on 127.0.0.1 (smtp_support/), and the sandbox.

mod classification;
mod gupshup;
mod helpers;
mod mailgun;
mod sandbox;
mod smtp;
mod twilio_sms;
