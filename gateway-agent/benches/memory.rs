//! Resident memory of the agent serving 10,000 Mappings across 100 Hosts from a directory,
//! against DESIGN.md's budget (< 150 MB). Runs the real binary; prints the figure and fails
//! when it is over budget.

use std::{process::Command, time::Duration};

const BUDGET_MB: f64 = 150.0;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut yaml = String::from(
        "apiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {name: http, namespace: default}\n\
         spec: {port: 18080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}\n",
    );
    for h in 0..100 {
        yaml += &format!(
            "---\napiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {{name: host-{h}, namespace: default}}\nspec: {{hostname: host-{h}.example.com}}\n"
        );
    }
    for m in 0..10_000 {
        yaml += &format!(
            "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: route-{m}, namespace: team-{}}}\n\
             spec: {{hostname: host-{}.example.com, prefix: /service-{m}/, service: backend-{m}:8080}}\n",
            m % 10,
            m % 100
        );
    }
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
            .is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .contains("legate_agent_resources{kind=\"Mapping\"} 10000")
            })
    });
    // Let allocations settle after the first build.
    std::thread::sleep(Duration::from_secs(1));
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert!(built, "the agent did not load 10,000 Mappings within 30 s");
    let rss_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    let rss_mb = rss_kb / 1024.0;
    println!(
        "agent_resident_memory/10000_mappings_100_hosts: {rss_mb:.1} MB (budget {BUDGET_MB} MB)"
    );
    assert!(rss_mb < BUDGET_MB, "over budget: {rss_mb:.1} MB");
}
