//! What the committed OLM bundle must be: generated from `config/` and current; carrying the
//! same CRDs and RBAC as `config/`; and passing the checks `operator-sdk bundle validate` makes
//! of a ClusterServiceVersion. Every failure names the bundle (or config) file and the field.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use base64::Engine;
use legate_olm::{ConfigTree, Document, source::parse_documents};
use serde_json::Value;

const CSV: &str = legate_olm::CSV_FILE;
const ANNOTATIONS: &str = legate_olm::ANNOTATIONS_FILE;
const DOCKERFILE: &str = legate_olm::DOCKERFILE;

// ---- the bundle's layout ----------------------------------------------------------------------

#[test]
fn manifests_are_one_csv_each_config_crd_and_objects_olm_can_carry() {
    let mut csvs = 0;
    for (file, document) in manifests() {
        match document.kind() {
            "ClusterServiceVersion" => csvs += 1,
            "CustomResourceDefinition" => {}
            // What registry+v1 bundles may hold besides the CSV and CRDs.
            "Service"
            | "ConfigMap"
            | "Secret"
            | "PodDisruptionBudget"
            | "PriorityClass"
            | "ServiceMonitor"
            | "PrometheusRule" => {}
            kind => panic!("{file}: kind: {kind} cannot be part of an OLM bundle"),
        }
        assert!(
            document.get("metadata.namespace").is_none(),
            "{file}: metadata.namespace: must be unset (OLM installs into the namespace the user picks)"
        );
    }
    assert_eq!(
        csvs,
        1,
        "{}: must hold exactly one ClusterServiceVersion",
        legate_olm::MANIFESTS_DIR
    );
    assert_eq!(
        files_in("bundle/metadata"),
        [ANNOTATIONS],
        "bundle/metadata: must hold annotations.yaml only"
    );
    let config_crds: BTreeSet<String> = config_crds()
        .into_iter()
        .map(|(file, _)| base_name(&file))
        .collect();
    let bundle_crds: BTreeSet<String> = bundle_crds()
        .into_iter()
        .map(|(file, _)| base_name(&file))
        .collect();
    assert_eq!(
        bundle_crds,
        config_crds,
        "{}: one file per CRD of config/crd/bases, by the same name",
        legate_olm::MANIFESTS_DIR
    );
}

#[test]
fn annotations_describe_a_registry_v1_bundle_of_the_legate_operator_package() {
    let annotations = annotations();
    let get = |key: &str| {
        annotations
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{ANNOTATIONS}: annotations.{key}: is required"))
    };
    let prefix = "operators.operatorframework.io.bundle";
    for (key, expected) in [
        ("mediatype.v1", "registry+v1"),
        ("manifests.v1", "manifests/"),
        ("metadata.v1", "metadata/"),
        ("package.v1", "legate-operator"),
    ] {
        let key = format!("{prefix}.{key}");
        assert_eq!(get(&key), expected, "{ANNOTATIONS}: annotations.{key}");
    }
    let channels: Vec<&str> = get(&format!("{prefix}.channels.v1")).split(',').collect();
    let default = get(&format!("{prefix}.channel.default.v1"));
    assert!(
        channels.contains(&default),
        "{ANNOTATIONS}: annotations.{prefix}.channel.default.v1: {default} is not among channels.v1 {channels:?}"
    );
}

#[test]
fn bundle_dockerfile_is_from_scratch_with_the_annotations_as_labels_and_copies_the_bundle() {
    let text = read(DOCKERFILE);
    let instructions: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        instructions.first(),
        Some(&"FROM scratch"),
        "{DOCKERFILE}: FROM"
    );
    let labels: BTreeSet<(String, String)> = instructions
        .iter()
        .filter_map(|l| l.strip_prefix("LABEL "))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("{DOCKERFILE}: LABEL {l}: expected key=value"));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let annotations: BTreeSet<(String, String)> = annotations()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    assert_eq!(
        labels, annotations,
        "{DOCKERFILE}: LABELs must equal {ANNOTATIONS}"
    );
    for copy in [
        "COPY bundle/manifests /manifests/",
        "COPY bundle/metadata /metadata/",
    ] {
        assert!(
            instructions.contains(&copy),
            "{DOCKERFILE}: missing `{copy}`"
        );
    }
}

