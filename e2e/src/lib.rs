//! Shared helpers for Legate's end-to-end tests (`tests/`), which run against a real API server:
//! the one `KUBECONFIG` names, or the local control plane `e2e/run.sh` starts with `e2e/kube-local`.
//!
//! Every test in `tests/` is `#[ignore = NEEDS_CLUSTER]`, so `cargo test --workspace` never runs
//! them by accident; `e2e/run.sh` runs them with `--include-ignored --test-threads=1`.
//!
//! Everything here is bounded: waits take a timeout, and failures name the file and document.

pub mod gateway;
pub mod node;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{self, ApiCapabilities, Scope};
use kube::{Client, Config};
use serde_json::{Value, json};

/// The reason every e2e test is ignored by default.
pub const NEEDS_CLUSTER: &str = "needs a Kubernetes API server: run e2e/run.sh";

/// The field manager of every write the tests make.
pub const FIELD_MANAGER: &str = "legate-e2e";

/// How long a CRD may take to become `Established`.
pub const CRD_TIMEOUT: Duration = Duration::from_secs(60);

/// The repository root (the workspace directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent")
        .to_path_buf()
}

/// A client for the cluster `KUBECONFIG` names. Refuses to guess: without `KUBECONFIG` the tests
/// would otherwise talk to whatever `~/.kube/config` or the in-cluster config points at.
pub async fn client() -> Result<Client> {
    let kc = std::env::var("KUBECONFIG")
        .map_err(|_| anyhow!("KUBECONFIG is not set: run the e2e tests through e2e/run.sh"))?;
    let config = Config::infer()
        .await
        .with_context(|| format!("reading KUBECONFIG={kc}"))?;
    Client::try_from(config).context("building a Kubernetes client")
}

/// The server's minor version (20 for kube-apiserver v1.20.2); tolerates suffixes like `25+`.
pub async fn server_minor(client: &Client) -> Result<u32> {
    let info = client.apiserver_version().await.context("GET /version")?;
    let digits: String = info
        .minor
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .with_context(|| format!("server minor version {:?}", info.minor))
}

/// A namespace name unique to this test run: `<prefix>-<time>-<counter>`, at most 63 characters.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() % 100_000_000)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = format!("{prefix}-{secs}-{n}");
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

/// Polls `check` every 250 ms until it returns `Ok(Some(_))`, at most `timeout`; the error names
/// `what` and the last error or state seen.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let start = Instant::now();
    loop {
        let last = match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => "condition not met yet".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if start.elapsed() >= timeout {
            bail!("timed out after {timeout:?} waiting for {what} (last: {last})");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One YAML document of a file, with where it came from.
#[derive(Clone, Debug)]
pub struct Doc {
    pub file: PathBuf,
    /// 0-based index among the file's non-null documents.
    pub index: usize,
    pub value: Value,
}

impl Doc {
    /// `path#index (Kind name)`, for assertion messages.
    pub fn describe(&self) -> String {
        let rel = self
            .file
            .strip_prefix(repo_root())
            .unwrap_or(&self.file)
            .display()
            .to_string();
        format!(
            "{rel} document #{} ({} {})",
            self.index,
            self.value["kind"].as_str().unwrap_or("<no kind>"),
            self.value["metadata"]["name"]
                .as_str()
                .unwrap_or("<no name>")
        )
    }

    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.value["metadata"]["namespace"].as_str()
    }
}

/// Every non-null document of a multi-document YAML file.
pub fn read_docs(file: &Path) -> Result<Vec<Doc>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let values: Vec<Value> = serde_saphyr::from_multiple(&text)
        .map_err(|e| anyhow!("parsing {} as YAML: {e}", file.display()))?;
    Ok(values
        .into_iter()
        .filter(|v| !v.is_null())
        .enumerate()
        .map(|(index, value)| Doc {
            file: file.to_path_buf(),
            index,
            value,
        })
        .collect())
}

/// `*.yaml` and `*.yml` files under `dir` (recursively when asked), sorted; none when `dir` is absent.
pub fn yaml_files(dir: &Path, recursive: bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if recursive {
                    stack.push(p);
                }
            } else if matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every document of every file under `dir`.
pub fn read_dir_docs(dir: &Path, recursive: bool) -> Result<Vec<Doc>> {
    let mut docs = Vec::new();
    for f in yaml_files(dir, recursive) {
        docs.extend(read_docs(&f)?);
    }
    Ok(docs)
}

