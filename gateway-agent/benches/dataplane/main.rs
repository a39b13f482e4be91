//! The data-plane benchmark of issue #17 (`make bench-dataplane`): real Envoy under load.
//!
//! Envoy scans a virtual host's route list in order, so with a linear list the last route is
//! served slower than the first, the more so the more routes there are. This measures, with
//! Envoy (`--concurrency 1`) alone on core 0 and wrk, the upstream and the agent on core 1:
//! - requests/s of the first and the last route (Envoy's evaluation order, taken from the IR)
//!   at 100 and 10,000 Mappings, on one Host and over 100, behind an XFP and an INSECURE
//!   Listener, served by the agent over ADS, and by Envoy from a static file with the same
//!   routes as a linear list and as a matcher tree (`prefix_match_map` on `:path`);
//! - at 10,000 Mappings (one Host, XFP): a rewritten Mapping file to its new behaviour served,
//!   start to the last route served (agent and Envoy cold, against Envoy from a static file),
//!   and the failed requests of a route under load while 50 other changes are applied;
//! - with `KUBECONFIG` set (`make bench-dataplane-kube` starts kube-local), the same fleet as
//!   objects in that API server, served by the agent in Kubernetes mode: its rates, its start,
//!   and a patched Mapping to its new behaviour served.
//!
//! It needs wrk and minutes, so a plain `cargo bench` skips it: it runs with
//! `LEGATE_BENCH_DATAPLANE=1` (or any argument after `--`). Knobs (environment):
//! `LEGATE_BENCH_WRK_SECONDS` (3), `LEGATE_BENCH_WRK_CONNECTIONS` (16),
//! `LEGATE_BENCH_REPEATS` (2: runs per route, the best kept), `LEGATE_BENCH_MAPPINGS` (`100,10000`), `LEGATE_BENCH_CHANGES` (20),
//! `LEGATE_BENCH_CHANGES_UNDER_LOAD` (50), `LEGATE_BENCH_NICE` (-10: the priority of everything
//! the bench runs; 0 leaves it). The table is printed and written to
//! `<target dir>/bench-dataplane.md`.

mod envoy_config;
mod fleet;
mod kubernetes;
#[path = "../../tests/support/machine.rs"]
mod machine;
mod process;
mod wrk;

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    str::FromStr,
    time::{Duration, Instant},
};

use envoy_config::RouteTable;
use fleet::{Fleet, Model, Plan, RouteRef};
use legate_agent::bootstrap::{BootstrapParams, bootstrap, render_yaml};
use machine::{envoy_binary, free_port};
use process::{ENVOY_CORE, OTHER_CORE, Process, Target, get, poll};
use wrk::{Load, Wrk};

/// The upstream's ports: the Mappings' services, round-robin.
const SERVICES: usize = 4;
/// How long a gateway may take to serve its last route after it is started.
const START_DEADLINE: Duration = Duration::from_secs(300);
/// How long a changed Mapping may take to be served.
const CHANGE_DEADLINE: Duration = Duration::from_secs(60);
/// Between probes of a changed route. Back to back, the probes would keep Envoy's one worker,
/// on the core where its main thread applies the change, busy answering them; this adds at
/// most itself to a change's time.
const CHANGE_PROBE_PAUSE: Duration = Duration::from_millis(1);
/// Before each timed change: longer than the agent's debounce (`--debounce-ms`, 100 ms by
/// default). A change that follows another by less is a burst by design, and waits for the
/// burst to end; timed back to back, every other change measured that wait instead of the
/// change path. The 50 changes under load still follow each other at once.
const CHANGE_QUIET: Duration = Duration::from_millis(250);
/// Between probes while waiting for a process to come up: often enough to time a start to a few
/// milliseconds, seldom enough not to slow the agent, which shares the prober's core.
const START_PROBE_PAUSE: Duration = Duration::from_millis(5);
/// Between scrapes of the agent's metrics while it writes statuses.
const STATUS_PROBE_PAUSE: Duration = Duration::from_millis(200);
const HOST_COUNTS: [usize; 2] = [1, 100];
const MODELS: [Model; 2] = [Model::Xfp, Model::Insecure];

