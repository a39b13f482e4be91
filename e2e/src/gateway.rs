//! A gateway pod as the tests run it (no kubelet runs pods here): the operator's Deployment
//! template started as local processes (the agent acting as the template's ServiceAccount, Envoy
//! with the ConfigMap's bootstrap), and what the tests read back from route statuses.

use std::{
    cell::RefCell,
    collections::BTreeMap,
    path::PathBuf,
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail, ensure};
use kube::{
    Api, Client,
    api::DynamicObject,
    core::{ApiResource, GroupVersionKind},
};
use serde_json::Value;

use crate::{
    HttpResponse, LocalProcess, free_port, http_get, kubectl_json, metric, metric_sum, repo_root,
    temp_dir, wait_for, write_impersonating_kubeconfig,
};

/// How long the gateway helpers wait for a verdict, a pod or a route.
pub const WAIT: Duration = Duration::from_secs(60);

/// Accepted=True (reason Accepted).
pub const ACCEPTED: (&str, &str) = ("True", "Accepted");
/// Programmed=True (reason Programmed).
pub const PROGRAMMED: (&str, &str) = ("True", "Programmed");

/// `(status, reason)` of Accepted and of Programmed.
pub type Verdicts = [(String, String); 2];

pub fn verdicts(accepted: (&str, &str), programmed: (&str, &str)) -> Verdicts {
    [accepted, programmed].map(|(s, r)| (s.to_owned(), r.to_owned()))
}

/// `(status, reason, message)` of condition `type_` in `status.conditions`-like `owner`.
pub fn condition(owner: &Value, type_: &str) -> Option<(String, String, String)> {
    let c = owner["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?;
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
    Some((s("status"), s("reason"), s("message")))
}

pub fn verdicts_of(owner: &Value) -> Option<Verdicts> {
    let (a, ar, _) = condition(owner, "Accepted")?;
    let (p, pr, _) = condition(owner, "Programmed")?;
    Some([(a, ar), (p, pr)])
}

/// The summary verdict, when it is for the object's current generation.
pub fn summary_verdict(object: &Value) -> Option<Verdicts> {
    let current = object["status"]["observedGeneration"] == object["metadata"]["generation"];
    current.then(|| verdicts_of(&object["status"])).flatten()
}

/// One gateway's own verdict, from its `status.gateways` entry.
pub fn entry_verdict(object: &Value, installation: &str) -> Option<Verdicts> {
    let entry = object["status"]["gateways"]
        .as_array()?
        .iter()
        .find(|g| g["installation"] == installation)?;
    verdicts_of(entry)
}

/// The installations with an entry in `status.gateways`, sorted (a list keyed by installation:
/// its order is server-side apply's merge order, which means nothing).
pub fn installations(object: &Value) -> Vec<String> {
    let mut out: Vec<String> = object["status"]["gateways"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["installation"].as_str().map(str::to_owned))
        .collect();
    out.sort();
    out
}

/// The `status.gateways` entries field manager `manager` owns (its managedFields).
pub fn owned_entries(object: &Value, manager: &str) -> Vec<String> {
    let mut out = Vec::new();
    for m in object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if m["manager"] != manager {
            continue;
        }
        for key in m["fieldsV1"]["f:status"]["f:gateways"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            let Some(json) = key.strip_prefix("k:") else {
                continue;
            };
            if let Ok(k) = serde_json::from_str::<Value>(json)
                && let Some(i) = k["installation"].as_str()
            {
                out.push(i.to_owned());
            }
        }
    }
    out
}

/// Waits for Mapping `ns/name`'s summary verdict at its current generation.
pub async fn wait_verdict(
    client: &Client,
    ns: &str,
    name: &str,
    accepted: (&str, &str),
    programmed: (&str, &str),
) -> Result<Value> {
    let want = verdicts(accepted, programmed);
    let last = RefCell::new(Value::Null);
    let found = wait_for(
        &format!("Mapping {ns}/{name}: Accepted {accepted:?}, Programmed {programmed:?}"),
        WAIT,
        || async {
            let m = get(client, &mapping_resource(), ns, name).await?;
            let ok = summary_verdict(&m).as_ref() == Some(&want);
            *last.borrow_mut() = m["status"].clone();
            Ok(ok.then_some(m))
        },
    )
    .await;
    found.with_context(|| format!("its status: {:#}", last.borrow()))
}

