//! The test harness for data-path tests: real processes and servers on 127.0.0.1 ports chosen
//! at run time, torn down when they go out of scope, also when a test fails.
//!
//! - [`Upstream`]: an in-process HTTP/1.1 + h2c server that echoes each request as JSON.
//! - [`Agent`]: the built `legate-agent run --config-dir DIR` process.
//! - [`Envoy`]: the real Envoy (`make envoy`) with the bootstrap from `legate_agent::bootstrap`.
//! - [`Client`]: HTTP requests with a chosen `Host` header, answers with status, headers, body.
//! - [`gateway`]: all of it together, a Listener's config directory served through Envoy.
//! - [`tls`]: a test CA, its leaf certificates as Secret documents, and an HTTPS client.
//!
//! Child processes are killed when their handle is dropped; if the test is panicking, the tail
//! of the process's log is printed first so the failure explains itself.

#![allow(dead_code)] // each test file uses a different part of the harness

use std::{
    fs::File,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use legate_agent::bootstrap::{AdsApi, BootstrapParams, bootstrap, render_yaml};
use serde_json::Value;

/// How long a process may take to come up before the test fails.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes `name` in `dir` atomically: a hidden temporary file (which the agent does not read)
/// renamed into place, so the watcher never sees half a file.
pub fn write_config(dir: &Path, name: &str, content: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, content).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    std::fs::rename(&tmp, dir.join(name)).unwrap_or_else(|e| panic!("rename to {name}: {e}"));
}

mod machine;
pub use machine::{envoy_binary, free_port};

/// `127.0.0.1:<free port>`.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// The EndpointSlice of Service `name` (namespace `default`): `pods` ready on their port, named
/// `http`.
pub fn slice(name: &str, pods: &[&Upstream]) -> String {
    let port = pods.first().map_or(1, |p| p.addr.port());
    let endpoints: String = pods
        .iter()
        .map(|p| {
            format!(
                "- {{addresses: [\"{}\"], conditions: {{ready: true}}}}\n",
                p.addr.ip()
            )
        })
        .collect();
    format!(
        r#"---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-x7k2p
  namespace: default
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports: [{{name: http, port: {port}}}]
endpoints:
{endpoints}"#
    )
}

/// Pods `names` on 127.0.0.2, .3, ... all on one port (a Service's endpoints share it).
pub async fn pods(names: &[&str]) -> Vec<Upstream> {
    // One port free on every loopback address: try a few.
    for _ in 0..20 {
        let port = free_port();
        let mut started = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let last = u8::try_from(i + 2).expect("a few pods");
            let addr = SocketAddr::from(([127, 0, 0, last], port));
            match Upstream::start_on(name, addr).await {
                Ok(u) => started.push(u),
                Err(_) => break,
            }
        }
        if started.len() == names.len() {
            return started;
        }
    }
    panic!("no port free on 127.0.0.2-{}", names.len() + 1);
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Upstream

pub mod upstream;

pub use upstream::Upstream;

pub mod health;

pub mod auth;

pub mod tracing_collector;

// ---------------------------------------------------------------------------------------------
// TLS

pub mod client_certs;
pub mod gateway;
pub mod prometheus;
pub mod tcp;
pub mod tls;
pub mod upstream_tls;
pub mod verdict;

// ---------------------------------------------------------------------------------------------
// Child processes

/// A child process that is killed when dropped, with its output in a log file.
pub struct ChildProcess {
    what: String,
    child: Child,
    log: PathBuf,
}

impl ChildProcess {
    fn spawn(what: &str, mut command: Command, log: PathBuf) -> Self {
        let out = File::create(&log).expect("create a log file");
        let err = out.try_clone().expect("clone the log file handle");
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} ({command:?}): {e}"));
        Self {
            what: what.to_owned(),
            child,
            log,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process has written to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Panics with the log if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            panic!(
                "{} exited ({status}); its log:\n{}",
                self.what,
                self.log_tail(80)
            );
        }
    }

    /// Kills the process (SIGKILL) and reaps it. Idempotent.
    pub fn kill(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- {} (pid {}) log, last 80 lines ({}):\n{}\n----",
                self.what,
                self.child.id(),
                self.log.display(),
                self.log_tail(80)
            );
        }
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// Agent

/// The `legate-agent` binary running `run --config-dir DIR` on free loopback ports.
pub struct Agent {
    pub process: ChildProcess,
    pub ads_address: SocketAddr,
    pub metrics_address: SocketAddr,
    /// `http://127.0.0.1:PORT` of `/metrics`, `/healthz`, `/readyz`.
    pub metrics_url: String,
    client: Client,
    _logs: tempfile::TempDir,
}