fn main() {
    if std::env::var("LEGATE_BENCH_DATAPLANE").as_deref() != Ok("1")
        && !std::env::args().skip(1).any(|a| a != "--bench")
    {
        println!("dataplane: skipped (needs wrk and minutes): run `make bench-dataplane`");
        return;
    }
    process::pin_self(OTHER_CORE);
    process::prioritize_self(env_or("LEGATE_BENCH_NICE", -10));
    let bench = Bench::new();
    let report = bench.run();
    let markdown = report.markdown(&bench);
    println!("\n{markdown}");
    let out = target_dir().join("bench-dataplane.md");
    std::fs::write(&out, &markdown).unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
    println!("written to {}", out.display());
}

/// `<target dir>` of this build: the bench runs as `<target dir>/<profile>/deps/dataplane-*`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the bench's own path");
    exe.ancestors()
        .nth(3)
        .expect("the bench runs from <target>/<profile>/deps")
        .to_owned()
}

fn env_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not valid"))
        })
        .unwrap_or(default)
}

/// What is run and with what.
struct Bench {
    wrk: Wrk,
    /// Load runs of each route, the best kept.
    repeats: usize,
    mapping_counts: Vec<usize>,
    changes: usize,
    changes_under_load: usize,
    envoy: PathBuf,
    agent: PathBuf,
    /// The API server of the Kubernetes measurements, when `KUBECONFIG` names one.
    cluster: Option<kubernetes::Cluster>,
    work: tempfile::TempDir,
}

impl Bench {
    fn new() -> Self {
        let mapping_counts: String = env_or("LEGATE_BENCH_MAPPINGS", "100,10000".to_owned());
        Self {
            wrk: Wrk {
                seconds: env_or("LEGATE_BENCH_WRK_SECONDS", 3),
                // Enough requests in flight that Envoy's one worker is busy rather than waiting
                // on round trips through the shared core: the rate then shows its CPU per route.
                connections: env_or("LEGATE_BENCH_WRK_CONNECTIONS", 16),
            },
            repeats: env_or("LEGATE_BENCH_REPEATS", 2).max(1),
            mapping_counts: mapping_counts
                .split(',')
                .map(|n| n.trim().parse().expect("LEGATE_BENCH_MAPPINGS: numbers"))
                .collect(),
            changes: env_or("LEGATE_BENCH_CHANGES", 20),
            changes_under_load: env_or("LEGATE_BENCH_CHANGES_UNDER_LOAD", 50),
            envoy: envoy_binary(),
            agent: PathBuf::from(env!("CARGO_BIN_EXE_legate-agent")),
            cluster: kubernetes::Cluster::connect(),
            work: tempfile::tempdir().expect("a work directory"),
        }
    }

    fn run(&self) -> Report {
        let services: Vec<u16> = (0..SERVICES).map(|_| free_port()).collect();
        let _upstream = self.start_upstream(&services);
        let upstream = self.wrk.run(&upstream_target(services[0]));
        println!("upstream alone: {:.0} req/s", upstream.requests_per_s);
        let mut report = Report {
            upstream,
            rows: Vec::new(),
            changes: None,
            kubernetes_changes: None,
            kubernetes_statuses: None,
        };
        let largest = *self
            .mapping_counts
            .iter()
            .max()
            .expect("some Mapping counts");
        let fleet = |mappings, hosts, model| Fleet {
            mappings,
            hosts,
            model,
            listener_port: free_port(),
            services: services.clone(),
        };
        let served_by = [
            Served::Agent,
            Served::Static(RouteTable::Linear),
            Served::Static(RouteTable::MatcherTree),
        ];
        for &mappings in &self.mapping_counts {
            for hosts in HOST_COUNTS {
                for model in MODELS {
                    // The changes are measured where issue #17 states them: the largest fleet,
                    // one Host, behind the XFP Listener (Emissary's usual setup).
                    let measure_changes = mappings == largest && hosts == 1 && model == Model::Xfp;
                    let fleet = fleet(mappings, hosts, model);
                    self.measure_fleet(&fleet, &served_by, measure_changes, &mut report);
                }
            }
        }
        // Last: the API server's work (thousands of creates and status writes) must not fall on
        // the other measurements.
        if self.cluster.is_some() {
            let fleet = fleet(largest, 1, Model::Xfp);
            self.measure_fleet(&fleet, &[Served::Kubernetes], true, &mut report);
        }
        report
    }

