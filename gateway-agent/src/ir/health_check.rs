//! A Mapping's `health_checks`: active health checks of its upstream's endpoints, as Emissary
//! builds them (`ir/irhealthchecks.py`, `envoy/v3/v3cluster.py`): each entry is one Envoy
//! `HealthCheck` with Emissary's defaults (`timeout` 3s, `interval` 5s, `healthy_threshold` 1,
//! `unhealthy_threshold` 2), asking either over HTTP (`path`, `hostname`, headers to add and
//! remove, `expected_statuses` ranges with both ends included) or over gRPC
//! (`grpc.health.v1.Health/Check` with `upstream_name` as the service, `authority`).
//!
//! Envoy checks a cluster that has had no traffic yet once a minute (`no_traffic_interval`), and
//! Emissary leaves it so: a check's first answer then stands for a minute, whatever `interval`
//! says. Here `interval` is also the interval without traffic, as a user setting it expects.
//!
//! Deliberate differences: Emissary skips a bad entry (or a bad range, or bad headers) with an
//! error and keeps the rest; here any bad entry refuses the Mapping naming the field, so that
//! what is served is what was written. Values Envoy would refuse (a zero interval or timeout, a
//! zero threshold, an empty range, a gRPC check of an upstream not spoken to over HTTP/2, where
//! Envoy refuses the whole cluster) refuse the Mapping rather than make Envoy NACK, and so does
//! more than one check: Envoy 1.40 takes several only when each has a name, which the agent's
//! Envoy API cannot give yet.

use std::time::Duration;

use legate_crds::{
    fields::Count,
    mapping::{GrpcHealthCheck, HealthCheck as Spec, HttpHealthCheck},
};

use super::{
    envoy_rules::{self, Side},
    mapping::parse_duration,
};

/// Emissary's defaults (`irhealthchecks.py`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_HEALTHY_THRESHOLD: u32 = 1;
pub const DEFAULT_UNHEALTHY_THRESHOLD: u32 = 2;

/// One active health check of every endpoint of a cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HealthCheck {
    pub timeout: Duration,
    pub interval: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    pub probe: Probe,
}

