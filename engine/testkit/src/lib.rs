//! Dev-only test kit: a fresh PostgreSQL database per test.
//!
//! Every database is cloned from a migrated template (`tpl_<migration fingerprint>`), on the
//! server named by `DATABASE_URL` or, when it is unset, on a throwaway cluster this crate starts
//! itself in `/tmp` (shared by every test process of one workspace and stopped by a watchdog once
//! idle). Invariants:
//! - Statics hold only strings and paths, never a connection: each `#[tokio::test]` has its own
//!   runtime, so every connection is opened inside the test that uses it.
//! - No server and no way to start one is a loud panic, never a skipped test.

mod db;
mod server;
mod template;
mod watchdog;

pub use db::TestDb;
