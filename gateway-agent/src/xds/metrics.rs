//! The ADS server's metrics: pushes and NACKs by resource type, connected streams.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::type_url;

type ByType = Family<[(&'static str, &'static str); 1], Counter>;

#[derive(Clone, Debug, Default)]
pub(crate) struct Metrics {
    pushes: ByType,
    nacks: ByType,
    pub connected: Gauge,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "xds_pushes",
            "Discovery responses sent to Envoy, by resource type",
            m.pushes.clone(),
        );
        registry.register(
            "xds_nacks",
            "Configurations Envoy refused (NACKed), by resource type",
            m.nacks.clone(),
        );
        registry.register(
            "xds_connected_streams",
            "ADS streams currently open",
            m.connected.clone(),
        );
        // Every type shows from the start, at zero: an alert on `xds_nacks_total > 0` needs a series.
        for url in type_url::ALL {
            drop(m.pushes.get_or_create(&label(url)));
            drop(m.nacks.get_or_create(&label(url)));
        }
        m
    }

    pub fn push(&self, url: &str) {
        self.pushes.get_or_create(&label(url)).inc();
    }

    pub fn nack(&self, url: &str) {
        self.nacks.get_or_create(&label(url)).inc();
    }
}

fn label(url: &str) -> [(&'static str, &'static str); 1] {
    [("type", type_url::short(url))]
}