#[test]
fn the_committed_bundle_is_what_make_bundle_generates_now() {
    let config = ConfigTree::load(&root()).or_fail();
    let generated = legate_olm::generate(&config).or_fail();
    let stale: Vec<String> = generated
        .iter()
        .filter_map(|file| {
            let committed = std::fs::read_to_string(root().join(&file.path)).unwrap_or_default();
            first_difference(&committed, &file.contents).map(|d| format!("{}: {d}", file.path))
        })
        .collect();
    assert!(
        stale.is_empty(),
        "not what the generator makes from config/ now (run `make bundle`):\n{}",
        stale.join("\n")
    );
    let generated: BTreeSet<&str> = generated.iter().map(|f| f.path.as_str()).collect();
    for file in files_in(legate_olm::MANIFESTS_DIR)
        .into_iter()
        .chain(files_in("bundle/metadata"))
    {
        assert!(
            generated.contains(file.as_str()),
            "{file}: not generated from config/ any more: run `make bundle`"
        );
    }
}

// ---- the same CRDs and RBAC as config/ ---------------------------------------------------------

#[test]
fn bundle_crds_equal_config_crds() {
    let bundle = bundle_crds();
    for (config_file, crd) in config_crds() {
        let name = base_name(&config_file);
        let Some((file, bundled)) = bundle.iter().find(|(file, _)| base_name(file) == name) else {
            panic!(
                "{}/{name}: missing (config has {config_file})",
                legate_olm::MANIFESTS_DIR
            );
        };
        pretty_assertions::assert_eq!(
            &bundled.value,
            &crd.value,
            "{file} differs from {config_file}"
        );
    }
}

#[test]
fn cluster_permissions_are_the_cluster_role_of_config_rbac_for_its_service_account() {
    let role = config_document("config/rbac/role.yaml", "ClusterRole");
    let entries = csv_field("spec.install.spec.clusterPermissions");
    let [entry] = as_list(&entries, "spec.install.spec.clusterPermissions")[..] else {
        panic!(
            "{CSV}: spec.install.spec.clusterPermissions: expected one entry, for the operator's ServiceAccount"
        );
    };
    assert_eq!(
        entry["serviceAccountName"],
        service_account(),
        "{CSV}: spec.install.spec.clusterPermissions[0].serviceAccountName"
    );
    pretty_assertions::assert_eq!(
        &entry["rules"],
        role.field("rules").or_fail(),
        "{CSV}: spec.install.spec.clusterPermissions[0].rules must equal the ClusterRole in config/rbac/role.yaml"
    );
}

#[test]
fn permissions_are_the_namespaced_role_of_config_rbac_for_its_service_account() {
    let role = config_document("config/rbac/role.yaml", "Role");
    let entries = csv_field("spec.install.spec.permissions");
    let [entry] = as_list(&entries, "spec.install.spec.permissions")[..] else {
        panic!(
            "{CSV}: spec.install.spec.permissions: expected one entry, for the operator's ServiceAccount"
        );
    };
    assert_eq!(
        entry["serviceAccountName"],
        service_account(),
        "{CSV}: spec.install.spec.permissions[0].serviceAccountName"
    );
    pretty_assertions::assert_eq!(
        &entry["rules"],
        role.field("rules").or_fail(),
        "{CSV}: spec.install.spec.permissions[0].rules must equal the Role in config/rbac/role.yaml"
    );
}

#[test]
fn the_install_deployment_is_config_managers_deployment_run_by_that_service_account() {
    let deployment = config_document("config/manager/deployment.yaml", "Deployment");
    let deployments = csv_field("spec.install.spec.deployments");
    let [installed] = as_list(&deployments, "spec.install.spec.deployments")[..] else {
        panic!("{CSV}: spec.install.spec.deployments: expected the operator's Deployment alone");
    };
    assert_eq!(
        installed["name"],
        *deployment.field("metadata.name").or_fail(),
        "{CSV}: spec.install.spec.deployments[0].name"
    );
    pretty_assertions::assert_eq!(
        &installed["spec"],
        deployment.field("spec").or_fail(),
        "{CSV}: spec.install.spec.deployments[0].spec must equal config/manager/deployment.yaml's spec"
    );
    assert_eq!(
        installed["spec"]["template"]["spec"]["serviceAccountName"],
        service_account(),
        "{CSV}: spec.install.spec.deployments[0].spec.template.spec.serviceAccountName must be the ServiceAccount the permissions are for"
    );
    let image = installed["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(
        csv_str("metadata.annotations.containerImage"),
        image,
        "{CSV}: metadata.annotations.containerImage must be the Deployment's image"
    );
    assert!(
        image.ends_with(&format!(":{}", csv_str("spec.version"))),
        "config/manager/deployment.yaml: spec.template.spec.containers[0].image: {image} is not tagged with the CSV's spec.version"
    );
}

