//! A Mapping to a Kubernetes Service, served over EDS to real upstreams the Service's endpoints
//! point at, scaled while traffic flows.
//!
//! The API server refuses loopback addresses in Endpoints, so the "pods" live in a network
//! namespace of the test's own: a veth pair with a private /24 of its choosing
//! (`10.213.<random>.0/24`: the host end .1, the pods .2, .3 and .4), each pod an HTTP upstream
//! (the `legate-e2e-upstream` binary, run with `ip netns exec`) answering with its own name.
//! A Service without a selector gets Endpoints pointing at them (and, where the server serves
//! `discovery.k8s.io/v1`, an EndpointSlice as well; the Endpoints are then not mirrored). Two
//! Mappings name it, by port number and by port name.
//!
//! While a loop sends requests through Envoy (to 127.0.0.1 only), the endpoints scale up (.3
//! and .4 join) and down (.2 leaves): not one request fails, every pod of the current set
//! answers, the one removed gets no more traffic, and Envoy rebuilds no cluster (only the
//! ClusterLoadAssignment moves). Then no ready endpoint leaves the Mappings
//! `Programmed=False NoReadyEndpoints`, and a deleted Service `Programmed=False ServiceNotFound`.
//!
//! Needs root (network namespaces), as in CI; elsewhere it says why and does nothing. The
//! namespace and veth pair are removed even when the test fails, and any a crashed run left
//! behind (named `legate-e2e-…`, `le2e-…`) at the start.

use std::{
    collections::BTreeMap,
    process::Command,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail, ensure};
use legate_e2e::gateway::{
    ACCEPTED, Moved, PROGRAMMED, Pod, Traffic, TrafficStats, WAIT, expect_route, fleet, through,
    wait_verdict,
};
use legate_e2e::{
    LocalProcess, Operator, TestNamespace, client, http_get, install_default, kubectl_apply,
    kubectl_ok, server_minor, temp_dir, wait_for,
};

const HOST_HEADER: &str = "shop.example.com";
const LISTENER_PORT: u16 = 8080;
/// The port the pods listen on (the Service's `targetPort`).
const POD_PORT: u16 = 8080;
/// The Mappings: by port number and by port name; the traffic loop alternates them.
const PATHS: [&str; 2] = ["/echo/", "/named/"];
/// Requests the loop must see after a change before its effect is judged.
const SETTLE: u64 = 100;

#[tokio::test]
#[ignore = "needs a Kubernetes API server: run e2e/run.sh"]
async fn service_endpoints_scale_under_traffic_over_eds() -> Result<()> {
    if let Some(why) = Netns::unavailable() {
        println!("skipped: {why}");
        return Ok(());
    }
    let mut world = World::default();
    let result = scenario(&mut world).await;
    if result.is_err() {
        world.print_logs();
    }
    result
}

/// Everything the scenario started. Fields drop in order: the traffic stops, the processes
/// stop, the network namespace goes, then the Kubernetes namespaces.
#[derive(Default)]
struct World {
    traffic: Option<Traffic>,
    operator: Option<Operator>,
    pod: Option<Pod>,
    pods: BTreeMap<u8, LocalProcess>,
    netns: Option<Netns>,
    namespaces: Vec<TestNamespace>,
}

impl World {
    fn print_logs(&self) {
        if let Some(o) = &self.operator {
            o.process.print_log();
        }
        if let Some(pod) = &self.pod {
            pod.agent.print_log();
            pod.envoy.print_log();
        }
        for p in self.pods.values() {
            p.print_log();
        }
        if let Some(t) = &self.traffic {
            eprintln!("--- traffic ---\n{:#?}", t.stats());
        }
    }
}

