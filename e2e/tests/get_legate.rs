//! After the corpus and the samples are created for real in a test namespace, `kubectl get legate
//! -A` (every CRD carries the category `legate`) lists resources of every kind.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use legate_e2e::{
    Resolver, TestNamespace, client, crd_files, create, error_message, install_crds, kubectl_ok,
    read_dir_docs, read_docs, repo_root,
};
use serde_json::{Value, json};

#[tokio::test]
#[ignore = "needs a Kubernetes API server: run e2e/run.sh"]
async fn kubectl_get_legate_lists_every_kind() -> Result<()> {
    let client = client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "legate-e2e-get").await?;
    let mut resolver = Resolver::new(client.clone());

    // every kind the CRDs define
    let mut crd_kinds = BTreeSet::new();
    for f in crd_files() {
        for d in read_docs(&f)? {
            crd_kinds.insert(
                d.value["spec"]["names"]["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }

    let root = repo_root();
    let docs: Vec<_> = read_dir_docs(&root.join("crds/tests/data/corpus"), false)?
        .into_iter()
        .chain(read_dir_docs(&root.join("config/samples"), true)?)
        .filter(|d| crd_kinds.contains(d.kind()))
        .collect();

    // create each for real in the test namespace; a name used twice for a kind gets a suffix
    let mut created: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut failures = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let mut v = doc.value.clone();
        let name = v["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !seen.insert((doc.kind().to_string(), name.clone())) {
            v["metadata"]["name"] = json!(format!("{name}-dup{i}"));
        }
        match create(&mut resolver, &v, &ns.name, false).await {
            Err(e) => failures.push(format!("{}: {e:#}", doc.describe())),
            Ok(Err(e)) => failures.push(format!(
                "{}: refused: {}",
                doc.describe(),
                error_message(&e)
            )),
            Ok(Ok(_)) => *created.entry(doc.kind().to_string()).or_default() += 1,
        }
    }
    assert!(
        failures.is_empty(),
        "creating the corpus failed:\n{}",
        failures.join("\n")
    );
    let missing: Vec<_> = crd_kinds
        .iter()
        .filter(|k| !created.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "the corpus and samples have no document of kind(s) {missing:?}: add some to crds/tests/data/corpus"
    );

    // the table a person sees
    let table = kubectl_ok(&["get", "legate", "-A"])?;
    println!("{table}");
    assert!(
        table.contains(&ns.name),
        "`kubectl get legate -A` does not list namespace {}:\n{table}",
        ns.name
    );

    // and the same, counted by kind
    let listed: Value = serde_json::from_str(&kubectl_ok(&["get", "legate", "-A", "-o", "json"])?)?;
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for item in listed["items"].as_array().into_iter().flatten() {
        if item["metadata"]["namespace"] == ns.name.as_str() {
            *by_kind
                .entry(item["kind"].as_str().unwrap_or_default().to_string())
                .or_default() += 1;
        }
    }
    assert_eq!(
        by_kind, created,
        "`kubectl get legate -A` in namespace {} lists these kinds (left) but the test created these (right)",
        ns.name
    );
    Ok(())
}
