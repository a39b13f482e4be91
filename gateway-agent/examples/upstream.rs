//! The demo's example upstreams: `cargo run --example upstream -- NAME=ADDRESS ...` starts one
//! echo server per argument (each answers every request with what it received, as JSON) and
//! runs until Ctrl-C or SIGTERM. It is also the example backend image (`make images`).

#[path = "../tests/support/upstream.rs"]
mod upstream;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut servers = Vec::new();
    for arg in std::env::args().skip(1) {
        let Some((name, address)) = arg.split_once('=') else {
            eprintln!("usage: upstream NAME=HOST:PORT ...  (got {arg:?})");
            return std::process::ExitCode::from(2);
        };
        let Ok(address) = address.parse() else {
            eprintln!("upstream: {address:?} is not HOST:PORT");
            return std::process::ExitCode::from(2);
        };
        match upstream::Upstream::start_on(name, address).await {
            Ok(server) => {
                println!("upstream {name} listening on http://{address}");
                servers.push(server);
            }
            Err(e) => {
                eprintln!("upstream {name}: cannot listen on {address}: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    // SIGTERM too: as a container's first process it would otherwise ignore it.
    legate_common::shutdown_signal().await;
    std::process::ExitCode::SUCCESS
}
