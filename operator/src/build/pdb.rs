//! The PodDisruptionBudget (`policy/v1`), when `spec.podDisruptionBudget` asks for one.

use k8s_openapi::{
    api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec},
    apimachinery::pkg::apis::meta::v1::LabelSelector,
};

use super::{Context, labels};

pub fn build(cx: &Context) -> Option<PodDisruptionBudget> {
    let settings = cx.gwi.spec.pod_disruption_budget.as_ref()?;
    Some(PodDisruptionBudget {
        metadata: labels::namespaced(cx, cx.name.clone()),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: settings.min_available.clone(),
            max_unavailable: settings.max_unavailable.clone(),
            selector: Some(LabelSelector {
                match_labels: Some(labels::selector(cx)),
                match_expressions: None,
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    })
}