pub fn mapping_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("getambassador.io", "v3alpha1", "Mapping"),
        "mappings",
    )
}

pub fn gwi_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("legate.dev", "v1alpha1", "GatewayInstallation"),
        "gatewayinstallations",
    )
}

pub async fn get(client: &Client, resource: &ApiResource, ns: &str, name: &str) -> Result<Value> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, resource);
    let object = api
        .get(name)
        .await
        .with_context(|| format!("GET {} {ns}/{name}", resource.kind))?;
    Ok(serde_json::to_value(object)?)
}

/// The Deployment the operator made for installation `ns/name`, and its bootstrap (the
/// ConfigMap's `bootstrap.yaml`), once both exist.
pub async fn fleet(ns: &str, name: &str) -> Result<(Value, String)> {
    wait_for(
        &format!("the operator's Deployment and ConfigMap for {ns}/{name}"),
        WAIT,
        || async {
            let deployments = kubectl_json(&["get", "deployments", "-n", ns])?;
            let configmaps = kubectl_json(&["get", "configmaps", "-n", ns])?;
            let find = |list: &Value, n: &str| {
                list["items"]
                    .as_array()
                    .and_then(|items| items.iter().find(|i| i["metadata"]["name"] == n).cloned())
            };
            let (Some(deployment), Some(cm)) = (
                find(&deployments, name),
                find(&configmaps, &format!("{name}-bootstrap")),
            ) else {
                return Ok(None);
            };
            let bootstrap = cm["data"]["bootstrap.yaml"]
                .as_str()
                .ok_or_else(|| anyhow!("{name}-bootstrap has no bootstrap.yaml"))?;
            Ok(Some((deployment, bootstrap.to_owned())))
        },
    )
    .await
}

/// Ports a pod beside another on this machine must move (each pod has its own network
/// namespace in a cluster, so there the template's fixed ports never clash).
#[derive(Default)]
pub struct Moved {
    pub ads: Option<u16>,
    pub admin: Option<u16>,
    /// Envoy's statistics listener, which the agent reads.
    pub stats: Option<u16>,
    pub metrics: Option<u16>,
}

impl Moved {
    pub fn free() -> Result<Self> {
        Ok(Self {
            ads: Some(free_port()?),
            admin: Some(free_port()?),
            stats: Some(free_port()?),
            metrics: Some(free_port()?),
        })
    }
}

/// One gateway pod as a kubelet would run the Deployment's template: its agent and its Envoy,
/// as local processes.
pub struct Pod {
    pub name: String,
    pub agent: LocalProcess,
    pub envoy: LocalProcess,
    /// The agent's `/metrics` and `/readyz`.
    pub metrics: String,
    /// Envoy's admin interface.
    pub admin: String,
}

impl Pod {
    pub fn start(deployment: &Value, bootstrap: &str, name: &str, moved: &Moved) -> Result<Self> {
        let namespace = deployment["metadata"]["namespace"]
            .as_str()
            .ok_or_else(|| anyhow!("the Deployment has no namespace"))?;
        let spec = &deployment["spec"]["template"]["spec"];
        let service_account = spec["serviceAccountName"]
            .as_str()
            .ok_or_else(|| anyhow!("the pod template names no ServiceAccount"))?;
        let container = |wanted: &str| {
            spec["containers"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["name"] == wanted))
                .ok_or_else(|| anyhow!("the pod template has no {wanted} container"))
        };
        let dir = temp_dir(&format!("legate-e2e-{name}"))?;

        // The agent: the container's args and env, acting as the pod's ServiceAccount.
        let agent = container("legate-agent")?;
        let mut args = strings(&agent["args"]);
        if let Some(port) = moved.ads {
            set_flag(&mut args, "--ads-address", &format!("127.0.0.1:{port}"))?;
        }
        if let Some(port) = moved.metrics {
            set_flag(&mut args, "--metrics-address", &format!("0.0.0.0:{port}"))?;
        }
        if let Some(port) = moved.stats {
            set_flag(
                &mut args,
                "--envoy-stats-address",
                &format!("127.0.0.1:{port}"),
            )?;
        }
        let metrics_port = flag(&args, "--metrics-address")?
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .ok_or_else(|| anyhow!("--metrics-address without a port"))?;
        let kubeconfig = write_impersonating_kubeconfig(
            &dir,
            &format!("system:serviceaccount:{namespace}:{service_account}"),
        )?;
        let mut command = Command::new(binary("LEGATE_AGENT_BIN", "target/debug/legate-agent"));
        // Exactly the template's environment, plus where the API server is (and, to debug,
        // the agent's log filter from LEGATE_E2E_AGENT_LOG).
        command
            .args(&args)
            .env_clear()
            .envs(env(agent, namespace, name)?)
            .env("KUBECONFIG", &kubeconfig);
        if let Some(filter) = std::env::var_os("LEGATE_E2E_AGENT_LOG") {
            command.env("RUST_LOG", filter);
        }
        let agent = LocalProcess::spawn(
            &format!("{name} legate-agent"),
            command,
            dir.join("agent.log"),
        )?;

