//! `make bundle`: writes the OLM bundle (`bundle/`, `bundle.Dockerfile`) generated from
//! `config/` under a repository root, and removes bundle files the generator no longer makes
//! (a CRD that was dropped), so the directory is exactly the generator's output.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::ExitCode,
};

use legate_olm::{ConfigTree, generate};

fn main() -> ExitCode {
    let root = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    match write_bundle(&root) {
        Ok(n) => {
            println!("bundlegen: wrote {n} files (bundle/, bundle.Dockerfile)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bundlegen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_bundle(root: &Path) -> Result<usize, Box<dyn std::error::Error>> {
    let files = generate(&ConfigTree::load(root)?)?;
    let wanted: BTreeSet<PathBuf> = files.iter().map(|f| root.join(&f.path)).collect();
    for dir in ["bundle/manifests", "bundle/metadata"] {
        let dir = root.join(dir);
        if !dir.is_dir() {
            continue;
        }
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_file() && !wanted.contains(&path) {
                fs::remove_file(&path)
                    .map_err(|e| format!("{}: cannot remove: {e}", path.display()))?;
            }
        }
    }
    for file in &files {
        let path = root.join(&file.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        // Unchanged files keep their timestamps, so make does not see them as new.
        if fs::read_to_string(&path).ok().as_deref() != Some(file.contents.as_str()) {
            fs::write(&path, &file.contents)
                .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
        }
    }
    Ok(files.len())
}