impl Agent {
    /// Starts the agent on `config_dir` and waits until its admin endpoint answers.
    pub async fn start(config_dir: &Path) -> Self {
        Self::start_with_args(config_dir, &[]).await
    }

    /// As [`Agent::start`], with extra arguments to `run` (e.g. `--ambassador-id`).
    pub async fn start_with_args(config_dir: &Path, extra: &[&str]) -> Self {
        Self::start_inner(config_dir, None, extra).await
    }

    /// As [`Agent::start`], serving ADS on a given address: a restarted agent must come back
    /// where Envoy looks for it.
    pub async fn start_on(config_dir: &Path, ads_address: SocketAddr) -> Self {
        Self::start_inner(config_dir, Some(ads_address), &[]).await
    }

    /// The general form: ADS where given (else on a free port), extra arguments to `run`.
    pub async fn start_inner(
        config_dir: &Path,
        ads_address: Option<SocketAddr>,
        extra: &[&str],
    ) -> Self {
        // Another process may take a "free" port before the agent binds it: try again then.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match Self::try_start(config_dir, ads_address, extra).await {
                Ok(agent) => return agent,
                Err(agent) if attempts < 3 && agent.process.log().contains("in use") => continue,
                Err(mut agent) => {
                    agent.process.assert_running();
                    unreachable!("try_start fails only when the agent exited");
                }
            }
        }
    }

    async fn try_start(
        config_dir: &Path,
        ads_address: Option<SocketAddr>,
        extra: &[&str],
    ) -> Result<Self, Self> {
        let logs = tempfile::tempdir().expect("a log directory");
        let ads_address = ads_address.unwrap_or_else(free_addr);
        let metrics_address = free_addr();
        let mut command = Command::new(env!("CARGO_BIN_EXE_legate-agent"));
        command
            .arg("run")
            .arg("--config-dir")
            .arg(config_dir)
            .arg("--ads-address")
            .arg(ads_address.to_string())
            .arg("--metrics-address")
            .arg(metrics_address.to_string())
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env_remove("LEGATE_METRICS_ADDRESS")
            .env_remove("AMBASSADOR_ID");
        let process = ChildProcess::spawn("legate-agent", command, logs.path().join("agent.log"));
        let mut agent = Self {
            process,
            ads_address,
            metrics_address,
            metrics_url: format!("http://{metrics_address}"),
            client: Client::new(),
            _logs: logs,
        };
        let start = Instant::now();
        loop {
            if agent.process.exited().is_some() {
                return Err(agent);
            }
            if agent.healthz().await.is_some_and(|s| s == 200) {
                return Ok(agent);
            }
            if start.elapsed() > START_TIMEOUT {
                panic!(
                    "legate-agent did not answer /healthz within {START_TIMEOUT:?}; log:\n{}",
                    agent.process.log_tail(80)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Status of `/healthz`, or `None` when nothing answers.
    pub async fn healthz(&self) -> Option<u16> {
        let url = format!("{}/healthz", self.metrics_url);
        self.client.get(&url, None).await.ok().map(|r| r.status)
    }

    /// Status and body of `/readyz` (200 when Envoy has acknowledged a configuration).
    pub async fn readyz(&self) -> (u16, String) {
        let url = format!("{}/readyz", self.metrics_url);
        let reply = self.client.get(&url, None).await.expect("GET /readyz");
        (reply.status, reply.text)
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        let mut last = (0, String::new());
        let start = Instant::now();
        while start.elapsed() < START_TIMEOUT {
            last = self.readyz().await;
            if last.0 == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the agent was not ready within {START_TIMEOUT:?}: {} {}; log:\n{}",
            last.0,
            last.1,
            self.process.log_tail(80)
        );
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.metrics_url);
        self.client
            .get(&url, None)
            .await
            .expect("GET /metrics")
            .text
    }

    /// The value of one sample (`name{labels}` exactly as exposed, or a bare name).
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        let text = self.metrics().await;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .find(|(name, _)| *name == sample)
            .and_then(|(_, value)| value.parse().ok())
    }

    /// The NACK counter (`legate_agent_xds_nacks_total`), summed over resource types.
    pub async fn nacks(&self) -> f64 {
        self.metrics()
            .await
            .lines()
            .filter(|l| l.starts_with("legate_agent_xds_nacks_total{"))
            .filter_map(|l| l.rsplit_once(' '))
            .filter_map(|(_, v)| v.parse::<f64>().ok())
            .sum()
    }

    pub fn log(&self) -> String {
        self.process.log()
    }
}

// ---------------------------------------------------------------------------------------------
// Envoy

static ENVOYS: AtomicU32 = AtomicU32::new(0);

/// A real Envoy whose bootstrap points at an ADS server, with its admin on a free port.
pub struct Envoy {
    pub process: ChildProcess,
    pub admin_address: SocketAddr,
    pub node_id: String,
    pub bootstrap_path: PathBuf,
    client: Client,
    _dir: tempfile::TempDir,
}

impl Envoy {
    /// Starts Envoy (delta ADS) and waits until its admin interface answers.
    pub async fn start(ads_address: SocketAddr) -> Self {
        Self::start_with(ads_address, AdsApi::DeltaGrpc).await
    }

    pub async fn start_with(ads_address: SocketAddr, ads_api: AdsApi) -> Self {
        Self::start_with_args(ads_address, ads_api, &[]).await
    }

    /// As [`Envoy::start_with`], with extra command-line arguments (e.g. `--drain-time-s`).
    pub async fn start_with_args(ads_address: SocketAddr, ads_api: AdsApi, extra: &[&str]) -> Self {
        Self::start_inner(ads_address, ads_api, extra, None).await
    }

    /// As [`Envoy::start`], with the bootstrap's statistics listener on `stats` and the admin
    /// interface on `admin`, where an agent started for them looks.
    pub async fn start_observed(
        ads_address: SocketAddr,
        stats: SocketAddr,
        admin: SocketAddr,
    ) -> Self {
        Self::start_inner(ads_address, AdsApi::DeltaGrpc, &[], Some((stats, admin))).await
    }

    async fn start_inner(
        ads_address: SocketAddr,
        ads_api: AdsApi,
        extra: &[&str],
        observed: Option<(SocketAddr, SocketAddr)>,
    ) -> Self {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match Self::try_start(ads_address, ads_api, extra, observed).await {
                Ok(envoy) => return envoy,
                Err(envoy) if attempts < 3 && envoy.process.log().contains("in use") => continue,
                Err(mut envoy) => {
                    envoy.process.assert_running();
                    unreachable!("try_start fails only when Envoy exited");
                }
            }
        }
    }

    async fn try_start(
        ads_address: SocketAddr,
        ads_api: AdsApi,
        extra: &[&str],
        observed: Option<(SocketAddr, SocketAddr)>,
    ) -> Result<Self, Self> {
        let dir = tempfile::tempdir().expect("an Envoy directory");
        let admin_address = observed.map_or_else(free_addr, |(_, admin)| admin);
        let n = ENVOYS.fetch_add(1, Ordering::Relaxed);
        let node_id = format!("test-{}-{n}", std::process::id());
        let mut params = BootstrapParams::new(ads_address, admin_address, node_id.clone());
        params.ads_api = ads_api;
        params.stats_address = observed.map(|(stats, _)| stats);
        let bootstrap_path = dir.path().join("bootstrap.yaml");
        std::fs::write(&bootstrap_path, render_yaml(&bootstrap(&params)))
            .expect("write the bootstrap");
        // Unique among the Envoys of this machine: the admin port is ours while it runs.
        let base_id = u32::from(admin_address.port());
        let mut command = Command::new(envoy_binary());
        command
            .arg("-c")
            .arg(&bootstrap_path)
            .args(["--base-id", &base_id.to_string()])
            .args(["--log-level", "warn"])
            .arg("--disable-hot-restart")
            // Two shared cores: a couple of workers is plenty.
            .args(["--concurrency", "2"])
            .args(extra);
        let process = ChildProcess::spawn("envoy", command, dir.path().join("envoy.log"));
        let mut envoy = Self {
            process,
            admin_address,
            node_id,
            bootstrap_path,
            client: Client::new(),
            _dir: dir,
        };
        let start = Instant::now();
        loop {
            if envoy.process.exited().is_some() {
                return Err(envoy);
            }
            if envoy.admin_get("/ready").await.is_some() {
                return Ok(envoy);
            }
            if start.elapsed() > START_TIMEOUT {
                panic!(
                    "Envoy's admin did not answer within {START_TIMEOUT:?}; log:\n{}",
                    envoy.process.log_tail(80)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:PORT` of the admin interface.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_address)
    }

    /// An admin GET; `None` when nothing answers.
    pub async fn admin_get(&self, path: &str) -> Option<Reply> {
        let url = format!("{}{path}", self.admin_url());
        self.client.get(&url, None).await.ok()
    }

    /// The sum of the stats matching `regex` (admin `/stats?filter=`).
    pub async fn stat_sum(&self, regex: &str) -> u64 {
        let reply = self
            .admin_get(&format!("/stats?filter={regex}"))
            .await
            .expect("Envoy admin answers");
        reply
            .text
            .lines()
            .filter_map(|l| l.split_once(": "))
            .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
            .sum()
    }

    /// Status and body of `/ready` (200 `LIVE` once initialized; 503 while initializing).
    pub async fn ready(&self) -> (u16, String) {
        let reply = self.admin_get("/ready").await.expect("Envoy admin answers");
        (reply.status, reply.text.trim().to_owned())
    }

    /// Waits until `/ready` says `LIVE`.
    pub async fn wait_ready(&mut self) {
        let start = Instant::now();
        let mut last = (0, String::new());
        while start.elapsed() < START_TIMEOUT {
            self.process.assert_running();
            if let Some(reply) = self.admin_get("/ready").await {
                last = (reply.status, reply.text.trim().to_owned());
                if last.0 == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "Envoy was not ready within {START_TIMEOUT:?} (last: {} {}); log:\n{}",
            last.0,
            last.1,
            self.process.log_tail(80)
        );
    }

    /// `/config_dump` as JSON (add `?resource=...` or `?include_eds` through [`Self::admin_get`]).
    pub async fn config_dump(&self) -> Value {
        self.admin_get("/config_dump")
            .await
            .expect("Envoy admin answers")
            .json()
    }

    /// One counter or gauge from `/stats`, e.g. `cluster_manager.cds.update_rejected`.
    pub async fn stat(&self, name: &str) -> Option<u64> {
        let reply = self.admin_get(&format!("/stats?filter=^{name}$")).await?;
        reply
            .text
            .lines()
            .filter_map(|l| l.split_once(": "))
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.trim().parse().ok())
    }

    pub fn log(&self) -> String {
        self.process.log()
    }
}

// ---------------------------------------------------------------------------------------------
// Client

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}); status {}, body: {}",
                self.status, self.text
            )
        })
    }

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The upstream that answered (the echo server's `x-upstream`).
    pub fn upstream(&self) -> Option<&str> {
        self.header("x-upstream")
    }
}

/// HTTP requests with a chosen `Host`, never through a proxy, with a bounded timeout.
#[derive(Clone)]
pub struct Client {
    http1: reqwest::Client,
    h2c: reqwest::Client,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    pub fn new() -> Self {
        Self::with_timeout(Duration::from_secs(10))
    }

    pub fn with_timeout(timeout: Duration) -> Self {
        let builder = || {
            reqwest::Client::builder()
                .no_proxy()
                .timeout(timeout)
                .connect_timeout(Duration::from_secs(2))
                .redirect(reqwest::redirect::Policy::none())
        };
        Self {
            http1: builder().http1_only().build().expect("an HTTP/1.1 client"),
            h2c: builder()
                .http2_prior_knowledge()
                .build()
                .expect("an h2c client"),
        }
    }

    /// The HTTP/1.1 client itself, for requests [`Reply`] cannot hold (binary bodies, bodies
    /// left encoded).
    pub fn http1(&self) -> &reqwest::Client {
        &self.http1
    }

    /// GET over HTTP/1.1, with `Host: host` when given.
    pub async fn get(&self, url: &str, host: Option<&str>) -> reqwest::Result<Reply> {
        self.send(reqwest::Method::GET, url, host, &[], None).await
    }

    /// GET over HTTP/2 without TLS (prior knowledge); `host` becomes `:authority`.
    pub async fn get_h2(&self, url: &str, host: Option<&str>) -> reqwest::Result<Reply> {
        let mut request = self.h2c.get(url);
        if let Some(host) = host {
            request = request.header(reqwest::header::HOST, host);
        }
        Self::reply(request.send().await?).await
    }

    /// Any method, with extra request headers and an optional body, over HTTP/1.1.
    pub async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        host: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> reqwest::Result<Reply> {
        let mut request = self.http1.request(method, url);
        if let Some(host) = host {
            request = request.header(reqwest::header::HOST, host);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        Self::reply(request.send().await?).await
    }

    async fn reply(response: reqwest::Response) -> reqwest::Result<Reply> {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await?;
        Ok(Reply {
            status,
            headers,
            text,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Rate limiting

pub mod rate_limit_server;

/// A real gRPC access-log service that keeps what Envoy sends it (`tests/log_service.rs`).
pub mod access_log_receiver;