        // Envoy: the container's args, its bootstrap file the ConfigMap's.
        let envoy = container("envoy")?;
        let mut args = strings(&envoy["args"]);
        let mut bootstrap = bootstrap.to_owned();
        let ads = moved.ads.map(|p| (18000, p));
        let admin_port = moved.admin.unwrap_or(19000);
        let admin = moved.admin.map(|p| (19000, p));
        let stats = moved.stats.map(|p| (19001, p));
        for (from, to) in ads.into_iter().chain(admin).chain(stats) {
            let old = format!("port_value: {from}\n");
            // The admin port twice: the admin interface, and the cluster the statistics
            // listener forwards to.
            ensure!(
                bootstrap.matches(&old).count() == if from == 19000 { 2 } else { 1 },
                "the bootstrap has not the expected {old:?}:\n{bootstrap}"
            );
            bootstrap = bootstrap.replace(&old, &format!("port_value: {to}\n"));
        }
        ensure!(
            bootstrap.contains(&format!("port_value: {admin_port}\n")),
            "the bootstrap's admin port is not {admin_port}:\n{bootstrap}"
        );
        let path = dir.join("bootstrap.yaml");
        std::fs::write(&path, &bootstrap)?;
        set_flag(&mut args, "-c", path.to_str().expect("a UTF-8 temp path"))?;
        let mut command = Command::new(binary("LEGATE_ENVOY", ".tools/bin/envoy"));
        // In a cluster each pod's Envoy has its own network namespace; here they all share the
        // machine's, where hot restart's abstract domain socket (named by the base id, 0 unless
        // told) would clash between the pods' Envoys and any other on the machine. A base id of
        // its own (its admin port, ours while it runs) keeps them apart.
        command
            .args(&args)
            .args(["--base-id", &admin_port.to_string()]);
        let envoy = LocalProcess::spawn(&format!("{name} envoy"), command, dir.join("envoy.log"))?;
        Ok(Self {
            name: name.to_owned(),
            agent,
            envoy,
            metrics: format!("127.0.0.1:{metrics_port}"),
            admin: format!("127.0.0.1:{admin_port}"),
        })
    }

    /// Waits for `/readyz`: the agent is ready once its Envoy acknowledged a configuration.
    pub async fn wait_ready(&mut self) -> Result<()> {
        let start = Instant::now();
        loop {
            for p in [&mut self.agent, &mut self.envoy] {
                if let Some(status) = p.exited() {
                    bail!("{} exited with {status}", p.name);
                }
            }
            if http_get(&self.metrics, "/readyz", None).is_ok_and(|r| r.status == 200) {
                return Ok(());
            }
            if start.elapsed() > WAIT {
                bail!("pod {} not ready within {WAIT:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The configuration version the pod's Envoy acknowledged, as `/readyz` says it.
    pub fn served_version(&self) -> Result<String> {
        let ready = http_get(&self.metrics, "/readyz", None)?.body;
        ready
            .split_once("serving configuration ")
            .and_then(|(_, rest)| rest.split([' ', ';', '\n']).next())
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("{}: /readyz names no configuration: {ready:?}", self.name))
    }

    /// The sum of every sample of `name` in the agent's `/metrics`, whatever their labels
    /// (0 when there is none).
    pub fn metric_sum(&self, name: &str) -> Result<f64> {
        let text = http_get(&self.metrics, "/metrics", None)?.body;
        Ok(metric_sum(&text, name))
    }

    /// A sample of the agent's `/metrics`.
    pub fn metric(&self, name: &str) -> Result<f64> {
        let text = http_get(&self.metrics, "/metrics", None)?.body;
        metric(&text, name).ok_or_else(|| anyhow!("{}: no {name} in:\n{text}", self.name))
    }
}

/// A binary: `$VAR`, else `relative` under the repository root.
pub fn binary(var: &str, relative: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(relative))
}

fn strings(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

fn flag<'a>(args: &'a [String], name: &str) -> Result<&'a str> {
    let i = args
        .iter()
        .position(|a| a == name)
        .ok_or_else(|| anyhow!("no {name} in {args:?}"))?;
    args.get(i + 1)
        .map(String::as_str)
        .ok_or_else(|| anyhow!("{name} without a value"))
}

