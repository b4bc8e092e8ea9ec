//! `GET /api/providers/health`: each of the organization's running
//! connections as its provider actor sees it now (breaker, success rate and
//! sample size, latency, last error, the rate limit in force, jobs held).

use std::time::Duration;

pub use crate::provider::ConnectionHealth;

use super::{App, AppError, Tenant};

/// How long one provider actor may take to answer (a busy mailbox).
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

impl App {
    /// The organization's running connections, by channel then name. A
    /// connection whose actor does not answer in time is left out.
    pub async fn provider_health(&self, tenant: Tenant) -> Result<Vec<ConnectionHealth>, AppError> {
        let org = tenant.organization_id;
        let routes = self.engine().routes();
        routes.ensure(org).await?;
        let asks = routes
            .table()
            .providers_of(org)
            .into_iter()
            .map(|handle| async move {
                tokio::time::timeout(ASK_TIMEOUT, handle.addr.send(crate::provider::GetHealth))
                    .await
                    .ok()
                    .and_then(Result::ok)
            });
        let mut all: Vec<ConnectionHealth> = futures::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect();
        all.sort_by(|a, b| {
            (a.channel.as_str(), &a.name, a.provider_id).cmp(&(
                b.channel.as_str(),
                &b.name,
                b.provider_id,
            ))
        });
        Ok(all)
    }
}
