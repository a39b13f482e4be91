//! Envoy's statistics on the agent's `/metrics`: one scrape target per pod. The agent reads them
//! from the listener the bootstrap binds for them on loopback (`bootstrap::stats_listener`,
//! `GET /stats/prometheus` only), never from Envoy's admin interface, and appends them to its
//! own. The scrape's query string goes along, so a scrape config can ask Envoy for `usedonly`
//! or a `filter`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use legate_common::admin::Appendix;
use prometheus_client::{metrics::gauge::Gauge, registry::Registry};
use tracing::debug;

use crate::bootstrap::STATS_PATH;

/// Longer than Envoy needs for tens of thousands of clusters; shorter than Prometheus' default
/// scrape timeout (10 s), so the agent's own metrics still arrive.
const TIMEOUT: Duration = Duration::from_secs(8);

/// Reads Envoy's statistics for each scrape of the agent's `/metrics`.
pub fn appendix(address: SocketAddr, registry: &mut Registry) -> Appendix {
    let up = Gauge::<i64>::default();
    registry.register(
        "envoy_stats_up",
        "Whether the last scrape read Envoy's statistics (1) or not (0, Envoy not running or not answering)",
        up.clone(),
    );
    let http = reqwest::Client::new();
    Arc::new(move |query| {
        let url = match query {
            Some(q) => format!("http://{address}{STATS_PATH}?{q}"),
            None => format!("http://{address}{STATS_PATH}"),
        };
        let (http, up) = (http.clone(), up.clone());
        Box::pin(async move {
            match read(&http, &url).await {
                Ok(text) => {
                    up.set(1);
                    text
                }
                Err(e) => {
                    debug!(url, error = %e, "Envoy's statistics are not readable");
                    up.set(0);
                    String::new()
                }
            }
        })
    })
}

async fn read(http: &reqwest::Client, url: &str) -> Result<String, reqwest::Error> {
    http.get(url)
        .timeout(TIMEOUT)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await
}
