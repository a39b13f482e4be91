//! The gateway Deployment: Envoy and `legate-agent` side by side in each pod, ADS and Envoy's
//! admin interface on loopback, readiness from the agent's `/readyz`, a preStop drain, hardened
//! security contexts and a config-hash annotation that rolls the pods when the bootstrap changes.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec},
        core::v1::{
            Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
            EnvVar, EnvVarSource, HTTPGetAction, Lifecycle, LifecycleHandler, ObjectFieldSelector,
            PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecurityContext,
            Volume, VolumeMount,
        },
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};
use legate_crds::gateway_installation::{ContainerSettings, ImagePullPolicy};

use super::{BuildError, Context, image::is_valid_image_reference, labels};

pub const ENVOY_CONTAINER: &str = "envoy";
pub const AGENT_CONTAINER: &str = "legate-agent";
/// The agent's ADS server, reached by Envoy over loopback.
pub const ADS_ADDRESS: &str = "127.0.0.1:18000";
/// Envoy's admin interface: loopback only (DESIGN.md, security rules).
pub const ADMIN_ADDRESS: &str = "127.0.0.1:19000";
/// Envoy's statistics listener (`GET /stats/prometheus` only), which the agent appends to its
/// `/metrics`: loopback too.
pub const STATS_ADDRESS: &str = "127.0.0.1:19001";
/// The agent's `/metrics`, `/healthz` and `/readyz`.
pub const METRICS_PORT: i32 = 9090;
/// The agent's environment variable naming its installation, `<namespace>/<name>`.
pub const INSTALLATION_ENV: &str = "LEGATE_INSTALLATION";
/// Pod template annotation carrying [`super::config_hash`] of the bootstrap.
pub const CONFIG_HASH_ANNOTATION: &str = "legate.dev/config-hash";

/// The `envoy` user of the official Envoy images.
const ENVOY_UID: i64 = 101;
/// `nonroot` of the distroless images the agent ships in.
const AGENT_UID: i64 = 65532;

const BOOTSTRAP_VOLUME: &str = "bootstrap";
const TMP_VOLUME: &str = "tmp";

