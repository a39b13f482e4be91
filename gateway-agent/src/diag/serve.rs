//! `/diag/` (and Emissary's `/ambassador/v0/diag/`) on the agent's metrics port: the page as
//! HTML, or JSON with `?json=true`;
//! `?errors=true` keeps the resources in error; `?resource=KIND/NAMESPACE/NAME` shows one.
//!
//! The port is on the pod's network, so the page answers callers on the pod's own loopback
//! only (`kubectl port-forward` arrives there), unless the gateway Module says
//! `diagnostics: {allow_non_local: true}`; `enabled: false` switches it off. Emissary's
//! `diagnostics` means the same.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use axum::{
    Router,
    extract::{ConnectInfo, RawQuery, State},
    http::StatusCode,
    response::{Html, IntoResponse, Response},
    routing::get,
};
use tokio::sync::watch;

use super::{Gateway, Inputs, ResourceName, health, html};
use crate::{ir::module::DiagnosticsAccess, status::Built, xds::AckStatus};

/// Where the page is served.
pub const PATH: &str = "/diag/";

/// What the page reads.
#[derive(Clone)]
pub struct Diagnostics {
    pub built: watch::Receiver<Option<Built>>,
    pub acks: watch::Receiver<AckStatus>,
    pub gateway: Gateway,
    /// Envoy's admin interface, on loopback, for the endpoints' health.
    pub envoy_admin: SocketAddr,
    pub http: reqwest::Client,
}

impl Diagnostics {
    pub fn router(self) -> Router {
        Router::new()
            .route(PATH, get(page))
            .route("/diag", get(page))
            // Where Emissary's users look for it.
            .route("/ambassador/v0/diag/", get(page))
            .with_state(self)
    }

    async fn health(&self) -> Option<health::Health> {
        let url = format!("http://{}/clusters?format=json", self.envoy_admin);
        let response = self
            .http
            .get(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()?;
        health::parse(&response.text().await.ok()?).ok()
    }
}

async fn page(
    State(d): State<Diagnostics>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(built) = d.built.borrow().clone() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no configuration built yet\n",
        )
            .into_response();
    };
    if let Err((status, why)) = admit(built.ir.diagnostics, peer) {
        return (status, why).into_response();
    }
    let params = parse_query(query.as_deref().unwrap_or(""));
    let flag = |name: &str| {
        params
            .get(name)
            .is_some_and(|v| v == "true" || v.is_empty())
    };
    let health = d.health().await;
    let acks = d.acks.borrow().clone();
    let mut gateway = d.gateway.clone();
    // On Kubernetes the installation names the gateway's ambassador_id.
    if let Some(g) = &built.snapshot.gateway {
        gateway.ambassador_id.clone_from(&g.ambassador_id);
    }
    let input = Inputs {
        snapshot: &built.snapshot,
        ir: &built.ir,
        published: built.version.as_deref(),
        acks: &acks,
        gateway,
        health: health.as_ref(),
    };
    let page = super::page(&input);
    if let Some(wanted) = params.get("resource") {
        let mut parts = wanted.splitn(3, '/');
        let name = ResourceName {
            kind: parts.next().unwrap_or_default().to_owned(),
            namespace: parts.next().unwrap_or_default().to_owned(),
            name: parts.next().unwrap_or_default().to_owned(),
        };
        return match super::detail(&page, &input, &name) {
            Some(detail) if flag("json") => json(&detail),
            Some(detail) => Html(html::detail(&detail)).into_response(),
            None => (
                StatusCode::NOT_FOUND,
                format!("this gateway knows no resource {wanted:?}\n"),
            )
                .into_response(),
        };
    }
    if flag("json") {
        return json(&page);
    }
    Html(html::page(&page, flag("errors"))).into_response()
}

/// Whether `peer` may read the page.
fn admit(access: DiagnosticsAccess, peer: SocketAddr) -> Result<(), (StatusCode, String)> {
    if !access.enabled {
        return Err((
            StatusCode::NOT_FOUND,
            "diagnostics are off (the gateway Module's diagnostics.enabled: false)\n".to_owned(),
        ));
    }
    if !access.allow_non_local && !peer.ip().is_loopback() {
        return Err((
            StatusCode::FORBIDDEN,
            format!(
                "diagnostics answer callers on the pod's loopback only (kubectl port-forward); \
                 {} is not. The gateway Module's diagnostics.allow_non_local: true opens them.\n",
                peer.ip()
            ),
        ));
    }
    Ok(())
}

fn json(value: &impl serde::Serialize) -> Response {
    match serde_json::to_string_pretty(value) {
        Ok(text) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// `a=b&c` as a map, decoded.
fn parse_query(query: &str) -> HashMap<String, String> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_callers_unless_the_module_allows_others() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let default = DiagnosticsAccess::default();
        assert!(admit(default, local).is_ok());
        assert_eq!(admit(default, remote).unwrap_err().0, StatusCode::FORBIDDEN);
        let open = DiagnosticsAccess {
            allow_non_local: true,
            ..default
        };
        assert!(admit(open, remote).is_ok());
        let off = DiagnosticsAccess {
            enabled: false,
            allow_non_local: true,
        };
        assert_eq!(admit(off, local).unwrap_err().0, StatusCode::NOT_FOUND);
    }

    #[test]
    fn queries_are_decoded() {
        let q = parse_query("resource=Mapping%2Fdefault%2Fa+b&json&bad=%zz%4");
        assert_eq!(q["resource"], "Mapping/default/a b");
        assert_eq!(q["json"], "");
        assert_eq!(q["bad"], "%zz%4");
    }
}
