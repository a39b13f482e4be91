//! gRPC at the edge: the gateway Module's `enable_grpc_http11_bridge`, `enable_grpc_web` and
//! `grpc_stats`, validated into the HTTP filters every listener runs.
//!
//! Emissary (`python/ambassador/src/ambassador/ir/irambassador.py`, `envoy/v3/v3httpfilter.py`
//! `V3HTTPFilter_grpc_http1_bridge`, `_grpc_web`, `_grpc_stats`) adds, in this order and ahead of
//! every other filter:
//! - `envoy.filters.http.grpc_http1_bridge`: an HTTP/1.1 client's gRPC request goes upstream
//!   over HTTP/2 (the Mapping's `grpc: true`), its status comes back in the response headers;
//! - `envoy.filters.http.grpc_web`: a browser's gRPC-Web request (`application/grpc-web*`) is
//!   translated to gRPC and its answer, trailers included, back to gRPC-Web;
//! - `envoy.filters.http.grpc_stats`: `services` → `individual_method_stats_allowlist`, else
//!   `stats_for_all_methods: all_methods` (default false); `upstream_stats` →
//!   `enable_upstream_stats` (default false).
//!
//! One departure: Emissary adds the bridge or gRPC-Web filter when the key is present
//! (`"enable_grpc_web" in amod`), so `enable_grpc_web: false` turns it on; here `false` means
//! off, as written.

use legate_crds::{Module, module::GrpcStats as GrpcStatsConfig};

use super::Rejection;

/// The gRPC filters every HTTP listener runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrpcFilters {
    pub http1_bridge: bool,
    pub web: bool,
    pub stats: Option<GrpcStats>,
}

/// What `grpc_stats` counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcStats {
    pub methods: StatsMethods,
    /// Upstream request times are counted too.
    pub upstream_stats: bool,
}

/// Which methods get stats of their own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatsMethods {
    /// Every service and method (`all_methods: true`), or none by name (`false`: Envoy counts
    /// them all under `grpc.*` without their names).
    All(bool),
    /// Only these services, each with only these methods.
    Only(Vec<StatsService>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsService {
    pub name: String,
    pub method_names: Vec<String>,
}

/// The gateway's gRPC filters; a `grpc_stats` Envoy would refuse is rejected on the Module
/// (naming the field) and left out, and the other settings apply.
pub fn gateway_grpc(module: Option<&Module>, rejections: &mut Vec<Rejection>) -> GrpcFilters {
    let Some(module) = module else {
        return GrpcFilters::default();
    };
    let c = &module.spec.config;
    let stats = c.grpc_stats.as_ref().and_then(|s| match grpc_stats(s) {
        Ok(stats) => Some(stats),
        Err(problem) => {
            rejections.push(super::module::invalid(module, problem));
            None
        }
    });
    GrpcFilters {
        http1_bridge: c.enable_grpc_http11_bridge == Some(true),
        web: c.enable_grpc_web == Some(true),
        stats,
    }
}

/// `grpc_stats`, or what Envoy would refuse in it: a service or method with an empty name, a
/// service without methods.
pub fn grpc_stats(s: &GrpcStatsConfig) -> Result<GrpcStats, String> {
    let methods = match &s.services {
        Some(services) => StatsMethods::Only(
            services
                .iter()
                .enumerate()
                .map(|(i, service)| {
                    let field = format!("spec.config.grpc_stats.services[{i}]");
                    if service.name.is_empty() {
                        return Err(format!("{field}.name: must not be empty"));
                    }
                    let method_names = service.method_names.clone().unwrap_or_default();
                    if method_names.is_empty() {
                        return Err(format!(
                            "{field}.method_names: list at least one method (Envoy requires it)"
                        ));
                    }
                    if let Some(j) = method_names.iter().position(String::is_empty) {
                        return Err(format!("{field}.method_names[{j}]: must not be empty"));
                    }
                    Ok(StatsService {
                        name: service.name.clone(),
                        method_names,
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        None => StatsMethods::All(s.all_methods == Some(true)),
    };
    Ok(GrpcStats {
        methods,
        upstream_stats: s.upstream_stats == Some(true),
    })
}

#[cfg(test)]
mod tests {
    use legate_crds::{
        Resource,
        module::{GrpcService, GrpcStats as Config},
    };

    use super::*;

    #[test]
    fn services_are_an_allowlist_and_otherwise_all_methods_decides() {
        let all = grpc_stats(&Config {
            all_methods: Some(true),
            ..Config::default()
        });
        assert_eq!(
            all,
            Ok(GrpcStats {
                methods: StatsMethods::All(true),
                upstream_stats: false
            })
        );
        // Emissary: `services` wins over `all_methods`.
        let only = grpc_stats(&Config {
            all_methods: Some(true),
            services: Some(vec![GrpcService {
                name: "grpc.health.v1.Health".into(),
                method_names: Some(vec!["Check".into()]),
            }]),
            upstream_stats: Some(true),
        })
        .unwrap();
        assert!(only.upstream_stats);
        assert_eq!(
            only.methods,
            StatsMethods::Only(vec![StatsService {
                name: "grpc.health.v1.Health".into(),
                method_names: vec!["Check".into()]
            }])
        );
    }

    #[test]
    fn empty_names_are_refused_naming_the_field() {
        let bad = Config {
            services: Some(vec![
                GrpcService {
                    name: "a.B".into(),
                    method_names: Some(vec!["M".into()]),
                },
                GrpcService {
                    name: "a.C".into(),
                    method_names: Some(vec!["M".into(), String::new()]),
                },
            ]),
            ..Config::default()
        };
        assert_eq!(
            grpc_stats(&bad),
            Err("spec.config.grpc_stats.services[1].method_names[1]: must not be empty".into())
        );
        let no_methods = Config {
            services: Some(vec![GrpcService {
                name: "a.B".into(),
                method_names: None,
            }]),
            ..Config::default()
        };
        assert!(
            grpc_stats(&no_methods)
                .unwrap_err()
                .contains("at least one method")
        );
    }

    #[test]
    fn a_bad_grpc_stats_is_rejected_on_the_module_and_the_other_settings_apply() {
        let Resource::Module(module) = crate::ir::module::fixtures::module(
            "ambassador",
            "gw",
            "enable_grpc_web: true\ngrpc_stats: {services: [{name: a.B}]}",
        ) else {
            unreachable!()
        };
        let mut rejections = Vec::new();
        let filters = gateway_grpc(Some(&module), &mut rejections);
        assert_eq!(
            filters,
            GrpcFilters {
                http1_bridge: false,
                web: true,
                stats: None
            }
        );
        assert_eq!(rejections.len(), 1);
        assert_eq!(rejections[0].object.name, "ambassador");
        assert!(
            rejections[0]
                .message
                .contains("spec.config.grpc_stats.services[0].method_names"),
            "{:?}",
            rejections[0]
        );
    }
}
