//! Every document of the corpus (`crds/tests/data/corpus/*.yaml`) and of the samples
//! (`config/samples/**/*.yaml`) is accepted by the API server in a server-side dry run, both as a
//! create (`kubectl create --dry-run=server`) and as a server-side apply, and the server prunes no
//! field of it (a structural schema silently drops fields it does not know: an Emissary field the
//! schema lacks would be lost without an error).
//!
//! Namespaced documents are sent to one test namespace whatever namespace they name: validation
//! does not depend on it, and the test then needs no shared namespaces.

use anyhow::Result;
use legate_e2e::{
    Doc, Resolver, TestNamespace, apply, client, create, error_message, install_crds,
    pruned_fields, read_dir_docs, repo_root,
};

fn documents() -> Result<Vec<Doc>> {
    let root = repo_root();
    let corpus = read_dir_docs(&root.join("crds/tests/data/corpus"), false)?;
    assert!(
        !corpus.is_empty(),
        "no documents under crds/tests/data/corpus/*.yaml"
    );
    let samples = read_dir_docs(&root.join("config/samples"), true)?;
    assert!(!samples.is_empty(), "no documents under config/samples");
    Ok(corpus
        .into_iter()
        .chain(samples)
        .filter(|d| d.kind() != "Kustomization")
        .collect())
}

#[tokio::test]
#[ignore = "needs a Kubernetes API server: run e2e/run.sh"]
async fn corpus_and_samples_pass_server_side_dry_run() -> Result<()> {
    let client = client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "legate-e2e-dry-run").await?;
    let mut resolver = Resolver::new(client.clone());

    let docs = documents()?;
    let mut failures = Vec::new();
    for doc in &docs {
        let what = doc.describe();
        // create, dryRun=All: the server's validation of a new object
        match create(&mut resolver, &doc.value, &ns.name, true).await {
            Err(e) => failures.push(format!("{what}: {e:#}")),
            Ok(Ok(obj)) => {
                let got = serde_json::to_value(&obj)?;
                let pruned = pruned_fields(&doc.value, &got);
                if !pruned.is_empty() {
                    failures.push(format!(
                        "{what}: accepted, but the server pruned fields the schema does not know: {}",
                        pruned.join(", ")
                    ));
                }
            }
            // a cluster-scoped sample (a Namespace) may already exist; the apply below covers it
            Ok(Err(kube::Error::Api(s))) if s.code == 409 => {}
            Ok(Err(e)) => failures.push(format!(
                "{what}: refused by a dry-run create: {}",
                error_message(&e)
            )),
        }
        // server-side apply, dryRun=All: what `kubectl apply --server-side` does
        match apply(&mut resolver, &doc.value, &ns.name, true).await {
            Err(e) => failures.push(format!("{what}: {e:#}")),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failures.push(format!(
                "{what}: refused by a dry-run server-side apply: {}",
                error_message(&e)
            )),
        }
    }
    println!("{} documents checked", docs.len());
    assert!(
        failures.is_empty(),
        "{} problem(s) in a server-side dry run:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}