// ---- what operator-sdk bundle validate requires of the CSV -------------------------------------

#[test]
fn csv_names_its_package_and_semantic_version() {
    let version = csv_str("spec.version");
    let numbers: Vec<&str> = version.split(['.', '-', '+']).take(3).collect();
    assert!(
        numbers.len() == 3
            && numbers
                .iter()
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        "{CSV}: spec.version: {version} is not a semantic version"
    );
    assert_eq!(
        version,
        env!("CARGO_PKG_VERSION"),
        "{CSV}: spec.version must be the workspace version"
    );
    assert_eq!(
        csv_str("metadata.name"),
        format!("legate-operator.v{version}"),
        "{CSV}: metadata.name"
    );
}

#[test]
fn csv_has_the_catalogue_fields() {
    for field in [
        "spec.displayName",
        "spec.description",
        "spec.provider.name",
        "metadata.annotations.description",
    ] {
        assert!(
            !csv_str(field).trim().is_empty(),
            "{CSV}: {field}: must not be empty"
        );
    }
    assert_eq!(csv_str("spec.maturity"), "alpha", "{CSV}: spec.maturity");
    assert_eq!(
        csv_str("spec.minKubeVersion"),
        "1.20.0",
        "{CSV}: spec.minKubeVersion (e2e runs on 1.20)"
    );
    let icons = csv_field("spec.icon");
    let [icon] = as_list(&icons, "spec.icon")[..] else {
        panic!("{CSV}: spec.icon: expected exactly one icon");
    };
    assert_eq!(
        icon["mediatype"], "image/svg+xml",
        "{CSV}: spec.icon[0].mediatype"
    );
    let svg = base64::engine::general_purpose::STANDARD
        .decode(icon["base64data"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{CSV}: spec.icon[0].base64data: not base64: {e}"));
    assert!(
        String::from_utf8_lossy(&svg).contains("<svg"),
        "{CSV}: spec.icon[0].base64data: not an SVG"
    );
}

#[test]
fn install_modes_list_all_four_types_and_support_all_namespaces() {
    let modes = csv_field("spec.installModes");
    let types: Vec<&str> = as_list(&modes, "spec.installModes")
        .iter()
        .map(|m| {
            m["type"]
                .as_str()
                .unwrap_or_else(|| panic!("{CSV}: spec.installModes: an entry has no type"))
        })
        .collect();
    let mut sorted = types.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "AllNamespaces",
            "MultiNamespace",
            "OwnNamespace",
            "SingleNamespace"
        ],
        "{CSV}: spec.installModes: each of the four types exactly once"
    );
    for mode in as_list(&modes, "spec.installModes") {
        assert!(
            mode["supported"].is_boolean(),
            "{CSV}: spec.installModes[type={}].supported: must be true or false",
            mode["type"]
        );
    }
    let all = as_list(&modes, "spec.installModes")
        .into_iter()
        .find(|m| m["type"] == "AllNamespaces");
    assert_eq!(
        all.map(|m| &m["supported"]),
        Some(&Value::Bool(true)),
        "{CSV}: spec.installModes[type=AllNamespaces].supported"
    );
}

#[test]
fn install_strategy_is_deployment() {
    assert_eq!(
        csv_str("spec.install.strategy"),
        "deployment",
        "{CSV}: spec.install.strategy"
    );
}

