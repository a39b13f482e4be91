//! How the generator follows `config/`: from the real tree with one file edited in memory.

use std::path::Path;

use legate_olm::{CSV_FILE, ConfigTree, generate};
use serde_json::{Value, json};

fn config() -> ConfigTree {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    ConfigTree::load(&root).unwrap_or_else(|e| panic!("{e}"))
}

fn csv(config: &ConfigTree) -> Value {
    let files = generate(config).unwrap_or_else(|e| panic!("{e}"));
    let csv = files.iter().find(|f| f.path == CSV_FILE).expect("a CSV");
    serde_saphyr::from_str(&csv.contents).expect("the CSV is YAML")
}

fn edit(config: &mut ConfigTree, path: &str, from: &str, to: &str) {
    let text = config.text(path).expect("the file exists").to_owned();
    assert!(text.contains(from), "{path} no longer contains {from:?}");
    config.insert(path, text.replacen(from, to, 1));
}

#[test]
fn a_rule_added_to_the_cluster_role_reaches_cluster_permissions() {
    let mut config = config();
    edit(
        &mut config,
        "config/rbac/role.yaml",
        "rules:\n",
        "rules:\n  - apiGroups: [example.org]\n    resources: [widgets]\n    verbs: [get]\n",
    );
    let rules = &csv(&config)["spec"]["install"]["spec"]["clusterPermissions"][0]["rules"];
    assert_eq!(
        rules[0],
        json!({"apiGroups": ["example.org"], "resources": ["widgets"], "verbs": ["get"]})
    );
}

#[test]
fn a_deployment_run_by_another_service_account_is_an_error_naming_its_field() {
    let mut config = config();
    edit(
        &mut config,
        "config/manager/deployment.yaml",
        "serviceAccountName: legate-operator",
        "serviceAccountName: someone-else",
    );
    let error = generate(&config).unwrap_err().to_string();
    assert!(
        error.starts_with(
            "config/manager/deployment.yaml: document 1: spec.template.spec.serviceAccountName: \
             is someone-else, but config/rbac grants its rules to ServiceAccount legate-operator"
        ),
        "{error}"
    );
}

#[test]
fn the_same_config_gives_byte_identical_files() {
    let config = config();
    assert_eq!(
        generate(&config).unwrap(),
        generate(&config.clone()).unwrap()
    );
}
