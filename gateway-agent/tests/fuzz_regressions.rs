//! Every input the fuzzers found a failure with (`fuzz/regressions/<target>/`), replayed through
//! the target's body: what was fixed stays fixed without running the fuzzer. The fuzz targets
//! themselves are in `fuzz/` (README.md, "Fuzzing").

use std::path::{Path, PathBuf};

fn replay(target: &str, body: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file() && !is_readme(p))
        .collect();
    inputs.sort();
    for input in inputs {
        let data = std::fs::read(&input).unwrap();
        // A panic names the input: the test's output shows which one failed.
        eprintln!("{target}: {}", input.display());
        body(&data);
    }
}

fn is_readme(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "README.md")
}

#[test]
fn loader_regressions() {
    replay("loader", legate_fuzz::loader::run);
}

#[test]
fn ir_regressions() {
    replay("ir", legate_fuzz::ir::run);
}

#[test]
fn ads_regressions() {
    replay("ads", legate_fuzz::ads::run);
}