#[test]
fn owned_crds_are_exactly_the_bundle_crds_by_name_version_and_kind() {
    let owned_list = csv_field("spec.customresourcedefinitions.owned");
    let owned: BTreeSet<(String, String, String)> = as_list(
        &owned_list,
        "spec.customresourcedefinitions.owned",
    )
    .iter()
    .enumerate()
    .map(|(i, crd)| {
        let get = |field: &str| {
            crd[field]
                .as_str()
                .unwrap_or_else(|| {
                    panic!("{CSV}: spec.customresourcedefinitions.owned[{i}].{field}: is required")
                })
                .to_owned()
        };
        for field in ["displayName", "description"] {
            assert!(
                !get(field).trim().is_empty(),
                "{CSV}: spec.customresourcedefinitions.owned[{i}].{field}: must not be empty"
            );
        }
        (get("name"), get("version"), get("kind"))
    })
    .collect();
    let mut in_bundle = BTreeSet::new();
    for (file, crd) in bundle_crds() {
        for version in crd.list("spec.versions").or_fail() {
            if version["served"] == true {
                in_bundle.insert((
                    crd.str("metadata.name").or_fail().to_owned(),
                    version["name"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{file}: spec.versions[].name"))
                        .to_owned(),
                    crd.str("spec.names.kind").or_fail().to_owned(),
                ));
            }
        }
    }
    pretty_assertions::assert_eq!(
        owned,
        in_bundle,
        "{CSV}: spec.customresourcedefinitions.owned must list (name, version, kind) of every served version of every CRD in the bundle, and nothing else"
    );
}

#[test]
fn descriptors_name_top_level_fields_of_the_crd_schemas() {
    let crds = bundle_crds();
    let owned_list = csv_field("spec.customresourcedefinitions.owned");
    for (i, owned) in as_list(&owned_list, "spec.customresourcedefinitions.owned")
        .iter()
        .enumerate()
    {
        let (file, crd) = crds
            .iter()
            .find(|(_, crd)| crd.get("metadata.name") == Some(&owned["name"]))
            .unwrap_or_else(|| panic!("{CSV}: spec.customresourcedefinitions.owned[{i}].name: no such CRD in the bundle"));
        let version = crd
            .list("spec.versions")
            .or_fail()
            .iter()
            .find(|v| v["name"] == owned["version"])
            .unwrap_or_else(|| {
                panic!("{CSV}: spec.customresourcedefinitions.owned[{i}].version: not in {file}")
            });
        for section in ["spec", "status"] {
            let field = format!("{section}Descriptors");
            for (j, descriptor) in owned[&field].as_array().into_iter().flatten().enumerate() {
                let path = descriptor["path"].as_str().unwrap_or_default();
                let pointer =
                    format!("/schema/openAPIV3Schema/properties/{section}/properties/{path}");
                assert!(
                    version.pointer(&pointer).is_some(),
                    "{CSV}: spec.customresourcedefinitions.owned[{i}].{field}[{j}].path: {path} is not a field of {section} in {file}"
                );
            }
        }
    }
}

#[test]
fn alm_examples_parse_as_json_and_each_passes_the_crd_schemas_and_cel_rules() {
    let text = csv_str("metadata.annotations.alm-examples");
    let examples: Vec<Value> = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!("{CSV}: metadata.annotations.alm-examples: not a JSON list: {e}")
    });
    assert!(
        !examples.is_empty(),
        "{CSV}: metadata.annotations.alm-examples: no examples"
    );
    for (i, example) in examples.iter().enumerate() {
        let origin = format!("{CSV}: metadata.annotations.alm-examples[{i}]");
        let loaded = legate_crds::loader::load_str(&origin, &example.to_string()).or_fail();
        let problems: Vec<String> = loaded
            .errors
            .iter()
            .map(ToString::to_string)
            .chain(loaded.warnings.iter().map(ToString::to_string))
            .collect();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        assert_eq!(
            loaded.resources.len(),
            1,
            "{origin}: expected one Legate resource"
        );
    }
}

