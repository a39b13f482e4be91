//! The bodies of the fuzz targets, one module each. A body takes the fuzzer's bytes and panics
//! on a failure: the cargo-fuzz binaries call it, and so does the workspace's replay test for
//! every input in `fuzz/regressions/<target>/`.

pub mod ads;
pub mod ir;
pub mod loader;
mod vocabulary;

/// Prints a structured input when `LEGATE_FUZZ_SHOW` is set: what a failing input means, when
/// replaying it (`cargo fuzz run <target> <input>` or the replay test).
fn show(input: &impl std::fmt::Debug) {
    if std::env::var_os("LEGATE_FUZZ_SHOW").is_some() {
        eprintln!("{input:#?}");
    }
}