/// The CRD manifests the project ships: `config/crd/bases/*.yaml`.
pub fn crd_files() -> Vec<PathBuf> {
    yaml_files(&repo_root().join("config/crd/bases"), false)
}

/// Server-side applies one CRD and waits for it to be `Established`; returns its name.
pub async fn install_crd(client: &Client, doc: &Doc) -> Result<String> {
    let name = doc.value["metadata"]["name"]
        .as_str()
        .ok_or_else(|| anyhow!("{}: no metadata.name", doc.describe()))?
        .to_string();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    match api.patch(&name, &pp, &Patch::Apply(&doc.value)).await {
        Ok(_) => {}
        // Kubernetes < 1.23 does not know `x-kubernetes-validations` (CEL rules): a create or
        // client-side apply drops it silently, but server-side apply refuses the whole CRD with
        // "field not declared in schema". Apply it without the rules there, and say so.
        Err(kube::Error::Api(s)) if s.message.contains("x-kubernetes-validations") => {
            println!(
                "note: {}: this server refuses x-kubernetes-validations in a server-side apply \
                 ({}); applying it without its CEL rules",
                doc.describe(),
                s.message
            );
            let mut stripped = doc.value.clone();
            strip_key(&mut stripped, "x-kubernetes-validations");
            api.patch(&name, &pp, &Patch::Apply(&stripped))
                .await
                .with_context(|| {
                    format!("server-side apply of {} without CEL rules", doc.describe())
                })?;
        }
        Err(e) => {
            return Err(e).with_context(|| format!("server-side apply of {}", doc.describe()));
        }
    }
    wait_for(
        &format!("CRD {name} to be Established"),
        CRD_TIMEOUT,
        || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let crd = api.get(&name).await?;
                let conds = crd.status.and_then(|s| s.conditions).unwrap_or_default();
                let established = conds
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                if let Some(c) = conds
                    .iter()
                    .find(|c| c.type_ == "NamesAccepted" && c.status == "False")
                {
                    bail!(
                        "NamesAccepted=False: {}",
                        c.message.clone().unwrap_or_default()
                    );
                }
                Ok(established.then_some(()))
            }
        },
    )
    .await?;
    Ok(name)
}

/// Removes `key` from every object inside `v`.
pub fn strip_key(v: &mut Value, key: &str) {
    match v {
        Value::Object(m) => {
            m.remove(key);
            m.values_mut().for_each(|x| strip_key(x, key));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| strip_key(x, key)),
        _ => {}
    }
}

/// Installs every CRD under `config/crd/bases` (idempotent); fails when there are none.
pub async fn install_crds(client: &Client) -> Result<Vec<String>> {
    let files = crd_files();
    if files.is_empty() {
        bail!(
            "no CRDs under config/crd/bases: generate them with \
             `cargo run -p legate-crds --bin crdgen -- config/crd/bases`"
        );
    }
    let mut names = Vec::new();
    for f in files {
        for doc in read_docs(&f)? {
            names.push(install_crd(client, &doc).await?);
        }
    }
    Ok(names)
}

/// Resolves kinds to API resources through discovery, with a cache and a bounded retry (a CRD
/// established a moment ago may not be in discovery yet).
pub struct Resolver {
    client: Client,
    cache: HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>,
}

impl Resolver {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            cache: HashMap::new(),
        }
    }

    pub async fn resolve(&mut self, value: &Value) -> Result<(ApiResource, ApiCapabilities)> {
        let api_version = value["apiVersion"]
            .as_str()
            .ok_or_else(|| anyhow!("no apiVersion"))?;
        let kind = value["kind"].as_str().ok_or_else(|| anyhow!("no kind"))?;
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        if let Some(hit) = self.cache.get(&gvk) {
            return Ok(hit.clone());
        }
        let client = self.client.clone();
        let found = wait_for(
            &format!("{api_version} {kind} to appear in discovery"),
            Duration::from_secs(20),
            || {
                let client = client.clone();
                let gvk = gvk.clone();
                async move { Ok(Some(discovery::pinned_kind(&client, &gvk).await?)) }
            },
        )
        .await?;
        self.cache.insert(gvk, found.clone());
        Ok(found)
    }

    /// A dynamic API for `value`, in `namespace` when the kind is namespaced.
    pub async fn api_for(
        &mut self,
        value: &Value,
        namespace: &str,
    ) -> Result<(Api<DynamicObject>, Scope)> {
        let (ar, caps) = self.resolve(value).await?;
        let api = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(self.client.clone(), namespace, &ar),
            Scope::Cluster => Api::all_with(self.client.clone(), &ar),
        };
        Ok((api, caps.scope))
    }
}