#[test]
fn every_alm_example_is_of_an_owned_crd() {
    let owned_list = csv_field("spec.customresourcedefinitions.owned");
    let crds = bundle_crds();
    let owned: BTreeSet<(String, String)> =
        as_list(&owned_list, "spec.customresourcedefinitions.owned")
            .iter()
            .map(|o| {
                let (_, crd) = crds
                    .iter()
                    .find(|(_, c)| c.get("metadata.name") == Some(&o["name"]))
                    .expect("owned CRDs are in the bundle");
                let group = crd.str("spec.group").or_fail();
                (
                    format!("{group}/{}", o["version"].as_str().unwrap_or_default()),
                    o["kind"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
    let examples: Vec<Value> =
        serde_json::from_str(&csv_str("metadata.annotations.alm-examples")).unwrap_or_default();
    for (i, example) in examples.iter().enumerate() {
        let gvk = (
            example["apiVersion"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            example["kind"].as_str().unwrap_or_default().to_owned(),
        );
        assert!(
            owned.contains(&gvk),
            "{CSV}: metadata.annotations.alm-examples[{i}]: {gvk:?} is not an owned CRD"
        );
    }
}

/// Where two texts first differ, as `line N: committed … / generated …`; `None` when equal.
fn first_difference(committed: &str, generated: &str) -> Option<String> {
    if committed == generated {
        return None;
    }
    let (mut old, mut new) = (committed.lines(), generated.lines());
    for line in 1.. {
        match (old.next(), new.next()) {
            (Some(a), Some(b)) if a == b => continue,
            (None, None) => return Some("differs in line endings or the final newline".into()),
            (a, b) => {
                let show = |l: Option<&str>| {
                    l.map_or("(end of file)".to_owned(), |l| format!("{:?}", l.trim()))
                };
                return Some(format!(
                    "line {line}: committed {}, generated {}",
                    show(a),
                    show(b)
                ));
            }
        }
    }
    unreachable!("texts that differ differ on some line")
}

/// Fails a test with the error's own message, which names the file, document and field (where
/// `unwrap` would print its Debug form).
trait OrFail<T> {
    fn or_fail(self) -> T;
}

impl<T, E: std::fmt::Display> OrFail<T> for Result<T, E> {
    #[track_caller]
    fn or_fail(self) -> T {
        self.unwrap_or_else(|e| panic!("{e}"))
    }
}

// ---- reading the repository -------------------------------------------------------------------

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("olm/ is in the workspace")
        .to_owned()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path))
        .unwrap_or_else(|e| panic!("{path}: cannot read: {e}"))
}

fn documents(path: &str) -> Vec<Document> {
    parse_documents(path, &read(path)).or_fail()
}

/// Files directly in a folder, as repository-relative paths, sorted.
fn files_in(dir: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: cannot list: {e}"))
        .map(|entry| {
            format!(
                "{dir}/{}",
                entry
                    .expect("a directory entry")
                    .file_name()
                    .to_string_lossy()
            )
        })
        .collect();
    files.sort();
    files
}

fn base_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_owned()
}

/// Each file of bundle/manifests with its one document.
fn manifests() -> Vec<(String, Document)> {
    files_in(legate_olm::MANIFESTS_DIR)
        .into_iter()
        .map(|file| {
            let mut documents = documents(&file);
            assert_eq!(documents.len(), 1, "{file}: must hold exactly one document");
            (file, documents.remove(0))
        })
        .collect()
}

fn bundle_crds() -> Vec<(String, Document)> {
    manifests()
        .into_iter()
        .filter(|(_, d)| d.kind() == "CustomResourceDefinition")
        .collect()
}

fn config_crds() -> Vec<(String, Document)> {
    files_in("config/crd/bases")
        .into_iter()
        .flat_map(|file| documents(&file).into_iter().map(move |d| (file.clone(), d)))
        .collect()
}

/// The one document of `kind` in a config file.
fn config_document(path: &str, kind: &str) -> Document {
    let mut found: Vec<Document> = documents(path)
        .into_iter()
        .filter(|d| d.kind() == kind)
        .collect();
    assert_eq!(found.len(), 1, "{path}: expected exactly one {kind}");
    found.remove(0)
}

fn service_account() -> Value {
    config_document("config/rbac/service_account.yaml", "ServiceAccount")
        .field("metadata.name")
        .or_fail()
        .clone()
}

fn csv() -> Document {
    let mut documents = documents(CSV);
    assert_eq!(documents.len(), 1, "{CSV}: must hold exactly one document");
    documents.remove(0)
}

fn csv_field(field: &str) -> Value {
    csv().field(field).or_fail().clone()
}

fn csv_str(field: &str) -> String {
    csv().str(field).or_fail().to_owned()
}

fn as_list<'a>(value: &'a Value, field: &str) -> Vec<&'a Value> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("{CSV}: {field}: must be a list"))
        .iter()
        .collect()
}

fn annotations() -> serde_json::Map<String, Value> {
    let documents = documents(ANNOTATIONS);
    let [document] = &documents[..] else {
        panic!("{ANNOTATIONS}: must hold exactly one document");
    };
    document
        .field("annotations")
        .or_fail()
        .as_object()
        .unwrap_or_else(|| panic!("{ANNOTATIONS}: annotations: must be a map"))
        .clone()
}
