//! Legate on a real node (e2e/tests/node.rs, which e2e/node.sh runs on `kube-local up --node`):
//! the images the script imported, a team's backend as Pods, a Service's ready endpoints followed
//! as a load balancer follows them, and the containers as the runtime runs them.

use std::{
    process::Command,
    sync::{Arc, Mutex},
};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Endpoints;
use kube::{
    Api, Client,
    runtime::{WatchStreamExt, watcher},
};
use serde_json::Value;

use crate::HttpResponse;

/// What e2e/node.sh hands the tests, from the environment.
pub struct NodeEnv {
    /// The Envoy image, and the same image under a second tag (for a rolling update).
    pub envoy_image: String,
    pub envoy_image_next: String,
    /// The example backend (gateway-agent/examples/upstream.rs).
    pub upstream_image: String,
    /// The node's containerd socket, for `ctr`.
    pub containerd: String,
}

impl NodeEnv {
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| {
            std::env::var(name).with_context(|| format!("{name} is not set: run e2e/node.sh"))
        };
        Ok(Self {
            envoy_image: var("LEGATE_E2E_ENVOY_IMAGE")?,
            envoy_image_next: var("LEGATE_E2E_ENVOY_IMAGE_NEXT")?,
            upstream_image: var("LEGATE_E2E_UPSTREAM_IMAGE")?,
            containerd: var("LEGATE_E2E_CONTAINERD")?,
        })
    }
}

/// The port the example backend listens on in its Pod.
pub const BACKEND_PORT: u16 = 8080;

/// A team's backend in `namespace`: a Deployment `name` of the example upstream (each Pod
/// answers with its own name) behind a Service `name`, and a Mapping `/name/` to it on every
/// host. Terminates at once: the echo server holds no state worth a grace period.
pub fn backend(namespace: &str, name: &str, image: &str, replicas: u32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: echo
          image: {image}
          imagePullPolicy: Never
          args: ["$(POD_NAME)=0.0.0.0:{BACKEND_PORT}"]
          env: [{{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}]
          ports: [{{name: http, containerPort: {BACKEND_PORT}}}]
          readinessProbe:
            httpGet: {{path: /, port: http}}
            periodSeconds: 1
          securityContext:
            runAsNonRoot: true
            runAsUser: 65532
            readOnlyRootFilesystem: true
            allowPrivilegeEscalation: false
            capabilities: {{drop: [ALL]}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80, targetPort: http}}]
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  hostname: "*"
  prefix: /{name}/
  service: {name}:80
"#
    )
}

/// The backend Pod that gave a good answer to `GET /<backend>/...`: a 200 from the echo server
/// (`{"upstream": "<pod name>", ...}`) whose Pod belongs to that backend's Deployment.
pub fn backend_pod(path: &str, answer: &HttpResponse) -> Option<String> {
    let backend = path.trim_start_matches('/').split('/').next()?;
    let body: Value = serde_json::from_str(&answer.body).ok()?;
    let pod = body["upstream"].as_str()?;
    (answer.status == 200 && pod.starts_with(&format!("{backend}-"))).then(|| pod.to_owned())
}

