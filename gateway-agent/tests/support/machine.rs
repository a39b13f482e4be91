//! This machine, as the tests' harness and `benches/dataplane` both need it: where the Envoy
//! binary is, and ports free for it to listen on.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

/// The Envoy binary: `$LEGATE_ENVOY` if set, else `.tools/bin/envoy` from `make envoy`.
pub fn envoy_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("LEGATE_ENVOY") {
        return PathBuf::from(path);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/envoy");
    assert!(
        path.exists(),
        "{} is missing: run `make envoy`",
        path.display()
    );
    path
}

/// A port on every address that was free a moment ago.
///
/// Below the kernel's ephemeral range (32768 and up on Linux): a port from `bind(0)` comes from
/// that range, as do the source ports of the many connections tests (and a load run) open, and
/// one of those could take the port between this check and Envoy binding it ("Address already
/// in use"). Ports here are handed out by a counter the process shares, from an offset of the
/// process id, so two callers never get the same one and two processes rarely meet.
pub fn free_port() -> u16 {
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id() % COUNT;
    for _ in 0..COUNT {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(FIRST + (offset + n) % COUNT).expect("below 32000");
        // Envoy's listeners bind every address: check that, not only loopback.
        if TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port from {FIRST} to {}", FIRST + COUNT - 1);
}