    /// The API server: [`Served::Kubernetes`] is measured only with one.
    fn cluster(&self) -> &kubernetes::Cluster {
        self.cluster
            .as_ref()
            .expect("Kubernetes mode is measured only when KUBECONFIG names a cluster")
    }

    /// The upstream Envoy, on the core wrk uses (not on the measured Envoy's).
    fn start_upstream(&self, ports: &[u16]) -> Process {
        let admin = free_port();
        let config = write_json(
            self.work.path(),
            "upstream.json",
            &envoy_config::upstream(ports, admin),
        );
        let process = self.start_envoy("upstream", OTHER_CORE, &config, admin);
        let target = upstream_target(ports[0]);
        poll("the upstream", START_DEADLINE, START_PROBE_PAUSE, || {
            get(&target).filter(|a| a.status == 200)
        });
        process
    }

    fn start_envoy(&self, name: &str, core: u32, config: &Path, admin_port: u16) -> Process {
        // A --base-id of its own (its admin port, ours while it runs): Envoys on one machine
        // must not share one.
        let args = [
            "-c".to_owned(),
            config.display().to_string(),
            "--concurrency".into(),
            "1".into(),
            "--disable-hot-restart".into(),
            "--base-id".into(),
            admin_port.to_string(),
            "--log-level".into(),
            "warn".into(),
        ];
        Process::spawn(name, core, &self.envoy, &args, self.work.path())
    }

    /// Every measurement of one fleet, with each way of serving it.
    fn measure_fleet(
        &self,
        fleet: &Fleet,
        served_by: &[Served],
        measure_changes: bool,
        report: &mut Report,
    ) {
        let dir = tempfile::tempdir_in(self.work.path()).expect("a config directory");
        fleet.write(dir.path());
        let plan = fleet.plan(dir.path());
        if served_by.contains(&Served::Kubernetes) {
            self.cluster().load(dir.path());
        }
        for &served in served_by {
            let gateway = self.start_gateway(served, fleet, dir.path(), &plan);
            if let (Served::Kubernetes, Some(metrics)) = (served, gateway.agent_metrics) {
                // A new gateway writes the status of every Mapping, and its watches deliver
                // each write back: rates and changes are measured once that is over.
                poll(
                    "the agent to write every Mapping's status",
                    START_DEADLINE,
                    STATUS_PROBE_PAUSE,
                    || {
                        (metric(metrics, "_status_writes_total") >= fleet.mappings as f64)
                            .then_some(())
                    },
                );
                report.kubernetes_statuses = Some(gateway.started.elapsed());
            }
            let (first, last) = self.first_and_last(fleet, &plan);
            let row = Row {
                mappings: fleet.mappings,
                hosts: fleet.hosts,
                model: fleet.model,
                served,
                routes_in_vhost: plan.routes_in_vhost,
                first: (plan.first.position, first),
                last: (plan.last.position, last),
                start_to_serving: gateway.start_to_serving,
            };
            println!("{}", row.markdown());
            report.rows.push(row);
            let (true, Some(metrics)) = (measure_changes, gateway.agent_metrics) else {
                continue;
            };
            let last = plan.last.mapping;
            if served == Served::Kubernetes {
                let cluster = self.cluster();
                let patch =
                    |n| cluster.patch_mapping(&fleet::mapping_name(last), fleet::changed(n));
                report.kubernetes_changes =
                    Some(self.measure_changes(fleet, &plan, metrics, &patch));
            } else {
                let rewrite = |n| {
                    let file = fleet::mapping_file(last);
                    fleet::write_file(dir.path(), &file, &fleet.mapping(last, Some(n)));
                };
                report.changes = Some(self.measure_changes(fleet, &plan, metrics, &rewrite));
            }
        }
    }