/// What a check asks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Probe {
    Http(HttpProbe),
    Grpc {
        /// The `service` of the `HealthCheckRequest` (`upstream_name`).
        service_name: String,
        /// The check's `:authority`; `None`: Envoy's default (the cluster's name).
        authority: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpProbe {
    pub path: String,
    /// The check's `Host`; `None`: Envoy's default (the cluster's name).
    pub host: Option<String>,
    /// Name, value, append.
    pub add_headers: Vec<(String, String, bool)>,
    pub remove_headers: Vec<String>,
    /// Statuses that pass, as `[start, end)` for Envoy (`max` + 1); empty: Envoy's 200 only.
    pub expected_statuses: Vec<(u16, u16)>,
}

/// A Mapping's `health_checks` (none when unset or empty). `http2`: the cluster speaks HTTP/2
/// (`grpc: true`), which a gRPC check needs.
pub fn health_checks(checks: Option<&[Spec]>, http2: bool) -> Result<Vec<HealthCheck>, String> {
    let checks = checks.unwrap_or_default();
    // Envoy refuses several checks on a cluster unless each has a `name`, a field the Envoy API
    // the agent is built with does not have yet.
    if checks.len() > 1 {
        return Err(format!(
            "health_checks: {} checks; Envoy takes several only when each is named, which this              gateway cannot do yet: give one",
            checks.len()
        ));
    }
    checks
        .iter()
        .enumerate()
        .map(|(i, c)| health_check(&format!("health_checks[{i}]"), c, http2))
        .collect()
}

fn health_check(field: &str, c: &Spec, http2: bool) -> Result<HealthCheck, String> {
    let positive = |name: &str, value: &Option<String>, default: Duration| match value {
        None => Ok(default),
        Some(text) => match parse_duration(&format!("{field}.{name}"), text)? {
            d if d.is_zero() => Err(format!(
                "{field}.{name}: {text:?} must be above zero; Envoy refuses a zero {name}"
            )),
            d => Ok(d),
        },
    };
    let threshold = |name: &str, value: Option<Count>, default: u32| match value {
        None => Ok(default),
        // `Count` is bounded to 0..=i32::MAX by its schema and its loader.
        Some(v) => match u32::try_from(v.get()) {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{field}.{name}: {v} must be at least 1")),
        },
    };
    let location = format!("{field}.health_check");
    let probe = match (&c.health_check.http, &c.health_check.grpc) {
        (Some(http), None) => Probe::Http(http_probe(&format!("{location}.http"), http)?),
        (None, Some(grpc)) => grpc_probe(&format!("{location}.grpc"), grpc, http2)?,
        (Some(_), Some(_)) => {
            return Err(format!(
                "{location}: both http and grpc are set; set exactly one"
            ));
        }
        (None, None) => {
            return Err(format!(
                "{location}: neither http nor grpc is set; set exactly one"
            ));
        }
    };
    Ok(HealthCheck {
        timeout: positive("timeout", &c.timeout, DEFAULT_TIMEOUT)?,
        interval: positive("interval", &c.interval, DEFAULT_INTERVAL)?,
        healthy_threshold: threshold(
            "healthy_threshold",
            c.healthy_threshold,
            DEFAULT_HEALTHY_THRESHOLD,
        )?,
        unhealthy_threshold: threshold(
            "unhealthy_threshold",
            c.unhealthy_threshold,
            DEFAULT_UNHEALTHY_THRESHOLD,
        )?,
        probe,
    })
}

fn http_probe(field: &str, h: &HttpHealthCheck) -> Result<HttpProbe, String> {
    if !h.path.starts_with('/') {
        return Err(format!(
            "{field}.path: {:?} must start with /, as a request path does",
            h.path
        ));
    }
    envoy_rules::header_value(&format!("{field}.path"), &h.path)?;
    let host = non_empty(h.hostname.as_deref());
    if let Some(host) = host {
        envoy_rules::header_value(&format!("{field}.hostname"), host)?;
    }
    let add_field = format!("{field}.add_request_headers");
    let add_headers = h
        .add_request_headers
        .iter()
        .flatten()
        .map(|(name, value)| {
            envoy_rules::header_name(&add_field, name, Side::Request)?;
            envoy_rules::added_header_value(&format!("{add_field}.{name}"), value.value())?;
            Ok((name.clone(), value.value().to_owned(), value.append()))
        })
        .collect::<Result<_, String>>()?;
    let remove_field = format!("{field}.remove_request_headers");
    let remove_headers = h.remove_request_headers.clone().unwrap_or_default();
    for name in &remove_headers {
        envoy_rules::header_name(&remove_field, name, Side::Request)?;
    }
    let expected_statuses = h
        .expected_statuses
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, r)| {
            // `Bounded<100, 599>` by its schema and its loader: both fit, and `max + 1` too.
            let (min, max) = (r.min.get(), r.max.get());
            match (u16::try_from(min), u16::try_from(max)) {
                (Ok(start), Ok(end)) if min <= max => Ok((start, end.saturating_add(1))),
                _ => Err(format!(
                    "{field}.expected_statuses[{i}]: min {min} is above max {max}, an empty \
                     range; both ends are included, so one status is min and max alike"
                )),
            }
        })
        .collect::<Result<_, String>>()?;
    Ok(HttpProbe {
        path: h.path.clone(),
        host: host.map(str::to_owned),
        add_headers,
        remove_headers,
        expected_statuses,
    })
}

fn grpc_probe(field: &str, g: &GrpcHealthCheck, http2: bool) -> Result<Probe, String> {
    // Envoy refuses a cluster whose gRPC health check it cannot speak HTTP/2 to.
    if !http2 {
        return Err(format!(
            "{field}: a gRPC health check needs the upstream spoken to over HTTP/2; set grpc: true"
        ));
    }
    let authority = non_empty(g.authority.as_deref());
    if let Some(authority) = authority {
        envoy_rules::header_value(&format!("{field}.authority"), authority)?;
    }
    Ok(Probe::Grpc {
        service_name: g.upstream_name.clone(),
        authority: authority.map(str::to_owned),
    })
}

