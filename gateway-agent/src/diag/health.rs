//! Each cluster's endpoints as Envoy sees them: `/clusters?format=json` of its admin interface
//! (on loopback, where the agent already asks it to drain), read when the page is asked for.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Envoy's endpoints, by cluster name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Health {
    pub clusters: BTreeMap<String, Vec<EndpointHealth>>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EndpointHealth {
    pub address: String,
    /// `healthy`, or what Envoy holds against it (`failed active health check`, `ejected by
    /// outlier detection`, its EDS health status).
    pub health: String,
    pub requests: u64,
    /// Requests answered 5xx or reset (`rq_error`).
    pub errors: u64,
}

#[derive(Deserialize)]
struct Clusters {
    #[serde(default)]
    cluster_statuses: Vec<ClusterStatus>,
}

#[derive(Deserialize)]
struct ClusterStatus {
    name: String,
    #[serde(default)]
    host_statuses: Vec<HostStatus>,
}

#[derive(Deserialize)]
struct HostStatus {
    #[serde(default)]
    address: serde_json::Value,
    #[serde(default)]
    stats: Vec<Stat>,
    #[serde(default)]
    health_status: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct Stat {
    name: String,
    /// A 64-bit counter, as a string in protobuf's JSON.
    #[serde(default)]
    value: serde_json::Value,
}

/// Reads Envoy's `/clusters?format=json`.
pub fn parse(json: &str) -> Result<Health, serde_json::Error> {
    let clusters: Clusters = serde_json::from_str(json)?;
    Ok(Health {
        clusters: clusters
            .cluster_statuses
            .into_iter()
            .map(|c| (c.name, c.host_statuses.iter().map(endpoint).collect()))
            .collect(),
    })
}

fn endpoint(h: &HostStatus) -> EndpointHealth {
    let socket = &h.address["socket_address"];
    let address = match (socket["address"].as_str(), socket["port_value"].as_u64()) {
        (Some(ip), Some(port)) => format!("{ip}:{port}"),
        _ => h.address.to_string(),
    };
    let stat = |name: &str| {
        h.stats
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| match &s.value {
                serde_json::Value::String(v) => v.parse().ok(),
                v => v.as_u64(),
            })
            .unwrap_or(0)
    };
    // Envoy lists the flags that hold against the host as `true` fields; the EDS status is a
    // string (HEALTHY unless the control plane said otherwise).
    let mut against: Vec<String> = h
        .health_status
        .iter()
        .filter(|(_, v)| v.as_bool() == Some(true))
        .map(|(flag, _)| flag.replace('_', " "))
        .collect();
    if let Some(eds) = h
        .health_status
        .get("eds_health_status")
        .and_then(|v| v.as_str())
        && eds != "HEALTHY"
    {
        against.push(format!("EDS {}", eds.to_lowercase()));
    }
    EndpointHealth {
        address,
        health: if against.is_empty() {
            "healthy".to_owned()
        } else {
            against.join(", ")
        },
        requests: stat("rq_total"),
        errors: stat("rq_error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_envoys_clusters_json() {
        let json = r#"{"cluster_statuses": [
            {"name": "app", "host_statuses": [
                {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 8080}},
                 "stats": [{"name": "rq_total", "value": "10", "type": "COUNTER"},
                           {"name": "rq_error", "value": "2", "type": "COUNTER"},
                           {"name": "cx_active", "type": "GAUGE"}],
                 "health_status": {"eds_health_status": "HEALTHY"}},
                {"address": {"socket_address": {"address": "10.0.0.2", "port_value": 8080}},
                 "health_status": {"eds_health_status": "HEALTHY", "failed_active_health_check": true}}
            ]},
            {"name": "empty"}
        ]}"#;
        let health = parse(json).unwrap();
        assert_eq!(
            health.clusters["app"],
            vec![
                EndpointHealth {
                    address: "10.0.0.1:8080".into(),
                    health: "healthy".into(),
                    requests: 10,
                    errors: 2,
                },
                EndpointHealth {
                    address: "10.0.0.2:8080".into(),
                    health: "failed active health check".into(),
                    requests: 0,
                    errors: 0,
                },
            ]
        );
        assert_eq!(health.clusters["empty"], vec![]);
        assert!(parse("not json").is_err());
    }
}
