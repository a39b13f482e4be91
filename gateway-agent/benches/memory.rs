//! Resident memory of the agent serving a fleet from a directory, against DESIGN.md's budgets:
//! 10,000 Mappings across 100 Hosts (< 150 MB) and Emissary #4471's shape, 1,500 Mappings ×
//! 1,000 Hosts × 2 Listeners (< 200 MB; Emissary needed 1.8 GiB); and 10,000 Mappings sending
//! to 1,000 Services of 10 endpoints each, over EDS (< 200 MB). Runs the real binary; prints
//! each figure and fails when one is over budget.

use std::{process::Command, time::Duration};

#[path = "fleet.rs"]
mod fleet;

fn main() {
    let cases = [
        (
            "10000_mappings_100_hosts_1_listeners",
            fleet::yaml(10_000, 100, 1),
            150.0,
        ),
        (
            "1500_mappings_1000_hosts_2_listeners",
            fleet::yaml(1_500, 1_000, 2),
            200.0,
        ),
        // The agent on Kubernetes: its Mappings send to Services served over EDS.
        (
            "10000_mappings_1000_services_of_10_endpoints",
            fleet::yaml_with_services(10_000, 100, 1, 1_000, 10),
            200.0,
        ),
    ];
    let over: Vec<String> = cases
        .into_iter()
        .filter_map(|(name, yaml, budget_mb)| {
            let rss_mb = resident_mb(&yaml, mappings_in(&yaml));
            println!("agent_resident_memory/{name}: {rss_mb:.1} MB (budget {budget_mb} MB)");
            (rss_mb >= budget_mb).then(|| format!("{name}: {rss_mb:.1} MB"))
        })
        .collect();
    assert!(over.is_empty(), "over budget: {over:?}");
}

fn mappings_in(yaml: &str) -> usize {
    yaml.matches("kind: Mapping\n").count()
}

/// The Mappings the agent holds, whatever their verdict: `legate_agent_resources` by kind and
/// verdict, summed.
fn loaded(metrics: &str) -> usize {
    metrics
        .lines()
        .filter(|l| l.starts_with("legate_agent_resources{kind=\"Mapping\","))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<usize>().ok())
        .sum()
}

/// The agent's resident set once it has loaded the fleet and built its configuration.
fn resident_mb(yaml: &str, mappings: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fleet.yaml"), yaml).unwrap();

    let agent = env!("CARGO_BIN_EXE_legate-agent");
    let metrics = "127.0.0.1:19391";
    let mut child = Command::new(agent)
        .args(["run", "--config-dir"])
        .arg(dir.path())
        .args([
            "--ads-address",
            "127.0.0.1:19390",
            "--metrics-address",
            metrics,
        ])
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start legate-agent");
    let url = format!("http://{metrics}/metrics");
    let built = (0..300).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        Command::new("curl")
            .args(["-sf", &url])
            .output()
            .is_ok_and(|o| loaded(&String::from_utf8_lossy(&o.stdout)) == mappings)
    });
    // Let allocations settle after the first build.
    std::thread::sleep(Duration::from_secs(1));
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        built,
        "the agent did not load {mappings} Mappings within 30 s"
    );
    let rss_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    rss_kb / 1024.0
}
