//! Documents the schema must refuse are refused, and the error names the field.
//!
//! Each `crds/tests/data/rejected/*.yaml` holds one document and header comments:
//!
//! ```text
//! # field: spec.weight            the field the server's error must name
//! # server: refuses               or `accepts-on-1.20`: a CEL rule (x-kubernetes-validations),
//!                                 which Kubernetes < 1.25 drops, so checked only on >= 1.25
//! ```

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use kube::discovery;
use legate_e2e::{
    Resolver, TestNamespace, client, create, error_message, install_crds, read_docs, repo_root,
    server_minor, yaml_files,
};

/// What a file's header says.
#[derive(Debug)]
struct Expectation {
    field: String,
    /// Refused only where CEL validation runs (Kubernetes >= 1.25).
    cel_only: bool,
}

fn expectation(file: &Path) -> Result<Expectation> {
    let text = std::fs::read_to_string(file)?;
    let (mut field, mut server) = (None, None);
    for line in text
        .lines()
        .take_while(|l| l.starts_with('#') || l.trim().is_empty())
    {
        let line = line.trim_start_matches('#').trim();
        if let Some(v) = line.strip_prefix("field:") {
            field = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("server:") {
            server = Some(v.trim().to_string());
        }
    }
    let field = field.ok_or_else(|| anyhow!("no `# field: <path>` header"))?;
    let cel_only = match server.as_deref() {
        Some("refuses") => false,
        Some("accepts-on-1.20") => true,
        other => bail!("`# server:` must be `refuses` or `accepts-on-1.20`, got {other:?}"),
    };
    Ok(Expectation { field, cel_only })
}

/// The last segment of a field path without list indices: `spec.ports[0].port` → `port`.
fn last_segment(field: &str) -> &str {
    let last = field.rsplit('.').next().unwrap_or(field);
    last.split('[').next().unwrap_or(last)
}

#[test]
fn last_segment_strips_parents_and_indices() {
    assert_eq!(last_segment("spec.weight"), "weight");
    assert_eq!(last_segment("spec.service.ports[0]"), "ports");
    assert_eq!(last_segment("replicas"), "replicas");
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server: run e2e/run.sh"]
async fn rejected_documents_are_refused_naming_the_field() -> Result<()> {
    let client = client().await?;
    install_crds(&client).await?;
    let minor = server_minor(&client).await?;
    let ns = TestNamespace::create(&client, "legate-e2e-rejected").await?;
    let mut resolver = Resolver::new(client.clone());

    let files = yaml_files(&repo_root().join("crds/tests/data/rejected"), false);
    assert!(
        !files.is_empty(),
        "no files under crds/tests/data/rejected/*.yaml"
    );
    let (mut checked, mut skipped, mut failures) = (0, 0, Vec::new());
    for file in &files {
        let name = file
            .strip_prefix(repo_root())
            .unwrap_or(file)
            .display()
            .to_string();
        let exp = match expectation(file) {
            Ok(e) => e,
            Err(e) => {
                failures.push(format!("{name}: bad header: {e:#}"));
                continue;
            }
        };
        let docs = read_docs(file)?;
        let [doc] = docs.as_slice() else {
            failures.push(format!(
                "{name}: expected one document, found {}",
                docs.len()
            ));
            continue;
        };
        if exp.cel_only && minor < 25 {
            println!(
                "note: skipping {name} ({}): a CEL rule, not enforced by Kubernetes 1.{minor}",
                exp.field
            );
            skipped += 1;
            continue;
        }
        checked += 1;
        let what = doc.describe();
        let want = last_segment(&exp.field);
        // a version the CRD does not serve is refused by the URL itself (404), not by a schema
        let api_version = doc.value["apiVersion"].as_str().unwrap_or_default();
        if let Some((group, version)) = api_version.split_once('/') {
            let served = discovery::group(&client, group)
                .await
                .map(|g| g.versions().any(|v| v == version));
            if matches!(served, Ok(false)) {
                if want != "apiVersion" {
                    failures.push(format!(
                        "{what}: {api_version} is not served at all, so `{}` is never checked",
                        exp.field
                    ));
                } else {
                    println!("{what}: refused: {api_version} is not served");
                }
                continue;
            }
        }
        match create(&mut resolver, &doc.value, &ns.name, true).await {
            Err(e) => failures.push(format!("{what}: {e:#}")),
            Ok(Ok(_)) => failures.push(format!(
                "{what}: accepted, but must be refused for `{}`",
                exp.field
            )),
            Ok(Err(e)) => {
                let msg = error_message(&e);
                let invalid = matches!(&e, kube::Error::Api(s) if s.code == 422 || s.code == 400);
                if !invalid || !msg.contains(want) {
                    failures.push(format!(
                        "{what}: refused, but the error does not name `{}` as invalid: {msg}",
                        exp.field
                    ));
                }
            }
        }
    }
    println!("{checked} rejected documents checked, {skipped} skipped on Kubernetes 1.{minor}");
    assert!(
        failures.is_empty(),
        "{} problem(s) with rejected documents:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}