/// The ready `IP:PORT`s (port `port_name`) of a Service's Endpoints, kept current by a watch:
/// what a load balancer in front of the gateway Pods sends to (kube-local runs no kube-proxy,
/// so the ClusterIP does not route from the host).
pub struct ReadyEndpoints {
    current: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ReadyEndpoints {
    /// Follows `service`'s Endpoints, printing each change timed from `clock`.
    pub fn follow(
        client: Client,
        namespace: &str,
        service: &str,
        port_name: &str,
        clock: std::time::Instant,
    ) -> Self {
        let current = Arc::new(Mutex::new(Vec::new()));
        let api: Api<Endpoints> = Api::namespaced(client, namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={service}"));
        let (shared, port_name) = (current.clone(), port_name.to_owned());
        let task = tokio::spawn(async move {
            let mut events = watcher(api, config)
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(event) = events.next().await {
                if let Ok(endpoints) = event {
                    let ready = ready_addresses(&endpoints, &port_name);
                    let mut current = shared.lock().expect("endpoints");
                    if *current != ready {
                        // The story of a failed request: which endpoints were ready when.
                        println!("{:?}: ready endpoints {ready:?}", clock.elapsed());
                        *current = ready;
                    }
                }
            }
        });
        Self { current, task }
    }

    pub fn current(&self) -> Vec<String> {
        self.current.lock().expect("endpoints").clone()
    }

    /// For [`crate::gateway::Requests::targets`].
    pub fn targets(&self) -> crate::gateway::Targets {
        let current = self.current.clone();
        Arc::new(move || current.lock().expect("endpoints").clone())
    }
}

impl Drop for ReadyEndpoints {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn ready_addresses(endpoints: &Endpoints, port_name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        let port = subset
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(port_name));
        let Some(port) = port else { continue };
        for address in subset.addresses.iter().flatten() {
            out.push(format!("{}:{}", address.ip, port.port));
        }
    }
    out.sort();
    out
}

/// One running container as the runtime sees it: its OCI spec's user, root and capabilities,
/// and its process's real user from /proc.
#[derive(Debug)]
pub struct Container {
    pub namespace: String,
    pub pod: String,
    pub name: String,
    pub uid: u64,
    pub process_uid: Option<u64>,
    pub read_only_root: bool,
    pub no_new_privileges: bool,
    pub capabilities: Vec<String>,
    /// Mounts the container can write, apart from the runtime's own (/proc, /dev, ...).
    pub writable_mounts: Vec<String>,
}

impl Container {
    /// What this container holds beyond an unprivileged process with a read-only root.
    pub fn excess(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.uid == 0 || self.process_uid == Some(0) {
            out.push("runs as root".to_owned());
        }
        if !self.read_only_root {
            out.push("root filesystem writable".to_owned());
        }
        if !self.no_new_privileges {
            out.push("privilege escalation allowed".to_owned());
        }
        if !self.capabilities.is_empty() {
            out.push(format!("capabilities {}", self.capabilities.join(",")));
        }
        out
    }
}

/// The runtime's and the kubelet's own mounts, in every container (the files the kubelet
/// manages belong to root: an unprivileged process cannot write them).
const RUNTIME_MOUNTS: [&str; 10] = [
    "/proc",
    "/dev",
    "/dev/pts",
    "/dev/mqueue",
    "/sys/fs/cgroup",
    "/dev/shm",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/dev/termination-log",
];

/// Every running container of Pods in `namespace`, from the node's containerd.
pub fn containers(containerd: &str, namespace: &str) -> Result<Vec<Container>> {
    let ctr = |args: &[&str]| -> Result<String> {
        let out = Command::new("ctr")
            .args(["-a", containerd, "-n", "k8s.io"])
            .args(args)
            .output()
            .context("running ctr")?;
        if !out.status.success() {
            bail!("ctr {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    // `tasks ls`: CONTAINER PID STATUS, running ones only.
    let tasks = ctr(&["tasks", "ls"])?;
    let mut out = Vec::new();
    for line in tasks.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [id, pid, "RUNNING"] = fields.as_slice() else {
            continue;
        };
        let info: Value = serde_json::from_str(&ctr(&["containers", "info", id])?)?;
        let labels = &info["Labels"];
        let label = |k: &str| labels[k].as_str().unwrap_or_default().to_owned();
        // Containers only: each Pod's sandbox (pause) is the runtime's, not the template's.
        if label("io.kubernetes.pod.namespace") != namespace
            || label("io.cri-containerd.kind") != "container"
        {
            continue;
        }
        let spec = &info["Spec"];
        let process = &spec["process"];
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        };
        let mut capabilities: Vec<String> = ["bounding", "effective", "permitted"]
            .iter()
            .flat_map(|k| strings(&process["capabilities"][*k]))
            .collect();
        capabilities.sort();
        capabilities.dedup();
        let writable_mounts = spec["mounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| !strings(&m["options"]).iter().any(|o| o == "ro"))
            .filter_map(|m| m["destination"].as_str())
            .filter(|d| !RUNTIME_MOUNTS.contains(d))
            .map(str::to_owned)
            .collect();
        let process_uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|l| l.split_whitespace().next()?.parse().ok())
            });
        out.push(Container {
            namespace: namespace.to_owned(),
            pod: label("io.kubernetes.pod.name"),
            name: label("io.kubernetes.container.name"),
            uid: process["user"]["uid"].as_u64().unwrap_or(0),
            process_uid,
            read_only_root: spec["root"]["readonly"].as_bool().unwrap_or(false),
            no_new_privileges: process["noNewPrivileges"].as_bool().unwrap_or(false),
            capabilities,
            writable_mounts,
        });
    }
    Ok(out)
}