    /// Starts Envoy (and for [`Served::Agent`] the agent) cold, and times it until the last
    /// route answers 200: the last route is the one served last.
    fn start_gateway(&self, served: Served, fleet: &Fleet, dir: &Path, plan: &Plan) -> Gateway {
        let admin = free_port();
        let metrics = free_port();
        // Configuration files are written before the clock starts: a deployment has them.
        let (agent_args, config) = match served {
            Served::Agent | Served::Kubernetes => {
                let ads = free_port();
                let config = self.agent_bootstrap(ads, admin);
                let mut args = agent_args(ads, admin, metrics);
                if served == Served::Kubernetes {
                    args.extend(self.cluster().agent_args());
                } else {
                    args.extend(["--config-dir".into(), dir.display().to_string()]);
                }
                (Some(args), config)
            }
            Served::Static(table) => {
                let bootstrap = envoy_config::gateway(&plan.ir, table, admin);
                let name = format!("gateway-{admin}.json");
                (None, write_json(self.work.path(), &name, &bootstrap))
            }
        };
        let started = Instant::now();
        // As in a pod, the agent and Envoy start together.
        let mut processes: Vec<Process> = agent_args
            .iter()
            .map(|args| Process::spawn("agent", OTHER_CORE, &self.agent, args, self.work.path()))
            .collect();
        processes.push(self.start_envoy("envoy", ENVOY_CORE, &config, admin));
        let last = route_target(fleet, plan, &plan.last);
        let what = format!("{served} to serve {}", last.path);
        poll(&what, START_DEADLINE, START_PROBE_PAUSE, || {
            processes.iter_mut().for_each(Process::assert_running);
            get(&last).filter(|a| a.status == 200)
        });
        let start_to_serving = started.elapsed();
        let first = route_target(fleet, plan, &plan.first);
        let status = get(&first).map(|a| a.status);
        assert_eq!(
            status,
            Some(200),
            "{served}: the first route {} does not answer",
            first.path
        );
        Gateway {
            agent_metrics: agent_args.is_some().then_some(metrics),
            _processes: processes,
            started,
            start_to_serving,
        }
    }

    /// The agent's Envoy bootstrap (as `legate-agent bootstrap` prints it), written to a file.
    fn agent_bootstrap(&self, ads: u16, admin: u16) -> PathBuf {
        let params = BootstrapParams::new(
            ([127, 0, 0, 1], ads).into(),
            ([127, 0, 0, 1], admin).into(),
            format!("bench-{}", std::process::id()),
        );
        let path = self.work.path().join(format!("bootstrap-{admin}.yaml"));
        std::fs::write(&path, render_yaml(&bootstrap(&params))).expect("write the bootstrap");
        path
    }

    /// The first and the last route's rates, best of `repeats` runs of each, interleaved so
    /// that a burst of other work on the machine does not fall on one route only.
    fn first_and_last(&self, fleet: &Fleet, plan: &Plan) -> (Load, Load) {
        let run = |route: &RouteRef| self.wrk.run(&route_target(fleet, plan, route));
        (0..self.repeats)
            .map(|_| (run(&plan.first), run(&plan.last)))
            .reduce(|(f, l), (f2, l2)| (f.best_of(f2), l.best_of(l2)))
            .expect("at least one run")
    }