async fn scenario(world: &mut World) -> Result<()> {
    // The pods first: the network namespace and three upstreams in it.
    Netns::remove_leftovers();
    let netns = world.netns.insert(Netns::create()?);
    for host in [2, 3, 4] {
        let process = netns.upstream(&pod_name(host), host)?;
        world.pods.insert(host, process);
    }
    let netns = world.netns.as_ref().expect("created");
    for host in [2, 3, 4] {
        let address = format!("{}:{POD_PORT}", netns.ip(host));
        wait_for(
            &format!("pod {} to answer on {address}", pod_name(host)),
            Duration::from_secs(20),
            || async {
                let answer = http_get(&address, "/", None);
                Ok(answer.is_ok_and(|a| a.body == pod_name(host)).then_some(()))
            },
        )
        .await?;
    }

    // The gateway, as in gateway.rs: the operator's Deployment template run as a pod.
    let client = client().await?;
    install_default(server_minor(&client).await?)?;
    world.operator = Some(Operator::start("e2e-endpoints")?);
    let gw_ns = TestNamespace::create(&client, "legate-e2e-eds-gw").await?;
    let gw = gw_ns.name.clone();
    world.namespaces.push(gw_ns);
    let team_ns = TestNamespace::labelled(
        &client,
        "legate-e2e-eds-team",
        &[("legate.dev/e2e-eds", &gw)],
    )
    .await?;
    let team = team_ns.name.clone();
    world.namespaces.push(team_ns);
    kubectl_apply(&format!(
        r#"
apiVersion: legate.dev/v1alpha1
kind: GatewayInstallation
metadata: {{name: edge, namespace: {gw}}}
spec:
  ambassadorId: default
  allowedRoutes:
    namespaces:
      from: Selector
      selector:
        matchLabels: {{legate.dev/e2e-eds: {gw}}}
"#
    ))?;
    let (deployment, bootstrap) = fleet(&gw, "edge").await?;
    let pod = world.pod.insert(Pod::start(
        &deployment,
        &bootstrap,
        "edge-0",
        &Moved::default(),
    )?);
    pod.wait_ready().await?;

    // The Service, its endpoints (.2 only), two Mappings to it.
    let slices = kubectl_ok(&["api-versions"])?
        .lines()
        .any(|l| l.trim() == "discovery.k8s.io/v1");
    let endpoints = Endpoints {
        team: &team,
        netns: world.netns.as_ref().expect("created"),
        slices,
    };
    println!(
        "endpoints as core/v1 Endpoints{}",
        if slices { " and an EndpointSlice" } else { "" }
    );
    kubectl_apply(&format!(
        r#"
apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {{name: http, namespace: {team}}}
spec:
  port: {LISTENER_PORT}
  protocol: HTTP
  securityModel: XFP
  hostBinding:
    namespace: {{from: ALL}}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {{name: shop, namespace: {team}}}
spec:
  hostname: "*.example.com"
  requestPolicy:
    insecure: {{action: Route}}
---
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: {team}}}
spec:
  ports: [{{name: http, port: 80, targetPort: {POD_PORT}, protocol: TCP}}]
"#
    ))?;
    endpoints.set(&[2], &[])?;
    kubectl_apply(&format!(
        r#"
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {{name: echo, namespace: {team}}}
spec:
  hostname: "*"
  prefix: /echo/
  service: echo.{team}:80
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {{name: named, namespace: {team}}}
spec:
  hostname: "*"
  prefix: /named/
  service: echo.{team}:http
"#
    ))?;
    for name in ["echo", "named"] {
        wait_verdict(&client, &team, name, ACCEPTED, PROGRAMMED).await?;
    }
    for path in PATHS {
        expect_route(LISTENER_PORT, path, HOST_HEADER, &pod_name(2)).await?;
    }
    let pod = world.pod.as_ref().expect("started");
    wait_membership(pod, 1).await?;

    // Traffic from here on; what Envoy counts of cluster changes.
    let names: Vec<String> = [2, 3, 4].map(pod_name).into();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let traffic = world.traffic.insert(Traffic::start(
        LISTENER_PORT,
        HOST_HEADER,
        &PATHS,
        &names,
        30_000,
        Duration::from_secs(240),
    ));
    traffic.more(SETTLE).await?;
    let clusters_before = cluster_changes(&pod.admin)?;

    // Up: .3 and .4 join.
    endpoints.set(&[2, 3, 4], &[])?;
    wait_membership(pod, 3).await?;
    answered_by(traffic, &[2, 3, 4], &[]).await?;
    traffic.check("the scale-down")?;

    // Down: .2 leaves (it keeps running, as a terminating pod keeps serving its last requests).
    endpoints.set(&[3, 4], &[])?;
    wait_membership(pod, 2).await?;
    traffic.more(SETTLE).await?;
    answered_by(traffic, &[3, 4], &[2]).await?;

    traffic.check("the end of the scaling")?;
    let clusters_after = cluster_changes(&pod.admin)?;
    ensure!(
        clusters_after == clusters_before,
        "Envoy's clusters changed while only endpoints did: {clusters_before:?} then \
         {clusters_after:?}"
    );
    let stats = {
        let mut traffic = world.traffic.take().expect("started");
        let last = traffic.stop();
        ensure!(last.failed == 0, "{last:#?}");
        last
    };
    println!(
        "scaling: {} requests, none failed; answers {:?}; Envoy's cluster counters {:?} \
         throughout",
        stats.sent, stats.answers, clusters_after
    );

    // No ready endpoint: the Mappings say so.
    endpoints.set(&[], &[3, 4])?;
    for name in ["echo", "named"] {
        wait_verdict(
            &client,
            &team,
            name,
            ACCEPTED,
            ("False", "NoReadyEndpoints"),
        )
        .await?;
    }
    wait_membership(pod, 0).await?;

    // No Service: the Mappings say so too, and the route answers 503.
    kubectl_ok(&["delete", "service", "echo", "-n", &team])?;
    for name in ["echo", "named"] {
        wait_verdict(&client, &team, name, ACCEPTED, ("False", "ServiceNotFound")).await?;
    }
    let answer = through(LISTENER_PORT, "/echo/", HOST_HEADER)?;
    ensure!(
        answer.status == 503,
        "a route to a missing Service answered {answer:?}"
    );

    // Deleted while the operator runs, so its finalizer lets the namespace go.
    kubectl_ok(&["delete", "gwi", "--all", "-n", &gw, "--timeout=60s"])?;
    Ok(())
}

