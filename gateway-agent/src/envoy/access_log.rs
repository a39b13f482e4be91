//! IR access logs → the access loggers of every listener: the Module's file access log, as
//! Emissary writes it (`envoy/v3/v3listener.py` `access_log`), with Envoy's current
//! `log_format`, then one gRPC logger per LogService (`http_grpc` or `tcp_grpc`), as Emissary
//! puts them before the file log on every HTTP connection manager. TCPMappings' `tcp_proxy`
//! gets the same (its own format, the `tcp` LogServices).
//!
//! The JSON format's fields are a `google.protobuf.Struct`, a map prost writes in hash order;
//! the access log is encoded here with them in key order, as a listener must encode the same
//! every time (a changed listener drains its connections). The gRPC loggers' messages have no
//! map.

use envoy_types::pb::{
    envoy::{
        config::{
            accesslog::v3::{AccessLog as EnvoyAccessLog, access_log},
            core::v3::{
                ApiVersion, DataSource, GrpcService, SubstitutionFormatString, data_source,
                grpc_service, substitution_format_string,
            },
        },
        extensions::access_loggers::{
            file::v3::{FileAccessLog, file_access_log},
            grpc::v3::{
                CommonGrpcAccessLogConfig, HttpGrpcAccessLogConfig, TcpGrpcAccessLogConfig,
            },
        },
    },
    google::protobuf::{Any, UInt32Value, Value, value},
};
use prost::{Message, Name, encoding};

use super::{duration, length_delimited};
use crate::ir::{
    access_log::{AccessLog, Format},
    log_service::{Driver, GrpcLog},
};

/// Every access logger of a listener: the LogServices' in order, then the file one, as
/// Emissary lists them.
pub(super) fn access_logs(
    file_log: &AccessLog,
    grpc: &[std::sync::Arc<GrpcLog>],
) -> Vec<EnvoyAccessLog> {
    grpc.iter()
        .map(|g| grpc_log(g))
        .chain([access_log(file_log)])
        .collect()
}

fn access_log(log: &AccessLog) -> EnvoyAccessLog {
    EnvoyAccessLog {
        name: "envoy.access_loggers.file".to_owned(),
        config_type: Some(access_log::ConfigType::TypedConfig(file(log))),
        ..Default::default()
    }
}

/// A LogService's logger (Emissary's `IRLogService.get_common_config` and the headers
/// `v3listener.py` adds for driver `http`).
fn grpc_log(g: &GrpcLog) -> EnvoyAccessLog {
    let common_config = Some(CommonGrpcAccessLogConfig {
        log_name: g.log_name.clone(),
        grpc_service: Some(GrpcService {
            target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                grpc_service::EnvoyGrpc {
                    cluster_name: g.cluster.clone(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        transport_api_version: ApiVersion::V3 as i32,
        buffer_flush_interval: Some(duration(g.flush_interval)),
        buffer_size_bytes: Some(UInt32Value {
            value: g.buffer_bytes,
        }),
        ..Default::default()
    });
    let (name, config) = match g.driver {
        Driver::Http => (
            "envoy.access_loggers.http_grpc",
            Any {
                type_url: HttpGrpcAccessLogConfig::type_url(),
                value: HttpGrpcAccessLogConfig {
                    common_config,
                    additional_request_headers_to_log: g.request_headers.clone(),
                    additional_response_headers_to_log: g.response_headers.clone(),
                    additional_response_trailers_to_log: g.trailer_headers.clone(),
                }
                .encode_to_vec(),
            },
        ),
        Driver::Tcp => (
            "envoy.access_loggers.tcp_grpc",
            Any {
                type_url: TcpGrpcAccessLogConfig::type_url(),
                value: TcpGrpcAccessLogConfig { common_config }.encode_to_vec(),
            },
        ),
    };
    EnvoyAccessLog {
        name: name.to_owned(),
        config_type: Some(access_log::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}

fn file(log: &AccessLog) -> Any {
    let fields = match &log.format {
        Format::Text(text) => {
            // Envoy writes the format as it is: the line ends with it.
            let format = SubstitutionFormatString {
                format: Some(substitution_format_string::Format::TextFormatSource(
                    DataSource {
                        specifier: Some(data_source::Specifier::InlineString(
                            [text.as_str(), "\n"].concat(),
                        )),
                        ..Default::default()
                    },
                )),
                ..Default::default()
            };
            let message = FileAccessLog {
                path: log.path.clone(),
                access_log_format: Some(file_access_log::AccessLogFormat::LogFormat(format)),
            };
            return Any {
                type_url: FileAccessLog::type_url(),
                value: message.encode_to_vec(),
            };
        }
        // Envoy's `json_format` writes numbers as numbers in both (`json` in Emissary writes
        // every value as a string, through a field Envoy deprecated).
        Format::Json(fields) | Format::TypedJson(fields) => fields,
    };
    // google.protobuf.Struct { fields (1): map<string, Value> }, in key order.
    let values: std::collections::BTreeMap<String, Value> = fields
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                Value {
                    kind: Some(value::Kind::StringValue(v.clone())),
                },
            )
        })
        .collect();
    let mut structure = Vec::new();
    encoding::btree_map::encode(
        encoding::string::encode,
        encoding::string::encoded_len,
        encoding::message::encode,
        encoding::message::encoded_len,
        1,
        &values,
        &mut structure,
    );
    // SubstitutionFormatString { json_format (2): Struct }.
    let mut format = Vec::new();
    length_delimited(2, &structure, &mut format);
    // FileAccessLog { path (1), log_format (5) }, in field order.
    let mut value = FileAccessLog {
        path: log.path.clone(),
        access_log_format: None,
    }
    .encode_to_vec();
    length_delimited(5, &format, &mut value);
    debug_assert!(FileAccessLog::decode(&value[..]).is_ok());
    Any {
        type_url: FileAccessLog::type_url(),
        value,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Every build of the same JSON format is the same bytes, and they read back as Envoy's
    /// message with every field.
    #[test]
    fn a_json_format_encodes_in_key_order_and_decodes_whole() {
        let fields: BTreeMap<String, String> = (0..20)
            .map(|i| (format!("f{i}"), format!("%REQ(x-{i})%")))
            .collect();
        let log = AccessLog {
            path: "/dev/fd/1".into(),
            format: Format::Json(fields.clone()),
        };
        let first = file(&log);
        for _ in 0..10 {
            assert_eq!(file(&log), first);
        }
        let decoded = FileAccessLog::decode(&first.value[..]).unwrap();
        let Some(file_access_log::AccessLogFormat::LogFormat(SubstitutionFormatString {
            format: Some(substitution_format_string::Format::JsonFormat(s)),
            ..
        })) = decoded.access_log_format
        else {
            panic!("a JSON format: {decoded:?}");
        };
        let back: BTreeMap<String, String> = s
            .fields
            .into_iter()
            .map(|(k, v)| match v.kind {
                Some(value::Kind::StringValue(v)) => (k, v),
                other => panic!("{k}: {other:?}"),
            })
            .collect();
        assert_eq!(back, fields);
        assert_eq!(decoded.path, "/dev/fd/1");
    }
}