    /// Gives the last route's Mapping a new response header (`apply(n)`: a file rewritten, an
    /// object patched), `changes` times, each timed from before the write to the first answer
    /// carrying it; then `changes_under_load` more while wrk loads the first route, which does
    /// not change.
    fn measure_changes(
        &self,
        fleet: &Fleet,
        plan: &Plan,
        metrics: u16,
        apply: &dyn Fn(usize),
    ) -> Changes {
        let changed = route_target(fleet, plan, &plan.last);
        let change = |n: usize| -> Duration {
            let started = Instant::now();
            apply(n);
            let value = n.to_string();
            // The first answer with the new header ends the time.
            poll(
                &format!("change {n} to be served"),
                CHANGE_DEADLINE,
                CHANGE_PROBE_PAUSE,
                || get(&changed).filter(|a| a.header(fleet::CHANGE_HEADER) == Some(value.as_str())),
            );
            started.elapsed()
        };
        let before = AgentTimes::scrape(metrics);
        let latencies = (1..=self.changes)
            .map(|n| {
                std::thread::sleep(CHANGE_QUIET);
                change(n)
            })
            .collect();
        let agent = AgentTimes::scrape(metrics).since(&before);
        let load = self.wrk.start(&route_target(fleet, plan, &plan.first));
        let more = self.changes + 1..=self.changes + self.changes_under_load;
        more.for_each(|n| {
            change(n);
        });
        Changes {
            mappings: fleet.mappings,
            latencies,
            agent,
            under_load: load.stop(),
            count_under_load: self.changes_under_load,
        }
    }
}

/// `run` with the agent's addresses; where its resources come from is added by the caller.
fn agent_args(ads: u16, envoy_admin: u16, metrics: u16) -> Vec<String> {
    vec![
        "run".into(),
        "--ads-address".into(),
        format!("127.0.0.1:{ads}"),
        "--metrics-address".into(),
        format!("127.0.0.1:{metrics}"),
        "--envoy-admin-address".into(),
        format!("127.0.0.1:{envoy_admin}"),
        "--envoy-stats-address".into(),
        format!("127.0.0.1:{}", free_port()),
    ]
}

fn upstream_target(port: u16) -> Target {
    Target {
        port,
        host: "upstream".into(),
        path: "/".into(),
    }
}

fn route_target(fleet: &Fleet, plan: &Plan, route: &RouteRef) -> Target {
    Target {
        port: fleet.listener_port,
        host: plan.host.clone(),
        path: route.path.clone(),
    }
}

fn write_json(dir: &Path, name: &str, value: &serde_json::Value) -> PathBuf {
    let path = dir.join(name);
    let text = serde_json::to_string(value).expect("JSON");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// Who serves the fleet's routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Served {
    /// The agent over ADS, from the fleet's directory.
    Agent,
    /// The agent over ADS, from the fleet's objects in an API server.
    Kubernetes,
    /// Envoy from a static bootstrap with the IR's routes.
    Static(RouteTable),
}

impl std::fmt::Display for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Agent => "agent (ADS)",
            Self::Kubernetes => "agent (ADS), Kubernetes",
            Self::Static(RouteTable::Linear) => "static, linear",
            Self::Static(RouteTable::MatcherTree) => "static, matcher tree",
        })
    }
}

/// Running processes, stopped when dropped.
struct Gateway {
    /// The agent's metrics port, when it serves.
    agent_metrics: Option<u16>,
    _processes: Vec<Process>,
    started: Instant,
    start_to_serving: Duration,
}

struct Row {
    mappings: usize,
    hosts: usize,
    model: Model,
    served: Served,
    routes_in_vhost: usize,
    /// Position in the virtual host, and the load run.
    first: (usize, Load),
    last: (usize, Load),
    start_to_serving: Duration,
}