/// The document as an object for `namespace`: its own namespace replaced when namespaced.
pub fn in_namespace(value: &Value, scope: &Scope, namespace: &str) -> Result<DynamicObject> {
    let mut v = value.clone();
    if matches!(scope, Scope::Namespaced) {
        v["metadata"]["namespace"] = json!(namespace);
    } else if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    serde_json::from_value(v).context("document is not a Kubernetes object")
}

/// Creates the document in `namespace` (namespaced kinds) with `dryRun=All` when `dry_run`.
/// The outer error is a test-harness problem; the inner one is the server's answer.
pub async fn create(
    resolver: &mut Resolver,
    value: &Value,
    namespace: &str,
    dry_run: bool,
) -> Result<std::result::Result<DynamicObject, kube::Error>> {
    let (api, scope) = resolver.api_for(value, namespace).await?;
    let obj = in_namespace(value, &scope, namespace)?;
    let pp = PostParams {
        dry_run,
        field_manager: Some(FIELD_MANAGER.into()),
    };
    Ok(api.create(&pp, &obj).await)
}

/// Server-side applies the document in `namespace` (namespaced kinds), `dryRun=All` when asked.
pub async fn apply(
    resolver: &mut Resolver,
    value: &Value,
    namespace: &str,
    dry_run: bool,
) -> Result<std::result::Result<DynamicObject, kube::Error>> {
    let (api, scope) = resolver.api_for(value, namespace).await?;
    let obj = in_namespace(value, &scope, namespace)?;
    let name = obj
        .metadata
        .name
        .clone()
        .ok_or_else(|| anyhow!("no metadata.name"))?;
    let mut pp = PatchParams::apply(FIELD_MANAGER).force();
    pp.dry_run = dry_run;
    Ok(api.patch(&name, &pp, &Patch::Apply(&obj)).await)
}

/// The server's message for a failed call (the `Status` message for API errors).
pub fn error_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} (HTTP {}, reason {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}

/// Creates namespace `name` with `labels` if it does not exist; returns whether it created it.
pub async fn ensure_namespace(
    client: &Client,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<bool> {
    let api: Api<Namespace> = Api::all(client.clone());
    if api.get_opt(name).await?.is_some() {
        return Ok(false);
    }
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels, "annotations": {"legate.dev/e2e": "true"}}
    }))?;
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e).with_context(|| format!("creating namespace {name}")),
    }
}

/// Deletes a namespace (best effort; namespace deletion finishes in the background).
pub async fn delete_namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    if let Err(e) = api.delete(name, &DeleteParams::default()).await {
        eprintln!("note: could not delete namespace {name}: {e}");
    }
}

/// A namespace that is deleted when dropped (best effort, from a blocking kubectl call so it
/// works from `Drop` inside the test's runtime too).
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    pub async fn create(client: &Client, prefix: &str) -> Result<Self> {
        Self::labelled(client, prefix, &[]).await
    }

    /// A namespace with `labels` (as an installation's `allowedRoutes` selector reads them).
    pub async fn labelled(client: &Client, prefix: &str, labels: &[(&str, &str)]) -> Result<Self> {
        let name = unique_name(prefix);
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ensure_namespace(client, &name, &labels).await?;
        Ok(Self { name })
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::env::var_os("LEGATE_E2E_KEEP").is_some() {
            eprintln!("note: keeping namespace {} (LEGATE_E2E_KEEP)", self.name);
            return;
        }
        let _ = Command::new("kubectl")
            .args(["delete", "namespace", &self.name, "--wait=false"])
            .args(["--ignore-not-found", "--request-timeout=20s"])
            .output();
    }
}

/// Runs `kubectl ARGS` against `KUBECONFIG` with a fresh discovery cache (so CRDs installed a
/// moment ago are seen) and a request timeout.
pub fn kubectl(args: &[&str]) -> Result<Output> {
    let cache = std::env::temp_dir().join(unique_name("legate-e2e-kubectl-cache"));
    let out = Command::new("kubectl")
        .args(args)
        .arg("--request-timeout=30s")
        .arg(format!("--cache-dir={}", cache.display()))
        .output()
        .with_context(|| format!("running kubectl {}", args.join(" ")))?;
    let _ = std::fs::remove_dir_all(&cache);
    Ok(out)
}

