//! IR access log → the HTTP connection manager's file access log, as Emissary writes it
//! (`envoy/v3/v3listener.py` `access_log`), with Envoy's current `log_format`.
//!
//! The JSON format's fields are a `google.protobuf.Struct`, a map prost writes in hash order;
//! the access log is encoded here with them in key order, as a listener must encode the same
//! every time (a changed listener drains its connections).

use envoy_types::pb::{
    envoy::{
        config::{
            accesslog::v3::{AccessLog as EnvoyAccessLog, access_log},
            core::v3::{
                DataSource, SubstitutionFormatString, data_source, substitution_format_string,
            },
        },
        extensions::access_loggers::file::v3::{FileAccessLog, file_access_log},
    },
    google::protobuf::{Any, Value, value},
};
use prost::{Message, Name, encoding};

use super::length_delimited;
use crate::ir::access_log::{AccessLog, Format};

pub(super) fn access_log(log: &AccessLog) -> EnvoyAccessLog {
    EnvoyAccessLog {
        name: "envoy.access_loggers.file".to_owned(),
        config_type: Some(access_log::ConfigType::TypedConfig(file(log))),
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
