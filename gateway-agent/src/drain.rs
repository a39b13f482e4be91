//! Draining a gateway pod before it stops, with no shell in either image.
//!
//! The operator gives both containers of a gateway pod the same preStop hook: an `httpGet` of the
//! agent's `/drain`. The first call asks Envoy (admin interface, pod loopback) to drain its
//! listeners gracefully — every open connection is told to close (HTTP/1.1 `Connection: close`,
//! HTTP/2 GOAWAY) while the listeners still accept — and every call then waits until the drain
//! period is over. The kubelet sends each container SIGTERM only when its hook returns, so Envoy
//! keeps serving while the pod leaves the Service's endpoints, and the agent keeps serving Envoy.
//! (Envoy Gateway's shutdown-manager has the same shape; an `httpGet` hook is what a shell-free
//! image allows, since an `exec` hook needs a program in the container and Envoy has no drain
//! command.)
//!
//! `/drain` listens where `/metrics` does, on the pod's network, so anyone there can call it. On
//! Kubernetes it therefore acts only when this agent's own Pod is being deleted (a
//! `deletionTimestamp`, read from the API server); otherwise it answers 409 and changes nothing.
//! A local agent (`--config-dir`) has no Pod to ask: there it acts only for a caller on loopback
//! (403 otherwise), so a `--metrics-address` open to the network does not let anyone there stop
//! the gateway.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{ConnectInfo, State},
    http::StatusCode,
    routing::get,
};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use thiserror::Error;
use tokio::{sync::Mutex, time::Instant};
use tracing::{info, warn};

/// The path the preStop hooks call.
pub const PATH: &str = "/drain";
/// The same, as kubelets before 1.23 send it: they build the hook's URL as
/// `http://HOST:PORT/` + path, so `/drain` arrives as `//drain`. (They also ignore the status, so
/// a 404 there would skip the drain without a trace.)
const PATH_OLD_KUBELETS: &str = "//drain";

/// Who may start a drain.
// One per process: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Guard {
    /// Only a caller on this machine's loopback: a local agent (`--config-dir`).
    Loopback,
    /// Only while this Pod is being deleted.
    PodDeleted { pods: Api<Pod>, name: String },
}

#[derive(Debug, Error)]
pub enum DrainError {
    #[error("{PATH} answers only callers on loopback; {peer} is not")]
    NotLocal { peer: SocketAddr },
    #[error("pod {name} is not being deleted; {PATH} acts only on a terminating pod")]
    NotTerminating { name: String },
    #[error("cannot read pod {name} to confirm it is being deleted: {source}")]
    PodUnreadable {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("Envoy's admin interface at {address} did not start the drain: {message}")]
    Envoy {
        address: SocketAddr,
        message: String,
    },
}

impl DrainError {
    fn status(&self) -> StatusCode {
        match self {
            Self::NotLocal { .. } => StatusCode::FORBIDDEN,
            Self::NotTerminating { .. } => StatusCode::CONFLICT,
            Self::PodUnreadable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Envoy { .. } => StatusCode::BAD_GATEWAY,
        }
    }
}

/// The drain of this pod's Envoy: started at most once, awaited by every caller.
#[derive(Clone)]
pub struct Drain(Arc<Inner>);

struct Inner {
    envoy_admin: SocketAddr,
    period: Duration,
    guard: Guard,
    /// When the drain started ends; `None` until it starts.
    deadline: Mutex<Option<Instant>>,
    http: reqwest::Client,
}

impl Drain {
    pub fn new(envoy_admin: SocketAddr, period: Duration, guard: Guard) -> Self {
        Self(Arc::new(Inner {
            envoy_admin,
            period,
            guard,
            deadline: Mutex::new(None),
            http: reqwest::Client::new(),
        }))
    }

    /// Starts the drain for `peer` unless it has started, then waits until it is over.
    pub async fn drain(&self, peer: SocketAddr) -> Result<(), DrainError> {
        self.check_guard(peer).await?;
        let deadline = {
            let mut deadline = self.0.deadline.lock().await;
            match *deadline {
                Some(at) => at,
                None => {
                    self.tell_envoy().await?;
                    let at = Instant::now() + self.0.period;
                    *deadline = Some(at);
                    info!(
                        seconds = self.0.period.as_secs(),
                        "draining Envoy's listeners"
                    );
                    at
                }
            }
        };
        tokio::time::sleep_until(deadline).await;
        Ok(())
    }

    /// The `/drain` route, for the admin server.
    pub fn router(self) -> Router {
        Router::new()
            .route(PATH, get(handle))
            .route(PATH_OLD_KUBELETS, get(handle))
            .with_state(self)
    }

    async fn check_guard(&self, peer: SocketAddr) -> Result<(), DrainError> {
        let (pods, name) = match &self.0.guard {
            Guard::Loopback if peer.ip().to_canonical().is_loopback() => return Ok(()),
            Guard::Loopback => return Err(DrainError::NotLocal { peer }),
            Guard::PodDeleted { pods, name } => (pods, name),
        };
        let pod = pods
            .get(name)
            .await
            .map_err(|source| DrainError::PodUnreadable {
                name: name.clone(),
                source,
            })?;
        if pod.metadata.deletion_timestamp.is_some() {
            Ok(())
        } else {
            Err(DrainError::NotTerminating { name: name.clone() })
        }
    }

    async fn tell_envoy(&self) -> Result<(), DrainError> {
        let address = self.0.envoy_admin;
        let failed = |message: String| DrainError::Envoy { address, message };
        // `inbound_only`: the listeners downstream clients use; Envoy's own outbound ones (none
        // today) would keep working for requests still in flight.
        let response = self
            .0
            .http
            .post(format!(
                "http://{address}/drain_listeners?graceful&inbound_only"
            ))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            let body = response.text().await.unwrap_or_default();
            Err(failed(format!("{status}: {}", body.trim())))
        }
    }
}

async fn handle(
    State(drain): State<Drain>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> (StatusCode, String) {
    match drain.drain(peer).await {
        Ok(()) => (StatusCode::OK, "drained\n".to_owned()),
        Err(e) => {
            warn!(error = %e, "drain refused");
            (e.status(), format!("{e}\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local_drain() -> Drain {
        // Nothing listens on port 9 (discard): a drain that got as far as Envoy would fail there.
        Drain::new(
            "127.0.0.1:9".parse().unwrap(),
            Duration::ZERO,
            Guard::Loopback,
        )
    }

    #[tokio::test]
    async fn a_local_agent_drains_for_a_caller_on_another_host_never() {
        let err = local_drain()
            .drain("10.1.2.3:40000".parse().unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, DrainError::NotLocal { .. }), "{err}");
        assert_eq!(err.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            err.to_string(),
            "/drain answers only callers on loopback; 10.1.2.3:40000 is not"
        );
        // An IPv4 address written in IPv6 is the same host.
        let err = local_drain()
            .drain("[::ffff:10.1.2.3]:40000".parse().unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, DrainError::NotLocal { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_local_agent_drains_for_a_caller_on_loopback() {
        for peer in ["127.0.0.1:40000", "[::1]:40000", "[::ffff:127.0.0.1]:40000"] {
            // Past the guard, the drain reaches (here, fails to reach) Envoy's admin interface.
            let err = local_drain()
                .drain(peer.parse().unwrap())
                .await
                .unwrap_err();
            assert!(matches!(err, DrainError::Envoy { .. }), "{peer}: {err}");
        }
    }
}