impl Row {
    fn markdown(&self) -> String {
        let ratio = self.last.1.requests_per_s / self.first.1.requests_per_s;
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.0}% | {:.2} s |",
            self.mappings,
            self.hosts,
            self.model,
            self.served,
            self.routes_in_vhost,
            rate(self.first),
            rate(self.last),
            ratio * 100.0,
            self.start_to_serving.as_secs_f64()
        )
    }
}

/// `12345 (#2)`, with the failures if any.
fn rate((position, load): (usize, Load)) -> String {
    let mut cell = format!("{:.0} (#{position})", load.requests_per_s);
    if load.failures() > 0 {
        let _ = write!(cell, ", {} failed", load.failures());
    }
    cell
}

struct Changes {
    mappings: usize,
    latencies: Vec<Duration>,
    /// The agent's own account of those changes.
    agent: AgentTimes,
    under_load: Load,
    count_under_load: usize,
}

impl Changes {
    /// The table rows of these changes: `how` they were made, what the agent's metrics say
    /// (with the metrics' names if `named`), and the failures under load (in `mode`).
    fn markdown(&self, how: &str, named: bool, mode: &str) -> String {
        let load = &self.under_load;
        let (build, ack) = if named {
            (
                " (`build_seconds`)",
                " (`change_to_ack_seconds`; Envoy serves before its ACK reaches the agent)",
            )
        } else {
            ("", "")
        };
        format!(
            "| Change → served, {how} ({} changes, each after {} ms without one) | median {:.0} ms, p90 {:.0} ms |\n\
             | of which, by the agent's metrics (means): building{build} / the build's start → Envoy's ACK of every type{ack} | {:.1} ms / {:.1} ms |\n\
             | Failed requests of an unchanged route under load during {} changes{mode} | {} (non-2xx {}, socket errors {}) of {} requests |\n",
            self.latencies.len(),
            CHANGE_QUIET.as_millis(),
            millis(percentile(&self.latencies, 50)),
            millis(percentile(&self.latencies, 90)),
            self.agent.build_ms(),
            self.agent.ack_ms(),
            self.count_under_load,
            load.failures(),
            load.non_2xx,
            load.socket_errors,
            load.requests,
        )
    }
}

struct Report {
    upstream: Load,
    rows: Vec<Row>,
    changes: Option<Changes>,
    /// The same changes as patches to the objects, with the agent in Kubernetes mode.
    kubernetes_changes: Option<Changes>,
    /// Its start to every Mapping's status written.
    kubernetes_statuses: Option<Duration>,
}

impl Report {
    fn markdown(&self, bench: &Bench) -> String {
        let mut out = format!(
            "## Data plane (issue #17)\n\n\
             Envoy `--concurrency 1` alone on core {ENVOY_CORE}; wrk (`-t1 -c{} -d{}s`, keep-alive, best of {} runs per route), \
             the upstream and the agent on core {OTHER_CORE}. The upstream alone (a `direct_response` \
             Envoy): {:.0} req/s. Req/s of the first and the last route a plain-HTTP request can \
             be served by, with its position (#) among the virtual host's routes in Envoy's order.\n\n\
             | Mappings | Hosts | Listener | Served by | Routes in vhost | First route req/s | Last route req/s | Last/first | Start → last route 200 |\n\
             |---:|---:|---|---|---:|---:|---:|---:|---:|\n",
            bench.wrk.connections, bench.wrk.seconds, bench.repeats, self.upstream.requests_per_s
        );
        for row in &self.rows {
            out += &row.markdown();
            out.push('\n');
        }
        out += &self.changes_markdown();
        out
    }

