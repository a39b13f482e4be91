//! Every CRD under `config/crd/bases` installs by server-side apply and becomes `Established`.

use anyhow::Result;
use legate_e2e::{client, crd_files, install_crd, read_docs};

/// The CRD files the project ships (`config/crd/bases`).
const EXPECTED: [&str; 14] = [
    "getambassador.io_authservices.yaml",
    "getambassador.io_consulresolvers.yaml",
    "getambassador.io_hosts.yaml",
    "getambassador.io_kubernetesendpointresolvers.yaml",
    "getambassador.io_kubernetesserviceresolvers.yaml",
    "getambassador.io_listeners.yaml",
    "getambassador.io_logservices.yaml",
    "getambassador.io_mappings.yaml",
    "getambassador.io_modules.yaml",
    "getambassador.io_ratelimitservices.yaml",
    "getambassador.io_tcpmappings.yaml",
    "getambassador.io_tlscontexts.yaml",
    "getambassador.io_tracingservices.yaml",
    "legate.dev_gatewayinstallations.yaml",
];

#[tokio::test]
#[ignore = "needs a Kubernetes API server: run e2e/run.sh"]
async fn every_crd_installs_and_becomes_established() -> Result<()> {
    let client = client().await?;
    let files = crd_files();
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name()?.to_str().map(str::to_string))
        .collect();
    for want in EXPECTED {
        assert!(
            names.iter().any(|n| n == want),
            "config/crd/bases/{want} is missing (found: {names:?})"
        );
    }

    let mut failures = Vec::new();
    for f in &files {
        let docs = read_docs(f)?;
        assert_eq!(
            docs.len(),
            1,
            "{}: expected exactly one CRD document",
            f.display()
        );
        for doc in docs {
            let v = &doc.value;
            assert_eq!(v["kind"], "CustomResourceDefinition", "{}", doc.describe());
            let categories = v["spec"]["names"]["categories"].as_array();
            assert!(
                categories.is_some_and(|c| c.iter().any(|x| x == "legate")),
                "{}: spec.names.categories must contain \"legate\" (got {:?})",
                doc.describe(),
                categories
            );
            match install_crd(&client, &doc).await {
                Ok(name) => println!("established: {name}"),
                Err(e) => failures.push(format!("{}: {e:#}", doc.describe())),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "CRDs that did not install:\n{}",
        failures.join("\n")
    );
    Ok(())
}