pub fn build(cx: &Context, config_hash: &str) -> Result<Deployment, BuildError> {
    let spec = &cx.gwi.spec;
    let envoy_image = image(
        spec.envoy.as_ref(),
        &cx.settings.envoy_image,
        "spec.envoy.image",
    )?;
    let agent_image = image(
        spec.agent.as_ref(),
        &cx.settings.agent_image,
        "spec.agent.image",
    )?;
    // Bounded to 0..=3600 by the schema and the loader.
    let drain = spec.drain_seconds.map_or(cx.settings.drain_seconds, |d| {
        u32::try_from(d.get()).unwrap_or(cx.settings.drain_seconds)
    });

    let envoy = Container {
        name: ENVOY_CONTAINER.to_owned(),
        image: Some(envoy_image),
        image_pull_policy: pull_policy(spec.envoy.as_ref()),
        // The binary itself, not the image's entrypoint script, so a distroless Envoy image
        // works the same.
        command: Some(strings(&["/usr/local/bin/envoy"])),
        args: Some(
            [
                "-c",
                "/etc/envoy/bootstrap.yaml",
                "--log-level",
                "info",
                // `drain_listeners?graceful` (see the preStop hook) drains for this long, and
                // `immediate` tells every connection to close at once instead of a gradual
                // share over the period (the default: 600 s, gradual).
                "--drain-time-s",
                drain.to_string().as_str(),
                "--drain-strategy",
                "immediate",
            ]
            .map(str::to_owned)
            .to_vec(),
        ),
        ports: Some(
            cx.ports
                .iter()
                .map(|p| ContainerPort {
                    name: Some(p.name.clone()),
                    container_port: p.target_port.unwrap_or(p.port).get() as i32,
                    protocol: Some("TCP".to_owned()),
                    ..ContainerPort::default()
                })
                .collect(),
        ),
        resources: spec.envoy.as_ref().and_then(|e| e.resources.clone()),
        // The preStop drain (the agent's `/drain`, see `drain_hook`): Envoy gets SIGTERM, on
        // which it exits at once, only after its listeners drained.
        lifecycle: Some(drain_hook()),
        security_context: Some(security_context(ENVOY_UID)),
        volume_mounts: Some(vec![
            VolumeMount {
                name: BOOTSTRAP_VOLUME.to_owned(),
                mount_path: "/etc/envoy".to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            // Envoy's only writes outside stdout: the admin address file and temporary files of
            // some extensions; the root filesystem is read-only.
            VolumeMount {
                name: TMP_VOLUME.to_owned(),
                mount_path: "/tmp".to_owned(),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    };

    let probe = |path: &str| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("metrics".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(5),
        failure_threshold: Some(3),
        ..Probe::default()
    };
    let agent = Container {
        name: AGENT_CONTAINER.to_owned(),
        image: Some(agent_image),
        image_pull_policy: pull_policy(spec.agent.as_ref()),
        args: Some(
            [
                "run",
                "--ads-address",
                ADS_ADDRESS,
                "--metrics-address",
                format!("0.0.0.0:{METRICS_PORT}").as_str(),
                "--log-format",
                "json",
                "--envoy-admin-address",
                ADMIN_ADDRESS,
                "--envoy-stats-address",
                STATS_ADDRESS,
                "--drain-seconds",
                drain.to_string().as_str(),
            ]
            .map(str::to_owned)
            .to_vec(),
        ),
        // The installation the agent serves: it reads `ambassadorId` and `allowedRoutes` from it
        // and follows their changes, so neither is a flag here and editing them rolls no pod.
        // The agent resolves unqualified service names against its own namespace.
        env: Some(vec![
            EnvVar {
                name: INSTALLATION_ENV.to_owned(),
                value: Some(format!("{}/{}", cx.namespace, cx.name)),
                value_from: None,
            },
            field_env("LEGATE_NAMESPACE", "metadata.namespace"),
            field_env("POD_NAME", "metadata.name"),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("metrics".to_owned()),
            container_port: METRICS_PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        // Ready only when Envoy has acknowledged a configuration (DESIGN.md).
        readiness_probe: Some(probe("/readyz")),
        liveness_probe: Some(probe("/healthz")),
        // The same hook: the agent keeps serving Envoy until the drain is over.
        lifecycle: Some(drain_hook()),
        resources: spec.agent.as_ref().and_then(|a| a.resources.clone()),
        security_context: Some(security_context(AGENT_UID)),
        ..Container::default()
    };

    let selector = labels::selector(cx);
    Ok(Deployment {
        metadata: labels::namespaced(cx, cx.name.clone()),
        spec: Some(DeploymentSpec {
            // With an HPA the replicas belong to it: leaving them out keeps the two from
            // fighting over the field.
            replicas: match spec.autoscaling {
                Some(_) => None,
                None => Some(spec.replicas.map_or(1, |n| n.get() as i32)),
            },
            selector: LabelSelector {
                match_labels: Some(selector),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels::labels(cx)),
                    // The usual scrape annotations: one target per pod carries the agent's
                    // metrics and its Envoy's (a PodMonitor can use the `metrics` port instead).
                    annotations: Some(BTreeMap::from(
                        [
                            (CONFIG_HASH_ANNOTATION, config_hash),
                            ("prometheus.io/scrape", "true"),
                            ("prometheus.io/port", &METRICS_PORT.to_string()),
                            ("prometheus.io/path", "/metrics"),
                        ]
                        .map(|(k, v)| (k.to_owned(), v.to_owned())),
                    )),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(cx.name.clone()),
                    containers: vec![envoy, agent],
                    // The drain plus a margin for Envoy's and the agent's own shutdown.
                    termination_grace_period_seconds: Some(i64::from(drain) + 15),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        seccomp_profile: Some(runtime_default()),
                        ..PodSecurityContext::default()
                    }),
                    volumes: Some(vec![
                        Volume {
                            name: BOOTSTRAP_VOLUME.to_owned(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: labels::bootstrap_config_map_name(&cx.name),
                                ..ConfigMapVolumeSource::default()
                            }),
                            ..Volume::default()
                        },
                        Volume {
                            name: TMP_VOLUME.to_owned(),
                            empty_dir: Some(EmptyDirVolumeSource::default()),
                            ..Volume::default()
                        },
                    ]),
                    node_selector: spec.node_selector.clone(),
                    tolerations: spec.tolerations.clone(),
                    affinity: spec.affinity.clone(),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    })
}

/// The image of a container, defaulted and checked.
fn image(
    settings: Option<&ContainerSettings>,
    default: &str,
    field: &'static str,
) -> Result<String, BuildError> {
    let image = settings
        .and_then(|s| s.image.clone())
        .unwrap_or_else(|| default.to_owned());
    if is_valid_image_reference(&image) {
        Ok(image)
    } else {
        Err(BuildError::InvalidImage {
            field,
            value: image,
        })
    }
}

fn pull_policy(settings: Option<&ContainerSettings>) -> Option<String> {
    settings.and_then(|s| s.image_pull_policy).map(|p| {
        match p {
            ImagePullPolicy::Always => "Always",
            ImagePullPolicy::IfNotPresent => "IfNotPresent",
            ImagePullPolicy::Never => "Never",
        }
        .to_owned()
    })
}

/// Both containers' preStop hook: an `httpGet` of the agent's `/drain`, which asks Envoy to drain
/// its listeners gracefully (every open connection is told to close while the pod leaves the
/// Service's endpoints) and answers when the drain period is over; the kubelet sends each
/// container SIGTERM only then. An `httpGet` needs nothing in the images: no shell, no client
/// (Envoy has no drain command, `/drain_listeners` is POST-only, and `lifecycle.sleep` needs
/// Kubernetes 1.29). The agent acts on `/drain` only while its Pod is being deleted.
fn drain_hook() -> Lifecycle {
    Lifecycle {
        pre_stop: Some(LifecycleHandler {
            http_get: Some(HTTPGetAction {
                path: Some(legate_agent::drain::PATH.to_owned()),
                // A number: a named port resolves against the hook's own container's ports,
                // and Envoy's container has no `metrics` port.
                port: IntOrString::Int(METRICS_PORT),
                ..HTTPGetAction::default()
            }),
            ..LifecycleHandler::default()
        }),
        ..Lifecycle::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        localhost_profile: None,
    }
}

fn security_context(uid: i64) -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        seccomp_profile: Some(runtime_default()),
        ..SecurityContext::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}
