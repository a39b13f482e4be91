//! wrk (Debian's `wrk`), pinned to the core Envoy does not use: one thread, a few keep-alive
//! connections, its summary parsed.

use std::process::{Child, Command, Stdio};

use super::process::{OTHER_CORE, Target};

/// What a load run measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct Load {
    pub requests_per_s: f64,
    pub requests: u64,
    /// Answers outside 2xx and 3xx.
    pub non_2xx: u64,
    /// Connect, read and write errors and timeouts.
    pub socket_errors: u64,
}

impl Load {
    pub fn failures(&self) -> u64 {
        self.non_2xx + self.socket_errors
    }

    /// Two runs of the same load: the better rate (other work on the machine only ever lowers
    /// a rate), every request and every failure.
    pub fn best_of(self, other: Load) -> Load {
        Load {
            requests_per_s: self.requests_per_s.max(other.requests_per_s),
            requests: self.requests + other.requests,
            non_2xx: self.non_2xx + other.non_2xx,
            socket_errors: self.socket_errors + other.socket_errors,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Wrk {
    pub seconds: u32,
    pub connections: u32,
}

impl Wrk {
    /// A run of `self.seconds` against `target`.
    pub fn run(&self, target: &Target) -> Load {
        let output = self
            .command(target, self.seconds)
            .stderr(Stdio::inherit())
            .output()
            .expect("wrk runs (make bench-dataplane installs it)");
        assert!(output.status.success(), "wrk failed against {target:?}");
        parse(&String::from_utf8_lossy(&output.stdout))
    }

    /// A run that lasts until [`Background::stop`] (at most an hour).
    pub fn start(&self, target: &Target) -> Background {
        let child = self
            .command(target, 3600)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("wrk runs (make bench-dataplane installs it)");
        Background { child: Some(child) }
    }

    fn command(&self, target: &Target, seconds: u32) -> Command {
        let mut command = Command::new("taskset");
        command
            .args(["-c", &OTHER_CORE.to_string(), "wrk", "-t1"])
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{seconds}s"))
            .args(["-H", &format!("Host: {}", target.host)])
            .arg(target.url());
        command
    }
}

/// A wrk run in the background.
pub struct Background {
    child: Option<Child>,
}

impl Background {
    /// Interrupts wrk, which then prints its summary as at the end of a run.
    pub fn stop(mut self) -> Load {
        let child = self.child.take().expect("running");
        let interrupted = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(interrupted.success(), "could not interrupt wrk");
        let output = child.wait_with_output().expect("wrk's summary");
        parse(&String::from_utf8_lossy(&output.stdout))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// wrk's summary: `Requests/sec: 1234.56`, `12345 requests in 2.00s, ...`,
/// `Non-2xx or 3xx responses: 3`, `Socket errors: connect 0, read 1, write 0, timeout 0`.
fn parse(summary: &str) -> Load {
    let mut load = Load::default();
    for line in summary.lines().map(str::trim) {
        if let Some(rate) = line.strip_prefix("Requests/sec:") {
            load.requests_per_s = rate.trim().parse().unwrap_or_default();
        } else if let Some(count) = line.strip_prefix("Non-2xx or 3xx responses:") {
            load.non_2xx = count.trim().parse().unwrap_or_default();
        } else if let Some(errors) = line.strip_prefix("Socket errors:") {
            load.socket_errors = errors
                .split(',')
                .filter_map(|e| e.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        } else if let Some((count, _)) = line.split_once(" requests in ") {
            load.requests = count.trim().parse().unwrap_or_default();
        }
    }
    assert!(
        load.requests_per_s > 0.0 || load.requests > 0,
        "no summary from wrk:\n{summary}"
    );
    load
}
