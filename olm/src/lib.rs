//! Legate's OLM bundle, generated from `config/` so the two never drift: `make bundle` writes
//! what [`generate`] returns.
//!
//! | bundle file | from |
//! | --- | --- |
//! | `bundle/manifests/legate-operator.clusterserviceversion.yaml` | the Deployment in `config/manager/`, the roles `config/rbac/` binds to the operator's ServiceAccount, the CRDs' schemas (owned CRDs and descriptors), `config/samples/` (`alm-examples`), [`metadata`] |
//! | `bundle/manifests/<group>_<plural>.yaml` | `config/crd/` |
//! | `bundle/manifests/<name>_<version>_<kind>.yaml` | the other objects of `config/manager/` (the metrics Service) |
//! | `bundle/metadata/annotations.yaml`, `bundle.Dockerfile` | [`metadata::annotations`] |

pub mod crds;
pub mod csv;
pub mod error;
pub mod examples;
pub mod manager;
pub mod metadata;
pub mod rbac;
pub mod source;
pub mod yaml;

pub use error::{Error, Location, Result};
pub use source::{ConfigTree, Document};

/// Where the CSV goes.
pub const CSV_FILE: &str = "bundle/manifests/legate-operator.clusterserviceversion.yaml";
pub const MANIFESTS_DIR: &str = "bundle/manifests";
pub const ANNOTATIONS_FILE: &str = "bundle/metadata/annotations.yaml";
pub const DOCKERFILE: &str = "bundle.Dockerfile";

/// One generated file: path relative to the repository root, and its exact contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleFile {
    pub path: String,
    pub contents: String,
}

/// Every file of the bundle, sorted by path.
pub fn generate(config: &ConfigTree) -> Result<Vec<BundleFile>> {
    let crds = crds::crds(&config.kustomize("config/crd")?)?;
    let permissions = rbac::permissions(
        &config.kustomize("config/rbac")?,
        "config/rbac/kustomization.yaml",
    )?;
    let manager = manager::manager(
        &config.kustomize("config/manager")?,
        "config/manager/kustomization.yaml",
    )?;
    for (deployment, account) in &manager.service_accounts {
        if *account != permissions.service_account {
            return Err(deployment.error(
                "spec.template.spec.serviceAccountName",
                &format!(
                    "is {account}, but config/rbac grants its rules to ServiceAccount {}",
                    permissions.service_account
                ),
            ));
        }
    }
    let examples = examples::examples(&config.kustomize("config/samples")?, &crds)?;

    let inputs = csv::Inputs {
        crds: &crds,
        permissions: &permissions,
        manager: &manager,
        examples: &examples,
    };
    let mut files = vec![
        BundleFile {
            path: CSV_FILE.into(),
            contents: yaml::emit(CSV_FILE, csv::csv(CSV_FILE, &inputs)?)?,
        },
        BundleFile {
            path: ANNOTATIONS_FILE.into(),
            contents: metadata::annotations_yaml(ANNOTATIONS_FILE)?,
        },
        BundleFile {
            path: DOCKERFILE.into(),
            contents: metadata::bundle_dockerfile(),
        },
    ];
    let objects = crds.iter().map(|crd| (&crd.file_name, &crd.object)).chain(
        manager
            .manifests
            .iter()
            .map(|(name, object)| (name, object)),
    );
    for (name, object) in objects {
        let path = format!("{MANIFESTS_DIR}/{name}");
        let contents = yaml::emit(&path, object.clone())?;
        files.push(BundleFile { path, contents });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}
