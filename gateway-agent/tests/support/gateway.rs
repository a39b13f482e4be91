//! A whole gateway for data-path tests: a config directory with a Listener on a free port, the
//! agent serving it and a real Envoy fed by it, and helpers to write Emissary YAML and to wait
//! for Envoy's answers.

use std::time::{Duration, Instant};

use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Agent, Client, Envoy, Reply, Upstream, free_port, write_config as write_file};

/// How long a configuration change may take to reach Envoy's data path.
pub const WAIT: Duration = Duration::from_secs(20);

/// Any hostname, plain HTTP routed (not redirected): the default for tests not about Hosts.
pub const HOST_ANY: &str = r#"
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: any, namespace: default}
spec: {hostname: "*", requestPolicy: {insecure: {action: Route}}}
"#;

/// A config directory with a Listener on a free port, the agent on it, and Envoy fed by it.
pub struct Gateway {
    pub envoy: Envoy,
    pub agent: Agent,
    pub client: Client,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Gateway {
    /// A gateway with the Listener and a `*` Host that routes plain HTTP.
    pub async fn start() -> Self {
        Self::start_with_hosts(HOST_ANY).await
    }

    /// A gateway with the Listener and the given Host documents (`hosts.yaml`).
    pub async fn start_with_hosts(hosts: &str) -> Self {
        Self::start_with(hosts, "").await
    }

    /// A gateway with the given Host documents and `listener_spec` (e.g. `l7Depth: 1, `) added
    /// to the Listener's spec.
    pub async fn start_with(hosts: &str, listener_spec: &str) -> Self {
        Self::start_inner(hosts, listener_spec, None).await
    }

    /// A gateway with the given Host documents, wired as the operator deploys it: the agent
    /// appends the statistics Envoy serves on a listener of their own to its `/metrics`, and
    /// reads Envoy's admin interface (the diagnostics page's health, `/drain`).
    pub async fn start_observed(hosts: &str) -> Self {
        Self::start_inner(hosts, "", Some((super::free_addr(), super::free_addr()))).await
    }

    /// `observed`: Envoy's statistics listener and admin addresses, given to the agent.
    async fn start_inner(
        hosts: &str,
        listener_spec: &str,
        observed: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("a config directory");
        let port = free_port();
        let listener = format!(
            "apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {{name: http, namespace: default}}
spec: {{port: {port}, protocol: HTTP, securityModel: XFP, {listener_spec}hostBinding: {{namespace: {{from: ALL}}}}}}
"
        );
        write_file(dir.path(), "listener.yaml", &listener);
        write_file(dir.path(), "hosts.yaml", hosts);
        // At least one cluster from the start: with none, Envoy waits 15 s for its first
        // CDS answer (see `envoy_initializes_promptly_without_any_mapping`).
        write_file(
            dir.path(),
            "probe.yaml",
            &mapping(
                "probe",
                "hostname: \"*\"\nprefix: /__probe/\nservice: 127.0.0.1:1",
            ),
        );
        let addresses = observed.map(|(stats, admin)| [stats.to_string(), admin.to_string()]);
        let agent_args: Vec<&str> = match &addresses {
            Some([stats, admin]) => vec![
                "--envoy-stats-address",
                stats,
                "--envoy-admin-address",
                admin,
            ],
            None => vec![],
        };
        let agent = Agent::start_with_args(dir.path(), &agent_args).await;
        let mut envoy = match observed {
            Some((stats, admin)) => Envoy::start_observed(agent.ads_address, stats, admin).await,
            None => Envoy::start(agent.ads_address).await,
        };
        envoy.wait_ready().await;
        agent.wait_ready().await;
        Self {
            envoy,
            agent,
            client: Client::new(),
            port,
            dir,
        }
    }

    /// Writes (or replaces) `name` in the config directory, atomically.
    pub fn write(&self, name: &str, yaml: &str) {
        write_file(self.dir.path(), name, yaml);
    }

    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.dir.path().join(name)).expect("remove a config file");
    }

    /// `http://127.0.0.1:PORT{path}` on the Listener.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://127.0.0.1:{}{path_and_query}", self.port)
    }

    /// GET over HTTP/1.1 through Envoy with `Host: host`.
    pub async fn get(&self, path: &str, host: &str) -> Reply {
        self.send(Method::GET, path, host, &[]).await
    }

    /// Any request through Envoy; panics (with the logs) when Envoy does not answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        host: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.client
            .send(method.clone(), &self.url(path), Some(host), headers, None)
            .await
            .unwrap_or_else(|e| panic!("{method} {path} (Host: {host}) through Envoy: {e}"))
    }

    /// Sends GET `path` with `Host: example.com` until `done` holds for the answer, and returns
    /// it; panics after [`WAIT`] with the last answer (and, on drop, the logs).
    pub async fn wait_for(&self, path: &str, what: &str, done: impl Fn(&Reply) -> bool) -> Reply {
        self.wait_for_request(Method::GET, path, "example.com", &[], what, done)
            .await
    }

    pub async fn wait_for_request(
        &self,
        method: Method,
        path: &str,
        host: &str,
        headers: &[(&str, &str)],
        what: &str,
        done: impl Fn(&Reply) -> bool,
    ) -> Reply {
        let start = Instant::now();
        loop {
            let last = match self
                .client
                .send(method.clone(), &self.url(path), Some(host), headers, None)
                .await
            {
                Ok(reply) if done(&reply) => return reply,
                Ok(reply) => describe(&reply),
                Err(e) => format!("error: {e}"),
            };
            assert!(
                start.elapsed() < WAIT,
                "timed out after {WAIT:?} waiting for {what} ({method} {path}, Host: {host}); \
                 last answer: {last}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until GET `path` (Host `example.com`) is answered 200 by `upstream`.
    pub async fn wait_upstream(&self, path: &str, upstream: &str) -> Reply {
        let what = format!("{path} to be served by {upstream}");
        self.wait_for(path, &what, |r| {
            r.status == 200 && r.upstream() == Some(upstream)
        })
        .await
    }

    /// Sends `request` as written on a new connection to the Listener and reads until Envoy
    /// closes it: what no HTTP client library sends (HTTP/1.0, a PROXY protocol header, both
    /// `Content-Length` and chunked). A reset after the answer still leaves the answer.
    pub async fn raw(&self, request: &[u8]) -> String {
        raw_on(self.port, request).await
    }

    /// Sends `request` raw until the answer satisfies `done`; panics after [`WAIT`].
    pub async fn wait_raw(
        &self,
        request: &[u8],
        what: &str,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let start = Instant::now();
        loop {
            let answer = self.raw(request).await;
            if done(&answer) {
                return answer;
            }
            assert!(
                start.elapsed() < WAIT,
                "timed out after {WAIT:?} waiting for {what}; last answer: {answer:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until GET `path` (Host `example.com`) answers `status`.
    pub async fn wait_status(&self, path: &str, status: u16) -> Reply {
        let what = format!("{path} to answer {status}");
        self.wait_for(path, &what, |r| r.status == status).await
    }
}

/// [`Gateway::raw`] on another port of the gateway; empty when nothing listens there (yet).
pub async fn raw_on(port: u16, request: &[u8]) -> String {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    stream
        .write_all(request)
        .await
        .unwrap_or_else(|e| panic!("write {request:?}: {e}"));
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status of a raw HTTP/1 answer (`HTTP/1.1 426 Upgrade Required` → 426), 0 if none.
pub fn raw_status(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

pub fn describe(reply: &Reply) -> String {
    let body: String = reply.text.chars().take(400).collect();
    format!(
        "status {}, x-upstream {:?}, location {:?}, body {body:?}",
        reply.status,
        reply.upstream(),
        reply.header("location")
    )
}

/// A Mapping document in namespace `default` for every hostname; `spec` is the rest of its
/// spec, one field per line without indentation.
pub fn mapping(name: &str, spec: &str) -> String {
    document("Mapping", name, spec)
}

/// A `getambassador.io/v3alpha1` document of `kind` in namespace `default`; `spec` one field per
/// line without indentation.
pub fn document(kind: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: {kind}\nmetadata: {{name: {name}, namespace: default}}\nspec:\n{}",
        indented(spec, "  ")
    )
}

/// The `ambassador` Module in the agent's namespace (`default`) with `config`, one key per line
/// without indentation.
pub fn module(config: &str) -> String {
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Module\n\
         metadata: {{name: ambassador, namespace: default}}\nspec:\n  config:\n{}",
        indented(config, "    ")
    )
}

/// Each non-empty line of `text`, trimmed, after `indent`.
fn indented(text: &str, indent: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| format!("{indent}{l}\n"))
        .collect()
}

/// As [`mapping`], with `hostname: "*"` and `service` first.
pub fn route(name: &str, service: &Upstream, spec: &str) -> String {
    mapping(
        name,
        &format!("hostname: \"*\"\nservice: {}\n{spec}", service.service()),
    )
}

/// Asserts the answer came from `upstream` with status 200, and returns the echoed request.
#[track_caller]
pub fn served_by(reply: &Reply, upstream: &str) -> serde_json::Value {
    assert_eq!(
        (reply.status, reply.upstream()),
        (200, Some(upstream)),
        "{}",
        describe(reply)
    );
    reply.json()
}
