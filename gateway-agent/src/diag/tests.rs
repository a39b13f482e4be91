//! The page's data from resources, the IR and what Envoy said: the table a user reads.

use std::sync::Arc;

use legate_crds::loader::load_str;
use pretty_assertions::assert_eq;

use super::{Gateway, Inputs, Page, ResourceName, health, page};
use crate::{
    ir::{self, Settings},
    source::SourceSnapshot,
    xds::{AckStatus, Nack},
};

const YAML: &str = r#"---
apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {name: http, namespace: default}
spec: {port: 8080, protocol: HTTP, securityModel: INSECURE, hostBinding: {namespace: {from: ALL}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: example, namespace: default}
spec: {hostname: example.com, requestPolicy: {insecure: {action: Route}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: short, namespace: default}
spec: {hostname: example.com, prefix: /api/, service: "api:8080"}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: long, namespace: default}
spec: {hostname: example.com, prefix: /api/v2/, service: "api-v2:8080", rewrite: /v2/, headers: {x-team: a}}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: canary, namespace: default}
spec: {hostname: example.com, prefix: /api/, service: "api-canary:8080", weight: 10}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: bad, namespace: default}
spec: {hostname: example.com, prefix: "/x/([0-9", prefix_regex: true, service: "api:8080"}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: stray, namespace: default}
spec: {hostname: stray.example.org, prefix: /stray/, service: "api:8080"}
"#;

fn inputs_page(acks: &AckStatus, published: &str, health: Option<&health::Health>) -> Page {
    let loaded = load_str("test.yaml", YAML).unwrap();
    let ir = ir::build(&loaded.resources, &Settings::default());
    let snapshot = SourceSnapshot {
        resources: loaded.resources.into_iter().map(Arc::new).collect(),
        ..SourceSnapshot::default()
    };
    page(&Inputs {
        snapshot: &snapshot,
        ir: &ir,
        published: Some(published),
        acks,
        gateway: Gateway {
            source: "directory test".into(),
            ambassador_id: "default".into(),
            replica: "r".into(),
        },
        health,
    })
}

fn acked(version: &str) -> AckStatus {
    AckStatus {
        acked_version: Some(version.into()),
        last_nack: None,
        connected: 1,
    }
}

#[test]
fn routes_are_listed_in_envoys_order_with_their_match_action_and_mapping() {
    let p = inputs_page(&acked("v1"), "v1", None);
    assert_eq!(p.listeners.len(), 1);
    let host = &p.listeners[0].hosts[0];
    assert_eq!(host.domains, ["example.com"]);
    let rows: Vec<(usize, &str, &str, &str, Option<&str>)> = host
        .routes
        .iter()
        .map(|r| {
            (
                r.order,
                r.source.name.as_str(),
                r.path.as_str(),
                r.action.as_str(),
                r.canary.as_deref(),
            )
        })
        .collect();
    // Longest prefix first (Emissary's route weight); the canary before the rest of its group.
    assert_eq!(rows.len(), 3, "{rows:#?}");
    assert_eq!(rows[0].1, "long");
    assert_eq!(rows[0].2, "prefix /api/v2/");
    assert!(rows[0].3.starts_with("forward to "), "{rows:?}");
    assert_eq!(host.routes[0].rewrite.as_deref(), Some("prefix → /v2/"));
    assert!(
        host.routes[0].headers.contains(&"x-team=a".to_owned()),
        "{:?}",
        host.routes[0].headers
    );
    assert_eq!((rows[1].1, rows[1].4), ("canary", Some("weight 10%")));
    assert_eq!((rows[2].1, rows[2].4), ("short", Some("the rest")));
}

#[test]
fn errors_come_first_with_their_reason_and_the_rest_are_programmed_once_acknowledged() {
    let p = inputs_page(&acked("v1"), "v1", None);
    let first: Vec<(&str, &str, &str)> = p
        .resources
        .iter()
        .take_while(|r| r.error)
        .map(|r| {
            (
                r.name.as_str(),
                r.accepted.reason.as_str(),
                r.programmed.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        first,
        [
            ("bad", "Invalid", "Invalid"),
            ("stray", "Accepted", "NoMatchingHost")
        ]
    );
    assert_eq!(p.summary.errors, 2);
    let short = p.resources.iter().find(|r| r.name == "short").unwrap();
    assert_eq!(short.programmed.status, "True");
    assert!(!short.error);
}

#[test]
fn a_refused_configuration_is_shown_and_marks_every_resource() {
    let acks = AckStatus {
        acked_version: Some("v1".into()),
        last_nack: Some(Nack {
            type_url: "cds".into(),
            version: "x".into(),
            config_version: "v2".into(),
            message: "port in use".into(),
        }),
        connected: 1,
    };
    let p = inputs_page(&acks, "v2", None);
    assert_eq!(
        p.envoy.refused.as_deref(),
        Some("configuration v2 (cds): port in use")
    );
    let short = p.resources.iter().find(|r| r.name == "short").unwrap();
    assert_eq!(short.programmed.reason, "Refused");
    assert!(short.error);
}

#[test]
fn clusters_carry_envoys_health_and_emissarys_colours() {
    let p = inputs_page(&acked("v1"), "v1", None);
    let cluster = p
        .clusters
        .iter()
        .find(|c| c.used_by.iter().any(|u| u.name == "long"))
        .unwrap()
        .name
        .clone();
    let health = health::Health {
        clusters: [(
            cluster.clone(),
            vec![health::EndpointHealth {
                address: "10.0.0.1:8080".into(),
                health: "healthy".into(),
                requests: 20,
                errors: 5,
            }],
        )]
        .into(),
    };
    let p = inputs_page(&acked("v1"), "v1", Some(&health));
    let c = p.clusters.iter().find(|c| c.name == cluster).unwrap();
    assert_eq!(c.upstream, "api-v2:8080");
    assert_eq!(c.success_rate, Some(75.0));
    assert_eq!(c.colour, "yellow");
    assert_eq!(
        c.used_by,
        [ResourceName {
            kind: "Mapping".into(),
            namespace: "default".into(),
            name: "long".into()
        }]
    );
    let idle = p.clusters.iter().find(|c| c.name != cluster).unwrap();
    assert_eq!((idle.success_rate, idle.colour), (None, "grey"));
}