fn set_flag(args: &mut [String], name: &str, value: &str) -> Result<()> {
    let i = args
        .iter()
        .position(|a| a == name)
        .ok_or_else(|| anyhow!("no {name} in {args:?}"))?;
    *args
        .get_mut(i + 1)
        .ok_or_else(|| anyhow!("{name} without a value"))? = value.to_owned();
    Ok(())
}

/// A container's `env` as a kubelet resolves it for pod `pod` in `namespace`.
fn env(container: &Value, namespace: &str, pod: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for e in container["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or_default().to_owned();
        let value = if let Some(v) = e["value"].as_str() {
            v.to_owned()
        } else {
            match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.namespace") => namespace.to_owned(),
                Some("metadata.name") => pod.to_owned(),
                _ => bail!("env {name}: the test cannot resolve {e}"),
            }
        };
        out.push((name, value));
    }
    Ok(out)
}

/// `GET path` through Envoy's Listener on 127.0.0.1:`port` with `Host: host`.
pub fn through(port: u16, path: &str, host: &str) -> Result<HttpResponse> {
    http_get(&format!("127.0.0.1:{port}"), path, Some(host))
}

/// Waits until `path` on `port` (with `Host: host`) answers 200 from `upstream` (a route just
/// acknowledged may take a moment to reach Envoy's workers).
pub async fn expect_route(port: u16, path: &str, host: &str, upstream: &str) -> Result<()> {
    let last = RefCell::new(String::new());
    let found = wait_for(
        &format!("GET {path} on :{port} → {upstream}"),
        WAIT,
        || async {
            let answer = through(port, path, host)?;
            *last.borrow_mut() = format!("{answer:?}");
            Ok((answer.status == 200 && answer.body == upstream).then_some(()))
        },
    )
    .await;
    found.with_context(|| format!("last answer: {}", last.borrow()))
}

/// What a [`Traffic`] loop has seen so far.
#[derive(Clone, Debug, Default)]
pub struct TrafficStats {
    pub sent: u64,
    pub failed: u64,
    /// The first failures, each with when it happened since the loop started.
    pub failures: Vec<String>,
    /// Answers by body (which upstream answered), successful ones only.
    pub answers: BTreeMap<String, u64>,
    /// Why the loop stopped on its own (its request or time bound), if it did.
    pub ended: Option<String>,
}

impl TrafficStats {
    /// How many answers `upstream` gave.
    pub fn from(&self, upstream: &str) -> u64 {
        self.answers.get(upstream).copied().unwrap_or(0)
    }
}

/// The `HOST:PORT`s a [`Traffic`] loop may send its next request to.
pub type Targets = Arc<dyn Fn() -> Vec<String> + Send + Sync>;
/// Who gave a good answer to a request for a path; `None` makes the request a failure.
pub type AnsweredBy = Arc<dyn Fn(&str, &HttpResponse) -> Option<String> + Send + Sync>;

/// Where a [`Traffic`] loop sends its requests, and what it accepts as an answer.
#[derive(Clone)]
pub struct Requests {
    /// The `HOST:PORT`s taken in turn, asked again before each request (so the loop can follow
    /// a Service's ready endpoints as a load balancer does).
    pub targets: Targets,
    pub host: String,
    /// Requested in turn.
    pub paths: Vec<String>,
    pub answered_by: AnsweredBy,
}

