//! Readiness: the database answers, the actor system runs and no shared
//! writer (status outcomes, inbound webhooks, outbound deliveries) is stuck
//! waiting to write.

use std::time::Duration;

use super::App;

/// What a readiness check found.
pub struct Readiness {
    pub database: bool,
    pub actors: bool,
    /// Each shared writer by name, with how long it has been failing (`None`: ok).
    pub writers: Vec<(&'static str, Option<Duration>)>,
}

impl Readiness {
    /// Ready to take traffic: everything passed.
    pub fn is_ready(&self) -> bool {
        self.database && self.actors && self.writers.iter().all(|(_, failing)| failing.is_none())
    }
}

impl App {
    pub async fn readiness(&self) -> Readiness {
        let database = match self.pool().get().await {
            Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        };
        Readiness {
            database,
            actors: self.engine().is_running().await,
            writers: self.engine().writer_health(),
        }
    }
}
