//! Writes every CRD as YAML into a directory (`make crds` → `config/crd/bases/`), plus the
//! kustomization that lists them, so the two never drift.

use std::{fs, path::PathBuf, process::ExitCode};

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: crdgen DIR (config/crd)");
        return ExitCode::from(2);
    };
    match write_all(&dir) {
        Ok(n) => {
            println!("wrote {n} files under {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("crdgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_all(dir: &std::path::Path) -> Result<usize, Box<dyn std::error::Error>> {
    fs::create_dir_all(dir.join("bases"))?;
    let files = legate_crds::crd::rendered()?;
    for (name, yaml) in &files {
        fs::write(dir.join(name), yaml)?;
    }
    Ok(files.len())
}
