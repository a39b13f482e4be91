//! The HorizontalPodAutoscaler (`autoscaling/v2`), when `spec.autoscaling` asks for one. The
//! Deployment then leaves `replicas` unset, so the two never fight.

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};

use super::{Context, labels};

/// CPU utilization target when `targetCPUUtilizationPercentage` is unset.
pub const DEFAULT_CPU_UTILIZATION: i32 = 80;

pub fn build(cx: &Context) -> Option<HorizontalPodAutoscaler> {
    let settings = cx.gwi.spec.autoscaling.as_ref()?;
    let cpu = settings
        .target_cpu_utilization_percentage
        .map_or(DEFAULT_CPU_UTILIZATION, |p| p.get() as i32);
    Some(HorizontalPodAutoscaler {
        metadata: labels::namespaced(cx, cx.name.clone()),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_owned()),
                kind: "Deployment".to_owned(),
                name: cx.name.clone(),
            },
            min_replicas: settings.min_replicas.map(|n| n.get() as i32),
            max_replicas: settings.max_replicas.get() as i32,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".to_owned(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".to_owned(),
                    target: MetricTarget {
                        type_: "Utilization".to_owned(),
                        average_utilization: Some(cpu),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            behavior: None,
        }),
        status: None,
    })
}
