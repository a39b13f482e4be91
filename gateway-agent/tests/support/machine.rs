//! Where the Envoy binary is: shared by the tests' harness and `benches/dataplane`.

use std::path::{Path, PathBuf};

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
