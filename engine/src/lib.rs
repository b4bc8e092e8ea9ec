//! The `msgengine` server: settings, start-up and wiring of the storage,
//! provider and HTTP crates. `main.rs` is a thin command line over this.

pub mod bootstrap;
pub mod commands;
pub mod metrics;
pub mod settings;
pub mod startup;
pub mod telemetry;

pub use settings::Settings;
pub use startup::Application;
