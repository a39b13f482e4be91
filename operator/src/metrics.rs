//! The operator's Prometheus metrics: reconciles by outcome, failures by error, and durations.

use std::time::Instant;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `success` or `failure`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub error: &'static str,
}

#[derive(Clone)]
pub struct Metrics {
    pub reconciles: Family<OutcomeLabels, Counter>,
    pub failures: Family<ErrorLabels, Counter>,
    pub duration: Family<OutcomeLabels, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            reconciles: Family::default(),
            failures: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
            }),
        }
    }
}

impl Metrics {
    pub fn register(self, registry: &mut Registry) -> Self {
        registry.register(
            "legate_operator_reconciles",
            "Reconciles of GatewayInstallations, by outcome",
            self.reconciles.clone(),
        );
        registry.register(
            "legate_operator_reconcile_failures",
            "Failed reconciles, by error",
            self.failures.clone(),
        );
        registry.register(
            "legate_operator_reconcile_duration_seconds",
            "Time a reconcile took, by outcome",
            self.duration.clone(),
        );
        self
    }

    /// Records one reconcile that started at `started`; `error` is the failure's label.
    pub fn observe(&self, started: Instant, error: Option<&'static str>) {
        let outcome = OutcomeLabels {
            outcome: if error.is_some() {
                "failure"
            } else {
                "success"
            },
        };
        self.reconciles.get_or_create(&outcome).inc();
        self.duration
            .get_or_create(&outcome)
            .observe(started.elapsed().as_secs_f64());
        if let Some(error) = error {
            self.failures.get_or_create(&ErrorLabels { error }).inc();
        }
    }
}
