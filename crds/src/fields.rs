//! Field types shared by several kinds: bounded integers, Emissary's loosely typed values
//! (`BoolOrString`, added headers) and `ambassador_id`.
//!
//! Each type carries its own schema and its own deserialization check, so the API server (from
//! the CRD) and the file loader (from serde) refuse the same values with the same bounds.

use std::{borrow::Cow, fmt};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An integer that must lie in `MIN..=MAX`: the bound is in the CRD schema and in the loader.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bounded<const MIN: i64, const MAX: i64>(i64);

/// A share of traffic, `0..=100` (`weight`).
pub type Percent = Bounded<0, 100>;
/// A duration in milliseconds (`timeout_ms` and friends); never negative.
pub type Millis = Bounded<0, { u32::MAX as i64 }>;
/// A TCP port.
pub type Port = Bounded<1, 65535>;
/// A count of things (retries, connections, replicas); never negative.
pub type Count = Bounded<0, { i32::MAX as i64 }>;

impl<const MIN: i64, const MAX: i64> Bounded<MIN, MAX> {
    /// Checks the bound; the error reads as the end of "field: ...".
    pub fn new(value: i64) -> Result<Self, String> {
        if value < MIN {
            Err(format!("must be at least {MIN}, got {value}"))
        } else if value > MAX {
            Err(format!("must be at most {MAX}, got {value}"))
        } else {
            Ok(Self(value))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl<const MIN: i64, const MAX: i64> fmt::Debug for Bounded<MIN, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<const MIN: i64, const MAX: i64> fmt::Display for Bounded<MIN, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<const MIN: i64, const MAX: i64> Serialize for Bounded<MIN, MAX> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

impl<'de, const MIN: i64, const MAX: i64> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::new(i64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl<const MIN: i64, const MAX: i64> JsonSchema for Bounded<MIN, MAX> {
    fn schema_name() -> Cow<'static, str> {
        format!("Integer_{MIN}_to_{MAX}").into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let format = if MIN >= i32::MIN as i64 && MAX <= i32::MAX as i64 {
            "int32"
        } else {
            "int64"
        };
        json_schema!({ "type": "integer", "format": format, "minimum": MIN, "maximum": MAX })
    }
}

/// A value Emissary accepts as a boolean or a string (`tls: true` or `tls: my-context`; v2-style
/// `headers: {x-foo: true}` meaning "present").
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged, expecting = "expected a boolean or a string")]
pub enum BoolOrString {
    Bool(bool),
    String(String),
}

impl JsonSchema for BoolOrString {
    fn schema_name() -> Cow<'static, str> {
        "BoolOrString".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // A structural schema cannot say "bool or string"; keep the value as written and let the
        // loader's type check (serde) and the translator refuse anything else.
        json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
    }
}

/// A header value to add: a plain string, or `{value, append}` (`append` defaults to true, as in
/// Emissary).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "expected a string, or a map with `value` and an optional boolean `append`"
)]
pub enum AddedHeader {
    Value(String),
    Detailed(AddedHeaderSpec),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AddedHeaderSpec {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append: Option<bool>,
}

impl AddedHeader {
    pub fn value(&self) -> &str {
        match self {
            Self::Value(v) => v,
            Self::Detailed(d) => &d.value,
        }
    }

    pub fn append(&self) -> bool {
        match self {
            Self::Value(_) => true,
            Self::Detailed(d) => d.append.unwrap_or(true),
        }
    }
}

impl JsonSchema for AddedHeader {
    fn schema_name() -> Cow<'static, str> {
        "AddedHeader".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
    }
}

/// Which Emissary/Legate instances pay attention to a resource. Absent means `["default"]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct AmbassadorId(pub Vec<String>);

impl AmbassadorId {
    pub const DEFAULT: &'static str = "default";

    /// Emissary's rule: an empty list means `default`.
    pub fn matches(&self, id: &str) -> bool {
        if self.0.is_empty() {
            id == Self::DEFAULT
        } else {
            self.0.iter().any(|i| i == id)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Cluster circuit-breaker thresholds (Mapping, TCPMapping, AuthService, Module).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CircuitBreaker {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending_requests: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<Count>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Default,
    High,
}

/// A key/value map kept as written (`envoy_override`, `modules`): Emissary does not type it.
/// Its schema keeps everything below it, where a plain object would let the API server prune.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UntypedDict(pub serde_json::Map<String, serde_json::Value>);

impl std::ops::Deref for UntypedDict {
    type Target = serde_json::Map<String, serde_json::Value>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl JsonSchema for UntypedDict {
    fn schema_name() -> Cow<'static, str> {
        "UntypedDict".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_names_the_bound_it_breaks() {
        assert_eq!(
            Percent::new(101).unwrap_err(),
            "must be at most 100, got 101"
        );
        assert_eq!(Millis::new(-1).unwrap_err(), "must be at least 0, got -1");
        assert_eq!(Port::new(8080).unwrap().get(), 8080);
    }

    #[test]
    fn ambassador_id_defaults_to_default() {
        assert!(AmbassadorId::default().matches("default"));
        assert!(!AmbassadorId::default().matches("blue"));
        let ids = AmbassadorId(vec!["blue".into(), "green".into()]);
        assert!(ids.matches("green"));
        assert!(!ids.matches("default"));
    }

    #[test]
    fn added_header_append_defaults_to_true() {
        let plain: AddedHeader = serde_json::from_str(r#""v""#).unwrap();
        let detailed: AddedHeader =
            serde_json::from_str(r#"{"value":"v","append":false}"#).unwrap();
        assert!(plain.append());
        assert!(!detailed.append());
        assert_eq!(detailed.value(), "v");
    }
}