/// Like [`kubectl`], failing with its stderr when it exits non-zero; returns stdout.
pub fn kubectl_ok(args: &[&str]) -> Result<String> {
    let out = kubectl(args)?;
    if !out.status.success() {
        bail!(
            "kubectl {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `kubectl apply -f` of `yaml` (one or more documents), written to a temporary file first.
pub fn kubectl_apply(yaml: &str) -> Result<String> {
    let file = std::env::temp_dir().join(format!("{}.yaml", unique_name("legate-e2e-apply")));
    std::fs::write(&file, yaml)?;
    let out = kubectl_ok(&["apply", "-f", file.to_str().expect("a UTF-8 temp path")]);
    let _ = std::fs::remove_file(&file);
    out
}

/// `kubectl get ... -o json`, parsed.
pub fn kubectl_json(args: &[&str]) -> Result<Value> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let out = kubectl_ok(&all)?;
    serde_json::from_str(&out).with_context(|| format!("kubectl {}: not JSON", args.join(" ")))
}

/// `KUBECONFIG`'s contents with every user acting as `user` (impersonation), so what `user` may
/// do is what the RBAC under test grants, not what the test's own credentials may.
pub fn impersonating_kubeconfig(user: &str) -> Result<String> {
    let path = std::env::var("KUBECONFIG").context("KUBECONFIG")?;
    let mut config: Value = serde_saphyr::from_str(&std::fs::read_to_string(&path)?)
        .map_err(|e| anyhow!("parsing {path}: {e}"))?;
    for entry in config["users"].as_array_mut().into_iter().flatten() {
        entry["user"]["as"] = json!(user);
    }
    Ok(serde_json::to_string(&config)?)
}

/// Writes [`impersonating_kubeconfig`] for `user` into `dir`; returns its path.
pub fn write_impersonating_kubeconfig(dir: &Path, user: &str) -> Result<PathBuf> {
    let path = dir.join("kubeconfig");
    std::fs::write(&path, impersonating_kubeconfig(user)?)?;
    Ok(path)
}

/// A directory of its own under the temporary directory, for one process's files.
pub fn temp_dir(prefix: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(unique_name(prefix));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// A port free on 127.0.0.1 a moment ago.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Installs CRDs, RBAC and the operator's Deployment from `config/default` as a user would
/// (`kubectl apply -k`).
pub fn apply_default(minor: u32) -> Result<()> {
    // Before 1.25 kubectl refuses the CRDs' CEL rules; the server drops them (README).
    let default = repo_root().join("config/default");
    let validate = if minor < 25 {
        "--validate=false"
    } else {
        "--validate=true"
    };
    kubectl_ok(&["apply", "-k", default.to_str().unwrap(), validate])?;
    Ok(())
}

/// [`apply_default`], with the operator's Deployment scaled to zero where no kubelet runs its
/// pod: the tests run the operator as a local process instead ([`Operator`]).
pub fn install_default(minor: u32) -> Result<()> {
    apply_default(minor)?;
    kubectl_ok(&[
        "scale",
        "deployment/legate-operator",
        "-n",
        "legate-system",
        "--replicas=0",
    ])?;
    Ok(())
}

/// A program run as a local process where a pod would run it (no kubelet runs pods here):
/// stdout and stderr go to a log file; stopped (SIGTERM, then SIGKILL) when dropped, and its
/// log printed then if the test is panicking.
pub struct LocalProcess {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl LocalProcess {
    /// Spawns `command` with its output in `log`.
    pub fn spawn(name: &str, mut command: Command, log: PathBuf) -> Result<Self> {
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .spawn()
            .with_context(|| format!("starting {name}: {command:?}"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log,
        })
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, and the exit status within 10 s.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("{} did not stop within 10 s of SIGTERM", self.name)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `max` bytes of the log (from a line start), for failure messages.
    pub fn log_tail(&self, max: usize) -> String {
        let log = self.log();
        if log.len() <= max {
            return log;
        }
        let mut cut = log.len() - max;
        while !log.is_char_boundary(cut) {
            cut += 1;
        }
        let tail = &log[cut..];
        let start = tail.find('\n').map_or(0, |i| i + 1);
        format!("[... {cut} bytes before]\n{}", &tail[start..])
    }

    /// Prints the log tail, headed by the process's name.
    pub fn print_log(&self) {
        eprintln!(
            "--- {} log ({}) ---\n{}",
            self.name,
            self.log.display(),
            self.log_tail(40_000)
        );
    }
}

impl Drop for LocalProcess {
    fn drop(&mut self) {
        // Gracefully first, so a lease is released for the next test.
        if self.stop().is_err() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            self.print_log();
        }
    }
}

/// The ServiceAccount `config/rbac` gives the operator.
pub const OPERATOR_SERVICE_ACCOUNT: &str = "system:serviceaccount:legate-system:legate-operator";

/// The operator binary (`target/debug/legate-operator`, or `$LEGATE_OPERATOR_BIN`), run as a
/// local process acting as its ServiceAccount; stopped on drop.
pub struct Operator {
    pub process: LocalProcess,
    metrics: String,
}

impl Operator {
    /// Starts `legate-operator run --identity IDENTITY` with a kubeconfig that acts as the
    /// operator's ServiceAccount, so `config/rbac` is what it gets.
    pub fn start(identity: &str) -> Result<Self> {
        let binary = std::env::var_os("LEGATE_OPERATOR_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target/debug/legate-operator"));
        let dir = temp_dir("legate-e2e-operator")?;
        let kubeconfig = write_impersonating_kubeconfig(&dir, OPERATOR_SERVICE_ACCOUNT)?;
        let metrics = format!("127.0.0.1:{}", free_port()?);
        let mut command = Command::new(&binary);
        command
            .args(["run", "--metrics-address", &metrics])
            .args(["--identity", identity])
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "info,legate_operator=debug");
        let process = LocalProcess::spawn(
            &format!("legate-operator ({})", binary.display()),
            command,
            dir.join("operator.log"),
        )
        .context("the operator binary is built by e2e/run.sh")?;
        Ok(Self { process, metrics })
    }

    pub fn stop(&mut self) -> Result<ExitStatus> {
        self.process.stop()
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    /// The operator's `/metrics` text.
    pub fn metrics(&self) -> Result<String> {
        Ok(http_get(&self.metrics, "/metrics", None)?.body)
    }
}

/// An HTTP answer.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

/// `GET path` over HTTP/1.1 to `address` (`HOST:PORT`), with `Host: host` (or the address),
/// one connection per request, 10 s at most (5 s to connect). Blocking: upstreams must not share the caller's
/// thread ([`HttpUpstream`] runs on its own).
pub fn http_get(address: &str, path: &str, host: Option<&str>) -> Result<HttpResponse> {
    // A bounded connect: an address that vanished (a deleted Pod's) drops SYNs, and the
    // system's own timeout is two minutes.
    let socket = address
        .to_socket_addrs()
        .with_context(|| format!("resolving {address}"))?
        .next()
        .ok_or_else(|| anyhow!("{address} resolves to nothing"))?;
    let mut stream = TcpStream::connect_timeout(&socket, Duration::from_secs(5))
        .with_context(|| format!("connecting to {address}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        host.unwrap_or(address)
    )?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("GET {path} from {address}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("GET {path} from {address}: no HTTP head in {text:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("GET {path} from {address}: no status in {head:?}"))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok(HttpResponse { status, body })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The value of the Prometheus sample `name` (with its labels, if any, as written) in `text`.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The sum of every sample of `name` in `text`, whatever their labels (0 when there is none).
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let value = match rest.strip_prefix('{') {
                Some(labelled) => labelled.rsplit_once('}')?.1,
                None => rest,
            };
            value.strip_prefix(' ')?.trim().parse::<f64>().ok()
        })
        .sum()
}

/// A tiny HTTP/1.1 server (on 127.0.0.1 unless told otherwise) answering every request `200`
/// with its `name` as the body, on a thread of its own; stops when dropped.
pub struct HttpUpstream {
    pub name: String,
    pub port: u16,
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl HttpUpstream {
    /// On a free port of 127.0.0.1.
    pub fn start(name: &str) -> Result<Self> {
        Self::start_on(name, "127.0.0.1:0")
    }

    /// On `address` (`IP:PORT`, port 0 for a free one).
    pub fn start_on(name: &str, address: &str) -> Result<Self> {
        let listener =
            TcpListener::bind(address).with_context(|| format!("listening on {address}"))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (body, stopping) = (name.to_owned(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let body = body.clone();
                std::thread::spawn(move || serve_http(stream, &body));
            }
        });
        Ok(Self {
            name: name.to_owned(),
            port: addr.port(),
            addr,
            stop,
        })
    }

    /// `127.0.0.1:PORT`, as a Mapping's `service`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Answers each request on one (keep-alive) connection until the peer closes it or asks to
/// (`Connection: close`).
fn serve_http(mut stream: TcpStream, body: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
            let close = head.contains("\r\nconnection: close");
            pending.drain(..end + 4);
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n{}\r\n{body}",
                body.len(),
                if close { "connection: close\r\n" } else { "" }
            );
            if stream.write_all(answer.as_bytes()).is_err() || close {
                return;
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
        }
    }
}

impl Drop for HttpUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accepting thread so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// One request for [`can`] to authorize: `verb` on `resource` (of `group`, `""` for the core
/// group), optionally its `subresource` and one object by `name`, in `namespace` (`None`:
/// cluster-wide).
#[derive(Clone, Debug, Default)]
pub struct Access<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

impl<'a> Access<'a> {
    /// `verb` on `resource` of `group` in `namespace`.
    pub fn new(verb: &'a str, group: &'a str, resource: &'a str, namespace: &'a str) -> Self {
        Self {
            verb,
            group,
            resource,
            namespace: Some(namespace),
            ..Self::default()
        }
    }
}

impl std::fmt::Display for Access<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            self.group
        };
        write!(f, "{} {group}/{}", self.verb, self.resource)?;
        if let Some(sub) = self.subresource {
            write!(f, "/{sub}")?;
        }
        if let Some(name) = self.name {
            write!(f, " {name:?}")?;
        }
        match self.namespace {
            Some(ns) => write!(f, " in {ns}"),
            None => write!(f, " cluster-wide"),
        }
    }
}