/// An empty string asks for the default, as in Emissary (which tests for truth).
fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn parse(yaml: &str, http2: bool) -> Result<Vec<HealthCheck>, String> {
        let specs: Vec<Spec> = serde_saphyr::from_str(yaml).expect("a health_checks list");
        health_checks(Some(&specs), http2)
    }

    #[test]
    fn emissarys_defaults_fill_what_a_check_leaves_out() {
        assert_eq!(
            parse("- health_check: {http: {path: /healthz}}", false),
            Ok(vec![HealthCheck {
                timeout: Duration::from_secs(3),
                interval: Duration::from_secs(5),
                healthy_threshold: 1,
                unhealthy_threshold: 2,
                probe: Probe::Http(HttpProbe {
                    path: "/healthz".into(),
                    host: None,
                    add_headers: vec![],
                    remove_headers: vec![],
                    expected_statuses: vec![],
                }),
            }])
        );
    }

    #[test]
    fn every_http_setting_is_carried_and_status_ranges_include_both_ends() {
        let checks = parse(
            r#"
- timeout: 250ms
  interval: 1s
  healthy_threshold: 3
  unhealthy_threshold: 1
  health_check:
    http:
      path: /ready
      hostname: checks.example.com
      add_request_headers: {x-check: ok, x-keep: {value: "1", append: false}}
      remove_request_headers: [x-drop]
      expected_statuses: [{min: 200, max: 204}, {min: 418, max: 418}]
"#,
            false,
        )
        .unwrap();
        assert_eq!(checks[0].timeout, Duration::from_millis(250));
        assert_eq!(checks[0].interval, Duration::from_secs(1));
        assert_eq!(
            (checks[0].healthy_threshold, checks[0].unhealthy_threshold),
            (3, 1)
        );
        assert_eq!(
            checks[0].probe,
            Probe::Http(HttpProbe {
                path: "/ready".into(),
                host: Some("checks.example.com".into()),
                add_headers: vec![
                    ("x-check".into(), "ok".into(), true),
                    ("x-keep".into(), "1".into(), false)
                ],
                remove_headers: vec!["x-drop".into()],
                expected_statuses: vec![(200, 205), (418, 419)],
            })
        );
    }

    #[test]
    fn a_grpc_check_asks_for_its_upstream_name_over_http2_only() {
        let yaml = "- health_check: {grpc: {upstream_name: quote, authority: quote.example}}";
        assert_eq!(
            parse(yaml, true).unwrap()[0].probe,
            Probe::Grpc {
                service_name: "quote".into(),
                authority: Some("quote.example".into())
            }
        );
        let refused = parse(yaml, false).unwrap_err();
        assert!(
            refused.starts_with("health_checks[0].health_check.grpc: ")
                && refused.contains("set grpc: true"),
            "{refused}"
        );
    }

    #[test]
    fn bad_values_refuse_naming_the_field() {
        for (yaml, field, problem) in [
            (
                "- {interval: 0s, health_check: {http: {path: /}}}",
                "health_checks[0].interval",
                "above zero",
            ),
            (
                "- {timeout: 0ms, health_check: {http: {path: /}}}",
                "health_checks[0].timeout",
                "above zero",
            ),
            (
                "- {interval: soon, health_check: {http: {path: /}}}",
                "health_checks[0].interval",
                "not a duration",
            ),
            (
                "- {healthy_threshold: 0, health_check: {http: {path: /}}}",
                "health_checks[0].healthy_threshold",
                "at least 1",
            ),
            (
                "- {unhealthy_threshold: 0, health_check: {http: {path: /}}}",
                "health_checks[0].unhealthy_threshold",
                "at least 1",
            ),
            (
                "- {health_check: {http: {path: /}}}\n- {health_check: {http: {path: /b}}}",
                "health_checks",
                "give one",
            ),
            (
                "- {health_check: {http: {path: healthz}}}",
                "health_checks[0].health_check.http.path",
                "must start with /",
            ),
            (
                "- {health_check: {http: {path: /, expected_statuses: [{min: 300, max: 200}]}}}",
                "health_checks[0].health_check.http.expected_statuses[0]",
                "empty range",
            ),
            (
                "- {health_check: {http: {path: /, add_request_headers: {host: x}}}}",
                "health_checks[0].health_check.http.add_request_headers",
                "cannot be added or removed",
            ),
            (
                "- {health_check: {http: {path: /, remove_request_headers: [\"a b\"]}}}",
                "health_checks[0].health_check.http.remove_request_headers",
                "not a valid header name",
            ),
            (
                "- {health_check: {http: {path: \"/\\n\"}}}",
                "health_checks[0].health_check.http.path",
                "NUL, CR or LF",
            ),
            (
                "- {health_check: {http: {path: /}, grpc: {upstream_name: q}}}",
                "health_checks[0].health_check",
                "both http and grpc",
            ),
            (
                "- {health_check: {}}",
                "health_checks[0].health_check",
                "neither http nor grpc",
            ),
        ] {
            let refused = parse(yaml, true).expect_err(yaml);
            assert!(
                refused.starts_with(&format!("{field}: ")) && refused.contains(problem),
                "{yaml}: {refused}"
            );
        }
    }

    #[test]
    fn no_list_or_an_empty_one_checks_nothing() {
        assert_eq!(health_checks(None, false), Ok(vec![]));
        assert_eq!(parse("[]", false), Ok(vec![]));
    }
}
