//! The processes the bench runs, each pinned to a core and killed when dropped; a minimal
//! HTTP/1.1 client for probing routes between load runs.

use std::{
    ffi::OsStr,
    fs::File,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::machine::free_port;

/// The core the measured Envoy has to itself.
pub const ENVOY_CORE: u32 = 0;
/// Everything else: wrk, the upstream, the agent and this process.
pub const OTHER_CORE: u32 = 1;

/// Pins every thread of this process (and so its future children) to `core`; children that
/// must run elsewhere are started through `taskset` again.
pub fn pin_self(core: u32) {
    let status = Command::new("taskset")
        .args([
            "-a",
            "-cp",
            &core.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .expect("taskset (util-linux) runs");
    assert!(
        status.success(),
        "taskset could not pin the bench to core {core}"
    );
}

/// Raises this process's priority (and so its children's) to `niceness` (negative: ahead of
/// other work; root only, else a warning and no change): builds sharing the machine would
/// otherwise take turns on Envoy's core and blur the rates.
pub fn prioritize_self(niceness: i32) {
    if niceness == 0 {
        return;
    }
    let set = Command::new("renice")
        .args([
            "-n",
            &niceness.to_string(),
            "-p",
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !set {
        eprintln!("dataplane: could not set niceness {niceness}; rates may vary more");
    }
}

/// A child process pinned to a core, its output in a log file, killed when dropped.
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    pub fn spawn<S: AsRef<OsStr>>(
        name: &str,
        core: u32,
        program: &Path,
        args: &[S],
        log_dir: &Path,
    ) -> Self {
        let log = log_dir.join(format!("{name}-{}.log", free_port()));
        let out = File::create(&log).expect("create a log file");
        let err = out.try_clone().expect("clone the log file handle");
        let child = Command::new("taskset")
            .arg("-c")
            .arg(core.to_string())
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}", program.display()));
        Self {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// Panics with the end of the log if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "{} exited ({status}); its log:\n{}",
                self.name,
                tail.join("\n")
            );
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it gives a value; panics naming `what` after `deadline`. `pause` between
/// attempts: zero where the time to the first success is what is measured.
pub fn poll<T>(
    what: &str,
    deadline: Duration,
    pause: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(pause);
    }
}

/// What an HTTP request is sent to: Envoy's listener, a Host header, a path.
#[derive(Clone, Debug)]
pub struct Target {
    pub port: u16,
    pub host: String,
    pub path: String,
}

impl Target {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}{}", self.port, self.path)
    }
}

/// The status line and headers of an answer.
pub struct Answer {
    pub status: u16,
    head: String,
    pub body: String,
}

impl Answer {
    /// The value of header `name` (lower case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// One GET on a new connection (`Connection: close`); `None` when nothing answers.
pub fn get(target: &Target) -> Option<Answer> {
    let addr = SocketAddr::from(([127, 0, 0, 1], target.port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        target.path, target.host
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}
