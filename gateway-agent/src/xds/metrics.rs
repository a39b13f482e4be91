//! The ADS server's metrics: pushes, ACKs and NACKs by resource type, connected streams, and the
//! time from the start of a configuration's build to Envoy acknowledging all of it.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::type_url;

type ByType = Family<[(&'static str, &'static str); 1], Counter>;

#[derive(Clone, Debug)]
pub(crate) struct Metrics {
    pushes: ByType,
    acks: ByType,
    nacks: ByType,
    pub connected: Gauge,
    pub change_to_ack: Histogram,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            pushes: ByType::default(),
            acks: ByType::default(),
            nacks: ByType::default(),
            connected: Gauge::default(),
            change_to_ack: Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        };
        registry.register(
            "xds_pushes",
            "Discovery responses sent to Envoy, by resource type",
            m.pushes.clone(),
        );
        registry.register(
            "xds_acks",
            "Responses Envoy acknowledged (ACKed), by resource type",
            m.acks.clone(),
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
        registry.register(
            "change_to_ack_seconds",
            "Time from the start of a configuration's build to an Envoy acknowledging every resource type of it",
            m.change_to_ack.clone(),
        );
        // Every type shows from the start, at zero: an alert on `xds_nacks_total > 0` needs a series.
        for url in type_url::ALL {
            drop(m.pushes.get_or_create(&label(url)));
            drop(m.acks.get_or_create(&label(url)));
            drop(m.nacks.get_or_create(&label(url)));
        }
        m
    }

    pub fn push(&self, url: &str) {
        self.pushes.get_or_create(&label(url)).inc();
    }

    pub fn ack(&self, url: &str) {
        self.acks.get_or_create(&label(url)).inc();
    }

    pub fn nack(&self, url: &str) {
        self.nacks.get_or_create(&label(url)).inc();
    }
}

fn label(url: &str) -> [(&'static str, &'static str); 1] {
    [("type", type_url::short(url))]
}
