//! IR tracing → the HTTP connection manager's `tracing`: the driver's typed config as the
//! provider (Emissary's `envoy/v3/v3tracing.py` puts it in the bootstrap; over ADS it belongs to
//! each connection manager), the sampling percentages and custom tags (`v3listener.py`), and a
//! child span for each upstream call. Emissary asks for that span with the router's
//! `start_child_span`, which Envoy deprecated for `spawn_upstream_span`: the same span, asked
//! for here.

use envoy_types::{
    pb::{
        envoy::{
            config::{
                core::v3::{GrpcService, grpc_service},
                trace::v3::{
                    DatadogConfig, OpenTelemetryConfig, ZipkinConfig, tracing::Http, tracing::http,
                    zipkin_config,
                },
            },
            extensions::filters::network::http_connection_manager::v3::http_connection_manager,
            r#type::{
                tracing::v3::{CustomTag as EnvoyTag, custom_tag},
                v3::Percent,
            },
        },
        google::protobuf::Any,
    },
    util::pack_any,
};

use crate::ir::tracing::{CustomTag, Provider, TagValue, Tracing};

/// The connection manager's `tracing`.
pub(super) fn hcm_tracing(t: &Tracing) -> http_connection_manager::Tracing {
    let percent = |p: Option<u8>| {
        p.map(|p| Percent {
            value: f64::from(p),
        })
    };
    http_connection_manager::Tracing {
        client_sampling: percent(t.sampling.client),
        random_sampling: percent(t.sampling.random),
        overall_sampling: percent(t.sampling.overall),
        custom_tags: t.custom_tags.iter().map(custom_tag).collect(),
        provider: Some(provider(&t.provider)),
        spawn_upstream_span: super::bool_value(true),
        ..Default::default()
    }
}

fn provider(p: &Provider) -> Http {
    let (name, config): (&str, Any) = match p {
        Provider::Zipkin {
            cluster,
            endpoint,
            proto,
            hostname,
            trace_id_128bit,
            shared_span_context,
        } => {
            let version = match proto {
                true => zipkin_config::CollectorEndpointVersion::HttpProto,
                false => zipkin_config::CollectorEndpointVersion::HttpJson,
            };
            (
                "envoy.tracers.zipkin",
                pack_any(ZipkinConfig {
                    collector_cluster: cluster.clone(),
                    collector_endpoint: endpoint.clone(),
                    collector_endpoint_version: version as i32,
                    collector_hostname: hostname.clone().unwrap_or_default(),
                    trace_id_128bit: *trace_id_128bit,
                    shared_span_context: shared_span_context.and_then(super::bool_value),
                    ..Default::default()
                }),
            )
        }
        Provider::OpenTelemetry {
            cluster,
            service_name,
        } => (
            "envoy.tracers.opentelemetry",
            pack_any(OpenTelemetryConfig {
                grpc_service: Some(GrpcService {
                    target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                        grpc_service::EnvoyGrpc {
                            cluster_name: cluster.clone(),
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                }),
                service_name: service_name.clone(),
                ..Default::default()
            }),
        ),
        Provider::Datadog {
            cluster,
            service_name,
            hostname,
        } => (
            "envoy.tracers.datadog",
            pack_any(DatadogConfig {
                collector_cluster: cluster.clone(),
                service_name: service_name.clone(),
                collector_hostname: hostname.clone().unwrap_or_default(),
                ..Default::default()
            }),
        ),
    };
    Http {
        name: name.to_owned(),
        config_type: Some(http::ConfigType::TypedConfig(config)),
    }
}

fn custom_tag(t: &CustomTag) -> EnvoyTag {
    use custom_tag::Type;
    let value = match &t.value {
        TagValue::Literal(value) => Type::Literal(custom_tag::Literal {
            value: value.clone(),
        }),
        TagValue::Environment { name, default } => Type::Environment(custom_tag::Environment {
            name: name.clone(),
            default_value: default.clone(),
        }),
        TagValue::RequestHeader { name, default } => Type::RequestHeader(custom_tag::Header {
            name: name.clone(),
            default_value: default.clone(),
        }),
    };
    EnvoyTag {
        tag: t.tag.clone(),
        r#type: Some(value),
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::trace::v3::ZipkinConfig;
    use prost::Message;

    use super::*;
    use crate::ir::tracing::Sampling;

    /// Emissary's Zipkin defaults and a header tag become Envoy's fields, the upstream call a
    /// span of its own.
    #[test]
    fn a_zipkin_tracer_is_envoys_zipkin_config_on_the_connection_manager() {
        let t = Tracing {
            provider: Provider::Zipkin {
                cluster: "zipkin-cluster".into(),
                endpoint: "/api/v2/spans".into(),
                proto: false,
                hostname: None,
                trace_id_128bit: true,
                shared_span_context: Some(false),
            },
            sampling: Sampling {
                client: None,
                random: Some(0),
                overall: Some(50),
            },
            custom_tags: vec![CustomTag {
                tag: "tenant".into(),
                value: TagValue::RequestHeader {
                    name: "x-tenant".into(),
                    default: "none".into(),
                },
            }],
        };
        let hcm = hcm_tracing(&t);
        assert_eq!(hcm.client_sampling, None);
        assert_eq!(hcm.random_sampling, Some(Percent { value: 0.0 }));
        assert_eq!(hcm.overall_sampling, Some(Percent { value: 50.0 }));
        assert_eq!(hcm.spawn_upstream_span, super::super::bool_value(true));
        assert_eq!(hcm.custom_tags[0].tag, "tenant");
        let provider = hcm.provider.expect("a provider");
        assert_eq!(provider.name, "envoy.tracers.zipkin");
        let Some(http::ConfigType::TypedConfig(any)) = provider.config_type else {
            panic!("a typed config");
        };
        let zipkin = ZipkinConfig::decode(&any.value[..]).expect("a ZipkinConfig");
        assert_eq!(zipkin.collector_cluster, "zipkin-cluster");
        assert_eq!(zipkin.collector_endpoint, "/api/v2/spans");
        assert_eq!(
            zipkin.collector_endpoint_version,
            zipkin_config::CollectorEndpointVersion::HttpJson as i32
        );
        assert!(zipkin.trace_id_128bit);
        assert_eq!(zipkin.shared_span_context, super::super::bool_value(false));
    }
}