    /// The changes and start-up at the largest fleet of one Host behind XFP.
    fn changes_markdown(&self) -> String {
        let Some(changes) = &self.changes else {
            return "\nChanges and start-up: not measured (no fleet of one Host behind XFP).\n"
                .into();
        };
        let start = |served: Served| {
            self.rows
                .iter()
                .find(|r| {
                    r.served == served
                        && r.mappings == changes.mappings
                        && r.hosts == 1
                        && r.model == Model::Xfp
                })
                .map(|r| r.start_to_serving.as_secs_f64())
                .expect("the fleet the changes were measured on has rows")
        };
        let agent = start(Served::Agent);
        let linear = start(Served::Static(RouteTable::Linear));
        let tree = start(Served::Static(RouteTable::MatcherTree));
        format!(
            "\n| {} Mappings, 1 Host, XFP | Result |\n|---|---|\n\
             {}\
             | Start → last route 200: agent and Envoy cold (ADS) | {agent:.2} s |\n\
             | Start → last route 200: Envoy from a static file, linear / matcher tree | {linear:.2} s / {tree:.2} s |\n\
             | Agent start / static start, linear / matcher tree | {:.1}× / {:.1}× |\n\
             {}",
            changes.mappings,
            changes.markdown(
                "directory: a Mapping file rewritten → first answer with its new header",
                true,
                "",
            ),
            agent / linear,
            agent / tree,
            self.kubernetes_markdown(start),
        )
    }

    /// The rows of the agent in Kubernetes mode, on the same fleet.
    fn kubernetes_markdown(&self, start: impl Fn(Served) -> f64) -> String {
        let Some(changes) = &self.kubernetes_changes else {
            return "| Change → served, Kubernetes | not measured: `KUBECONFIG` unset \
                    (`make bench-dataplane-kube` starts kube-local) |\n"
                .into();
        };
        format!(
            "{}\
             | Start → last route 200: agent in Kubernetes mode and Envoy cold (ADS) | {:.2} s |\n\
             | Start → every Mapping's status written (rates and changes are measured after it) | {:.1} s |\n",
            changes.markdown(
                "Kubernetes: a Mapping merge-patched → first answer with its new header",
                false,
                ", Kubernetes",
            ),
            start(Served::Kubernetes),
            self.kubernetes_statuses.unwrap_or_default().as_secs_f64(),
        )
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The nearest-rank percentile `p` of `samples`.
fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Sums and counts of the agent's build and change → ACK histograms, from its `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
struct AgentTimes {
    build: (f64, f64),
    to_ack: (f64, f64),
}

impl AgentTimes {
    fn scrape(port: u16) -> Self {
        let body = metrics(port);
        let value = |suffix: &str| metric_in(&body, suffix);
        Self {
            build: (value("_build_seconds_sum"), value("_build_seconds_count")),
            to_ack: (
                value("_change_to_ack_seconds_sum"),
                value("_change_to_ack_seconds_count"),
            ),
        }
    }

    fn since(&self, before: &Self) -> Self {
        let delta = |(s, c): (f64, f64), (s0, c0): (f64, f64)| (s - s0, c - c0);
        Self {
            build: delta(self.build, before.build),
            to_ack: delta(self.to_ack, before.to_ack),
        }
    }

    fn build_ms(&self) -> f64 {
        mean_ms(self.build)
    }

    fn ack_ms(&self) -> f64 {
        mean_ms(self.to_ack)
    }
}

/// The agent's `/metrics`.
fn metrics(port: u16) -> String {
    let target = Target {
        port,
        host: "127.0.0.1".into(),
        path: "/metrics".into(),
    };
    get(&target)
        .filter(|a| a.status == 200)
        .map(|a| a.body)
        .expect("the agent's /metrics")
}

/// The sample of the agent's metric whose name ends with `suffix`.
fn metric(port: u16, suffix: &str) -> f64 {
    metric_in(&metrics(port), suffix)
}

fn metric_in(body: &str, suffix: &str) -> f64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .find(|(name, _)| name.ends_with(suffix))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {suffix} in the agent's /metrics"))
}

fn mean_ms((sum, count): (f64, f64)) -> f64 {
    if count > 0.0 {
        sum / count * 1000.0
    } else {
        f64::NAN
    }
}
