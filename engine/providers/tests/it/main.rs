//! The providers crate's one integration-test binary: every HTTP adapter
//! against a wiremock server on 127.0.0.1 (never the internet), SMTP against
//! a real SMTP server on 127.0.0.1 (smtp_support/), and the sandbox.

mod africastalking;
mod aisensy;
mod classification;
mod gupshup;
mod helpers;
mod interakt;
mod mailgun;
mod mailjet;
mod meta_cloud;
mod sandbox;
mod sendgrid;
mod smtp;
mod termii;
mod twilio_sms;
mod twilio_whatsapp;