/// Whether the API server's authorizer allows `user` (with the groups Kubernetes gives a
/// ServiceAccount, when it is one) `access`: a SubjectAccessReview, the question
/// `kubectl auth can-i --as` asks.
pub async fn can(client: &Client, user: &str, access: &Access<'_>) -> Result<bool> {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
    };
    let mut groups = vec!["system:authenticated".to_owned()];
    if let Some(rest) = user.strip_prefix("system:serviceaccount:") {
        let namespace = rest.split(':').next().unwrap_or_default();
        groups.push("system:serviceaccounts".to_owned());
        groups.push(format!("system:serviceaccounts:{namespace}"));
    }
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_owned()),
            groups: Some(groups),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(access.verb.to_owned()),
                group: Some(access.group.to_owned()),
                resource: Some(access.resource.to_owned()),
                subresource: access.subresource.map(str::to_owned),
                namespace: access.namespace.map(str::to_owned),
                name: access.name.map(str::to_owned),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .with_context(|| format!("SubjectAccessReview: may {user} {access}?"))?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// JSON paths present in `sent` but missing from `got` (what the server pruned), ignoring null
/// values; `metadata` and `status` are not compared.
pub fn pruned_fields(sent: &Value, got: &Value) -> Vec<String> {
    fn walk(path: &str, sent: &Value, got: &Value, out: &mut Vec<String>) {
        match (sent, got) {
            (Value::Object(s), Value::Object(g)) => {
                for (k, v) in s {
                    if v.is_null() || (path.is_empty() && (k == "metadata" || k == "status")) {
                        continue;
                    }
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    match g.get(k) {
                        Some(gv) => walk(&p, v, gv, out),
                        None => out.push(p),
                    }
                }
            }
            (Value::Array(s), Value::Array(g)) => {
                for (i, v) in s.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    match g.get(i) {
                        Some(gv) => walk(&p, v, gv, out),
                        None => out.push(p),
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", sent, got, &mut out);
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruned_fields_lists_dropped_keys_only() {
        let sent = json!({"kind": "Mapping", "metadata": {"x": 1}, "status": {"a": 1},
            "spec": {"prefix": "/", "typo": 1, "nothing": null, "list": [{"a": 1, "b": 2}]}});
        let got =
            json!({"kind": "Mapping", "spec": {"prefix": "/", "extra": 3, "list": [{"a": 1}]}});
        assert_eq!(
            pruned_fields(&sent, &got),
            vec!["spec.list[0].b", "spec.typo"]
        );
    }

    #[test]
    fn metric_sum_adds_every_labelled_sample_of_one_name() {
        let text = "# HELP x_total pushes\nx_total{type=\"a\"} 2\nx_total{type=\"b\"} 3\n\
                    x_total_other 7\nx_total 1\n";
        assert_eq!(metric_sum(text, "x_total"), 6.0);
        assert_eq!(metric_sum(text, "y_total"), 0.0);
    }

    #[test]
    fn unique_names_are_valid_namespace_names() {
        let a = unique_name("legate-e2e");
        let b = unique_name("legate-e2e");
        assert_ne!(a, b);
        assert!(a.len() <= 63 && a.starts_with("legate-e2e-"));
    }
}
