//! Prometheus text read by the reference parser: the Python client's
//! (`prometheus_client.parser`, installed by `make test-tools`), which refuses what Prometheus
//! would refuse. Each sample comes back with its family's type.

use std::{
    collections::BTreeMap,
    io::Write,
    path::Path,
    process::{Command, Stdio},
};

/// One sample of a scrape.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct Sample {
    pub family: String,
    /// `counter`, `gauge`, `histogram`, `summary` or `unknown`.
    pub kind: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append({"family": family.name, "kind": family.type, "name": s.name,
                    "labels": s.labels, "value": s.value})
json.dump(out, sys.stdout)
"#;

/// Every sample of `text` (a counter's samples named `_total`, whether or not the text names
/// them so, as the parser does); panics with the parser's complaint if it is not valid.
pub fn parse(text: &str) -> Vec<Sample> {
    let pylib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/python");
    assert!(
        pylib.join(".installed").exists(),
        "{} is missing: run `make test-tools`",
        pylib.display()
    );
    let mut child = Command::new("python3")
        .args(["-c", PARSE])
        .env("PYTHONPATH", &pylib)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    let mut stdin = child.stdin.take().expect("a stdin");
    let text = text.to_owned();
    // A large scrape fills the pipe: write while the parser reads.
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let out = child.wait_with_output().expect("the parser's output");
    writer
        .join()
        .expect("the writer")
        .expect("write the scrape");
    assert!(
        out.status.success(),
        "prometheus_client refused the scrape: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the parser's JSON")
}

/// The samples named `name` whose labels are exactly `labels`.
pub fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples
        .iter()
        .filter(|s| s.name == name && s.labels == labels)
        .collect()
}
