//! What the API server serves, found once at start: Kubernetes 1.20 has no `policy/v1`
//! PodDisruptionBudgets (1.21+) and no `autoscaling/v2` HorizontalPodAutoscalers (1.23+), and the
//! operator builds only those versions.

use kube::Client;

use crate::status::{Problem, reason};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// `policy/v1` PodDisruptionBudgets.
    pub pod_disruption_budgets: bool,
    /// `autoscaling/v2` HorizontalPodAutoscalers.
    pub horizontal_pod_autoscalers: bool,
}

impl Capabilities {
    /// Everything the operator can build: a current Kubernetes.
    pub const ALL: Self = Self {
        pod_disruption_budgets: true,
        horizontal_pod_autoscalers: true,
    };

    pub async fn discover(client: &Client) -> Result<Self, kube::Error> {
        Ok(Self {
            pod_disruption_budgets: serves(client, "policy/v1", "poddisruptionbudgets").await?,
            horizontal_pod_autoscalers: serves(
                client,
                "autoscaling/v2",
                "horizontalpodautoscalers",
            )
            .await?,
        })
    }

    /// The problem with asking for a PDB here, if any.
    pub fn pod_disruption_budget_problem(&self) -> Option<Problem> {
        (!self.pod_disruption_budgets).then(|| Problem {
            reason: reason::UNSUPPORTED_BY_SERVER,
            message: "spec.podDisruptionBudget: the API server does not serve policy/v1 \
                      PodDisruptionBudgets (Kubernetes 1.21 or later); no PodDisruptionBudget \
                      was created"
                .to_owned(),
        })
    }

    /// The problem with asking for an HPA here, if any.
    pub fn horizontal_pod_autoscaler_problem(&self) -> Option<Problem> {
        (!self.horizontal_pod_autoscalers).then(|| Problem {
            reason: reason::UNSUPPORTED_BY_SERVER,
            message: "spec.autoscaling: the API server does not serve autoscaling/v2 \
                      HorizontalPodAutoscalers (Kubernetes 1.23 or later); no \
                      HorizontalPodAutoscaler was created and the Deployment runs 1 replica"
                .to_owned(),
        })
    }
}

async fn serves(client: &Client, group_version: &str, resource: &str) -> Result<bool, kube::Error> {
    match client.list_api_group_resources(group_version).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == resource)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}
