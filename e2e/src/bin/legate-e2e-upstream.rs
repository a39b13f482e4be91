//! A tiny HTTP upstream for the end-to-end tests, as a process of its own so a test can run it
//! where it needs it, e.g. inside a network namespace (`ip netns exec NS legate-e2e-upstream
//! NAME IP:PORT`): it answers every request `200` with NAME as the body. It exits on its own
//! after a while, so one a crashed test left behind does not live forever.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use legate_e2e::HttpUpstream;

/// The longest any e2e test may need an upstream.
const LIFETIME: Duration = Duration::from_secs(15 * 60);

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [name, address] = args.as_slice() else {
        bail!("usage: legate-e2e-upstream NAME IP:PORT");
    };
    let upstream = HttpUpstream::start_on(name, address)?;
    println!("{} listening on {}", upstream.name, upstream.addr);
    let start = Instant::now();
    while start.elapsed() < LIFETIME {
        std::thread::sleep(Duration::from_secs(1));
    }
    Ok(())
}
