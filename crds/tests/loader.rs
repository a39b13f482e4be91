//! The loader against the test-data corpus: every realistic document loads cleanly and survives
//! a round trip; every document under `rejected/` is refused with an error naming its field.
//!
//! A rejected document starts with comment lines that state what must happen:
//! `# field: spec.weight` (the field the error names), `# message: must be at most 100` (a part
//! of the message), `# server: refuses` or `# server: accepts-on-1.20` (for e2e: a CEL rule that
//! Kubernetes before 1.25 drops).

use std::{fs, path::PathBuf};

use legate_crds::loader::{load_file, load_str};
use pretty_assertions::assert_eq;
use serde_json::Value;

fn data(dir: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(dir);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn corpus_documents_load_without_errors_or_warnings_and_round_trip() {
    let mut total = 0;
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for file in data("corpus") {
        let loaded = load_file(&file).unwrap();
        assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
        assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
        let text = fs::read_to_string(&file).unwrap();
        let originals: Vec<Value> = serde_saphyr::from_multiple::<Value>(&text)
            .unwrap()
            .into_iter()
            .filter(|v| !v.is_null())
            .collect();
        assert_eq!(
            originals.len(),
            loaded.resources.len(),
            "{}",
            file.display()
        );
        for (original, resource) in originals.iter().zip(&loaded.resources) {
            let what = format!("{}: {}", file.display(), resource.object_ref());
            // Nothing dropped, nothing invented: the typed value writes back what was read.
            assert_eq!(&resource.to_json(), original, "{what}");
            // And what it writes reads back as the same resource.
            let yaml = serde_saphyr::to_string(&resource.to_json()).unwrap();
            let again = load_str(&what, &yaml).unwrap();
            assert!(again.errors.is_empty(), "{:#?}", again.errors);
            assert_eq!(again.resources, vec![resource.clone()], "{what}");
            *kinds.entry(resource.kind().to_owned()).or_default() += 1;
            total += 1;
        }
    }
    assert!(
        total >= 30,
        "the corpus has {total} documents; keep at least 30"
    );
    for kind in [
        "Mapping",
        "Host",
        "Listener",
        "TLSContext",
        "TCPMapping",
        "AuthService",
        "RateLimitService",
        "LogService",
        "TracingService",
        "Module",
        "KubernetesServiceResolver",
        "KubernetesEndpointResolver",
        "ConsulResolver",
        "GatewayInstallation",
    ] {
        let n = kinds.get(kind).copied().unwrap_or(0);
        assert!(
            n >= 3,
            "the corpus has {n} {kind} documents; keep at least 3 of each kind"
        );
    }
}

/// One header line of a rejected document, e.g. `# field: spec.weight`.
fn header<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .find_map(|l| {
            l.strip_prefix('#')?
                .trim()
                .strip_prefix(key)?
                .strip_prefix(':')
        })
        .map(str::trim)
}

#[test]
fn rejected_documents_are_refused_naming_the_field() {
    let files = data("rejected");
    assert!(!files.is_empty());
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        let name = file.display().to_string();
        let field = header(&text, "field").unwrap_or_else(|| panic!("{name}: no `# field:` line"));
        let message =
            header(&text, "message").unwrap_or_else(|| panic!("{name}: no `# message:` line"));
        let loaded = load_str(&name, &text).unwrap();
        assert!(loaded.resources.is_empty(), "{name}: was accepted");
        assert_eq!(loaded.errors.len(), 1, "{name}: {:#?}", loaded.errors);
        let error = &loaded.errors[0];
        assert!(
            error
                .problems
                .iter()
                .any(|p| p.field == field && p.message.contains(message)),
            "{name}: expected `{field}: ...{message}...`, got: {error}"
        );
        // The one-line form names the file, the document and the field.
        let line = error.to_string();
        assert!(line.starts_with(&format!("{name}: document 1")), "{line}");
        assert!(line.contains(field), "{line}");
    }
}