fn pod_name(host: u8) -> String {
    format!("pod-{host}")
}

/// Waits until every pod of `current` has answered since this call, over at least [`SETTLE`]
/// requests; fails at once if any of `gone` answers meanwhile.
async fn answered_by(traffic: &Traffic, current: &[u8], gone: &[u8]) -> Result<TrafficStats> {
    let from = traffic.stats();
    let start = std::time::Instant::now();
    loop {
        let now = traffic.stats();
        if let Some(why) = &now.ended {
            bail!("the traffic loop stopped: {why}");
        }
        for h in gone {
            let name = pod_name(*h);
            ensure!(
                now.from(&name) == from.from(&name),
                "{name}, no longer an endpoint, answered {} more requests: {:?} then {:?}",
                now.from(&name) - from.from(&name),
                from.answers,
                now.answers
            );
        }
        let all = current
            .iter()
            .all(|h| now.from(&pod_name(*h)) > from.from(&pod_name(*h)));
        if all && now.sent >= from.sent + SETTLE {
            return Ok(now);
        }
        if start.elapsed() > WAIT {
            bail!(
                "not every one of {:?} answered within {WAIT:?}: {:?} then {:?}",
                current.iter().map(|h| pod_name(*h)).collect::<Vec<_>>(),
                from.answers,
                now.answers
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Envoy's counters of cluster changes: clusters added and modified, CDS updates taken.
fn cluster_changes(admin: &str) -> Result<[u64; 3]> {
    let stats = envoy_stats(admin)?;
    let get = |name: &str| stats.get(name).copied().unwrap_or(0);
    Ok([
        get("cluster_manager.cluster_added"),
        get("cluster_manager.cluster_modified"),
        get("cluster_manager.cds.update_success"),
    ])
}

/// Waits until each of Envoy's clusters for Service `echo` has `n` members.
async fn wait_membership(pod: &Pod, n: u64) -> Result<()> {
    wait_for(
        &format!("Envoy's clusters for Service echo to have {n} members"),
        WAIT,
        || async {
            let stats = envoy_stats(&pod.admin)?;
            let members: Vec<(&String, &u64)> = stats
                .iter()
                .filter(|(k, _)| {
                    k.starts_with("cluster.cluster_echo_") && k.ends_with(".membership_total")
                })
                .collect();
            ensure!(!members.is_empty(), "Envoy has no cluster for Service echo");
            Ok(members.iter().all(|(_, v)| **v == n).then_some(()))
        },
    )
    .await
}

/// Envoy's counters and gauges (`/stats`, `name: value` lines).
fn envoy_stats(admin: &str) -> Result<BTreeMap<String, u64>> {
    let answer = http_get(admin, "/stats", None)?;
    ensure!(answer.status == 200, "Envoy's /stats: {answer:?}");
    Ok(answer
        .body
        .lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(": ")?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect())
}

/// Writes Service `echo`'s endpoints: `ready` and `not_ready` hosts of the network namespace.
struct Endpoints<'a> {
    team: &'a str,
    netns: &'a Netns,
    /// Whether the server serves `discovery.k8s.io/v1` (then an EndpointSlice too).
    slices: bool,
}

impl Endpoints<'_> {
    fn set(&self, ready: &[u8], not_ready: &[u8]) -> Result<()> {
        let team = self.team;
        let list = |hosts: &[u8]| {
            hosts
                .iter()
                .map(|h| format!("{{ip: {}}}", self.netns.ip(*h)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut subset = Vec::new();
        if !ready.is_empty() {
            subset.push(format!("addresses: [{}]", list(ready)));
        }
        if !not_ready.is_empty() {
            subset.push(format!("notReadyAddresses: [{}]", list(not_ready)));
        }
        let subsets = if subset.is_empty() {
            "[]".to_owned()
        } else {
            format!(
                "[{{{}, ports: [{{name: http, port: {POD_PORT}, protocol: TCP}}]}}]",
                subset.join(", ")
            )
        };
        let mut yaml = format!(
            r#"
apiVersion: v1
kind: Endpoints
metadata:
  name: echo
  namespace: {team}
  # Ours, not to be mirrored into an EndpointSlice: the test writes its own where served.
  labels: {{endpointslice.kubernetes.io/skip-mirror: "true"}}
subsets: {subsets}
"#
        );
        if self.slices {
            let endpoints: Vec<String> = ready
                .iter()
                .map(|h| (h, true))
                .chain(not_ready.iter().map(|h| (h, false)))
                .map(|(h, ready)| {
                    format!(
                        "{{addresses: [\"{}\"], conditions: {{ready: {ready}}}}}",
                        self.netns.ip(*h)
                    )
                })
                .collect();
            yaml.push_str(&format!(
                r#"---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-e2e
  namespace: {team}
  labels:
    kubernetes.io/service-name: echo
    endpointslice.kubernetes.io/managed-by: e2e.legate.dev
addressType: IPv4
ports: [{{name: http, port: {POD_PORT}, protocol: TCP}}]
endpoints: [{}]
"#,
                endpoints.join(", ")
            ));
        }
        kubectl_apply(&yaml).map(drop)
    }
}

/// Names of what the test creates on the machine, so leftovers can be found.
const NETNS_PREFIX: &str = "legate-e2e-";
const LINK_PREFIX: &str = "le2e-";

/// A network namespace of the test's own, joined to the machine's by a veth pair: the host
/// end `10.213.N.1/24`, the namespace's end .2, .3 and .4. Removed when dropped.
struct Netns {
    name: String,
    host_link: String,
    subnet: u8,
}

impl Netns {
    /// Why the test cannot make a network namespace here, if it cannot.
    fn unavailable() -> Option<String> {
        let uid = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Some("network namespaces need root (CI runs the e2e tests as root)".into());
        }
        match Command::new("ip").args(["netns", "list"]).output() {
            Ok(o) if o.status.success() => None,
            _ => Some("`ip netns` (iproute2) is not available".into()),
        }
    }

    fn create() -> Result<Self> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let seed = nanos ^ std::process::id().wrapping_mul(2_654_435_761);
        let id = format!("{:06x}", seed & 0xff_ffff);
        // A /24 no interface here uses yet.
        let used = ip(&["-4", "-o", "addr"])? + &ip(&["-4", "route"])?;
        let subnet = (0..200u32)
            .map(|i| ((seed >> 8).wrapping_add(i * 37) % 200 + 20) as u8)
            .find(|n| !used.contains(&format!("10.213.{n}.")))
            .context("no free 10.213.N.0/24 here")?;
        let netns = Self {
            name: format!("{NETNS_PREFIX}{id}"),
            host_link: format!("{LINK_PREFIX}{id}h"),
            subnet,
        };
        let inner = format!("{LINK_PREFIX}{id}n");
        let ns = netns.name.as_str();
        ip(&["netns", "add", ns])?;
        ip(&[
            "link",
            "add",
            &netns.host_link,
            "type",
            "veth",
            "peer",
            "name",
            &inner,
        ])?;
        ip(&["link", "set", &inner, "netns", ns])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", netns.ip(1)),
            "dev",
            &netns.host_link,
        ])?;
        ip(&["link", "set", &netns.host_link, "up"])?;
        for host in [2, 3, 4] {
            let address = format!("{}/24", netns.ip(host));
            ip(&[
                "netns", "exec", ns, "ip", "addr", "add", &address, "dev", &inner,
            ])?;
        }
        ip(&["netns", "exec", ns, "ip", "link", "set", &inner, "up"])?;
        ip(&["netns", "exec", ns, "ip", "link", "set", "lo", "up"])?;
        println!(
            "network namespace {ns}: {} on {}, pods on {inner}",
            netns.ip(1),
            netns.host_link
        );
        Ok(netns)
    }

    fn ip(&self, host: u8) -> String {
        format!("10.213.{}.{host}", self.subnet)
    }

    /// The upstream binary inside the namespace on `.host:POD_PORT`, answering `name`.
    fn upstream(&self, name: &str, host: u8) -> Result<LocalProcess> {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).args([
            env!("CARGO_BIN_EXE_legate-e2e-upstream"),
            name,
            &format!("{}:{POD_PORT}", self.ip(host)),
        ]);
        let dir = temp_dir(&format!("legate-e2e-{name}"))?;
        LocalProcess::spawn(name, command, dir.join("upstream.log"))
    }

    /// Removes the namespaces and links earlier runs left behind (a test killed before its
    /// guards ran), with whatever still runs inside them.
    fn remove_leftovers() {
        let list = ip(&["netns", "list"]).unwrap_or_default();
        for name in list
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(NETNS_PREFIX))
        {
            eprintln!("note: removing network namespace {name}, left by an earlier run");
            remove_netns(name);
        }
        let links = ip(&["-o", "link"]).unwrap_or_default();
        for link in links
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n))
            .filter(|n| n.starts_with(LINK_PREFIX))
        {
            eprintln!("note: removing link {link}, left by an earlier run");
            let _ = ip(&["link", "del", link]);
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove_netns(&self.name);
        // Its peer went with the namespace; the host end goes with it, a moment later.
        let _ = ip(&["link", "del", &self.host_link]);
    }
}

/// Stops what runs in network namespace `name`, then deletes it.
fn remove_netns(name: &str) {
    if let Ok(pids) = ip(&["netns", "pids", name]) {
        for pid in pids.split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
    if let Err(e) = ip(&["netns", "del", name]) {
        eprintln!("note: {e:#}");
    }
}

/// `ip ARGS`, failing with its stderr; returns stdout.
fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .with_context(|| format!("running ip {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "ip {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