impl Requests {
    /// To Envoy's Listener on 127.0.0.1:`port`: a good answer is a 200 whose body is one of
    /// `upstreams` (the names [`crate::HttpUpstream`]s answer with).
    pub fn local(port: u16, host: &str, paths: &[&str], upstreams: &[&str]) -> Self {
        let target = format!("127.0.0.1:{port}");
        let upstreams: Vec<String> = upstreams.iter().map(|u| (*u).to_owned()).collect();
        Self {
            targets: Arc::new(move || vec![target.clone()]),
            host: host.to_owned(),
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            answered_by: Arc::new(move |_, a| {
                (a.status == 200 && upstreams.contains(&a.body)).then(|| a.body.clone())
            }),
        }
    }
}

/// Requests sent one after the other (one connection each) on a thread of its own, until
/// stopped or a bound is reached; what [`Requests::answered_by`] refuses, or no answer at all,
/// counts as failed.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<TrafficStats>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// At most this many failures are described in [`TrafficStats::failures`].
const FAILURES_KEPT: usize = 20;

impl Traffic {
    /// Starts the loop: `paths` in turn through Envoy's Listener on 127.0.0.1:`port` with
    /// `Host: host`, each answered 200 by one of `upstreams`; at most `max_requests` requests
    /// and `max_time`.
    pub fn start(
        port: u16,
        host: &str,
        paths: &[&str],
        upstreams: &[&str],
        max_requests: u64,
        max_time: Duration,
    ) -> Self {
        Self::send(
            Requests::local(port, host, paths, upstreams),
            max_requests,
            max_time,
        )
    }

    /// Starts the loop over any [`Requests`].
    pub fn send(requests: Requests, max_requests: u64, max_time: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(TrafficStats::default()));
        let (stopping, shared) = (stop.clone(), stats.clone());
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            for (n, path) in requests.paths.iter().cycle().enumerate() {
                if stopping.load(Ordering::Relaxed) {
                    return;
                }
                let ended = if n as u64 >= max_requests {
                    Some(format!("{max_requests} requests sent"))
                } else if start.elapsed() >= max_time {
                    Some(format!("{max_time:?} elapsed"))
                } else {
                    None
                };
                if let Some(why) = ended {
                    shared.lock().expect("traffic stats").ended = Some(why);
                    return;
                }
                let targets = (requests.targets)();
                let target = targets.get(n % targets.len().max(1)).cloned();
                let answer = match &target {
                    Some(target) => http_get(target, path, Some(&requests.host))
                        .map(|a| ((requests.answered_by)(path, &a), a)),
                    None => Err(anyhow!("no target to send to")),
                };
                let mut s = shared.lock().expect("traffic stats");
                s.sent += 1;
                match answer {
                    Ok((Some(who), _)) => *s.answers.entry(who).or_default() += 1,
                    other => {
                        s.failed += 1;
                        if s.failures.len() < FAILURES_KEPT {
                            let what = match other {
                                Ok((_, a)) => format!("{} {:?}", a.status, a.body),
                                Err(e) => format!("{e:#}"),
                            };
                            let at = start.elapsed();
                            let to = target.as_deref().unwrap_or("-");
                            s.failures
                                .push(format!("{at:?}: GET {path} to {to}: {what}"));
                        }
                    }
                }
                drop(s);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Self {
            stop,
            stats,
            thread: Some(thread),
        }
    }

    pub fn stats(&self) -> TrafficStats {
        self.stats.lock().expect("traffic stats").clone()
    }

    /// Fails when any request failed or the loop stopped on its own before `now`.
    pub fn check(&self, now: &str) -> Result<TrafficStats> {
        let s = self.stats();
        ensure!(
            s.failed == 0,
            "{} of {} requests failed by {now}:\n{}",
            s.failed,
            s.sent,
            s.failures.join("\n")
        );
        if let Some(why) = &s.ended {
            bail!("the traffic loop stopped before {now}: {why}");
        }
        Ok(s)
    }

    /// Waits until `n` more requests have been answered after this call (so traffic flowed
    /// over the period in question), at most [`WAIT`].
    pub async fn more(&self, n: u64) -> Result<TrafficStats> {
        let from = self.stats().sent;
        wait_for(&format!("{n} more requests"), WAIT, || async {
            let s = self.stats();
            if s.ended.is_some() {
                bail!("the traffic loop stopped: {:?}", s.ended);
            }
            Ok((s.sent >= from + n).then_some(s))
        })
        .await
    }

    /// Stops the loop; its final numbers.
    pub fn stop(&mut self) -> TrafficStats {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.stats()
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop();
    }
}
