//! Golden tests of the pure stages: each folder under `tests/golden/` holds resources
//! (`input.yaml`, or an `input/` directory) and what they become: `ir.txt` (the IR) and
//! `envoy.txt` (the Envoy resources), both as Rust's `{:#?}` of the values; what ADS serves must
//! be those Envoy resources, encoded. Reviewed by eye once; a change shows as a diff.
//! `UPDATE_GOLDEN=1 cargo test --test golden` rewrites them.
//!
//! A virtual host's matcher tree holds its maps as `HashMap`s, which print and encode in hash
//! order: `envoy.txt` prints each tree after the resources, its keys in order, its routes
//! decoded; route tables are compared decoded.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use envoy_types::pb::{
    envoy::{
        config::route::v3::{Route, RouteConfiguration, RouteList},
        r#type::matcher::v3::HttpRequestHeaderMatchInput,
    },
    xds::r#type::matcher::v3::{
        Matcher,
        matcher::{MatcherType, OnMatch, matcher_list::Predicate, matcher_tree, on_match},
    },
};
use prost::Message;

use legate_agent::{
    envoy,
    ir::Settings,
    pipeline::Configuration,
    xds::{Res, ResourceSet},
};

fn load(input: &Path) -> Vec<legate_crds::Resource> {
    let loaded = if input.is_dir() {
        let d = legate_crds::loader::load_dir(input).unwrap();
        assert!(d.file_errors.is_empty(), "{:?}", d.file_errors);
        d.loaded
    } else {
        legate_crds::loader::load_file(input).unwrap()
    };
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    loaded.resources
}

fn check(path: &Path, actual: &str, failures: &mut Vec<String>) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or(0);
        failures.push(format!(
            "{} differs from line {}: expected {:?}, got {:?} (UPDATE_GOLDEN=1 to accept)",
            path.display(),
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        ));
    }
}

fn encoded(messages: &envoy::EnvoyConfig) -> ResourceSet {
    let mut set = ResourceSet::new();
    for c in &messages.clusters {
        set.insert(c.name.clone(), c);
    }
    for e in &messages.endpoints {
        set.insert(e.cluster_name.clone(), e);
    }
    for s in &messages.secrets {
        set.insert(s.0.name.clone(), &s.0);
    }
    for l in &messages.listeners {
        set.insert(l.name.clone(), l);
    }
    // A route table's version is the hash of its name and its virtual hosts' hashes.
    for r in messages.routes.iter().filter(|r| !has_tree(r)) {
        let digests: Vec<[u8; 32]> = r
            .virtual_hosts
            .iter()
            .map(|v| Res::digest(&v.encode_to_vec()))
            .collect();
        let mut res = Res::encode(r);
        res.version = Res::version_of_parts(&r.name, &digests);
        set.insert_res(r.name.clone(), Arc::new(res));
    }
    set
}

fn has_tree(r: &RouteConfiguration) -> bool {
    r.virtual_hosts.iter().any(|v| v.matcher.is_some())
}

/// What `served` holds, the route tables with matcher trees decoded (and left out).
fn route_tables_with_trees(served: &ResourceSet) -> (ResourceSet, Vec<RouteConfiguration>) {
    let mut rest = ResourceSet::new();
    let mut tables = Vec::new();
    for (type_url, name, res) in served.iter() {
        let table = (type_url == legate_agent::xds::type_url::ROUTE)
            .then(|| RouteConfiguration::decode(&res.any.value[..]).unwrap())
            .filter(has_tree);
        match table {
            Some(table) => tables.push(table),
            None => {
                rest.insert_res(name.clone(), res.clone());
            }
        }
    }
    (rest, tables)
}

/// A predicate in a line: `header pattern`, `all(...)`, `any(...)`.
fn describe(p: &Predicate) -> String {
    use envoy_types::pb::xds::r#type::matcher::v3::matcher::matcher_list::predicate::{
        MatchType, single_predicate::Matcher as Value,
    };
    let list = |l: &[Predicate]| l.iter().map(describe).collect::<Vec<_>>().join(", ");
    match p.match_type.as_ref().unwrap() {
        MatchType::SinglePredicate(single) => {
            let input = single
                .input
                .as_ref()
                .unwrap()
                .typed_config
                .as_ref()
                .unwrap();
            let header = HttpRequestHeaderMatchInput::decode(&input.value[..])
                .unwrap()
                .header_name;
            let Some(Value::ValueMatch(m)) = &single.matcher else {
                panic!("only value matches are written")
            };
            let case = if m.ignore_case { " (any case)" } else { "" };
            format!("{header} {:?}{case}", m.match_pattern.as_ref().unwrap())
        }
        MatchType::AndMatcher(l) => format!("all({})", list(&l.predicate)),
        MatchType::OrMatcher(l) => format!("any({})", list(&l.predicate)),
        MatchType::NotMatcher(p) => format!("not({})", describe(p)),
    }
}

/// A matcher tree as `envoy.txt` prints it: maps in key order, routes decoded.
#[allow(dead_code)] // Read through Debug.
#[derive(Debug)]
enum Tree {
    Map {
        input: String,
        prefixes: BTreeMap<String, Tree>,
        otherwise: Option<Box<Tree>>,
    },
    List {
        tries: Vec<(String, Tree)>,
        otherwise: Option<Box<Tree>>,
    },
    Route(Box<Route>),
    Routes(Vec<Route>),
}

impl Tree {
    fn of(m: &Matcher) -> Self {
        let otherwise = m.on_no_match.as_ref().map(|o| Box::new(Self::on_match(o)));
        match m.matcher_type.as_ref().unwrap() {
            MatcherType::MatcherTree(t) => {
                let Some(matcher_tree::TreeType::PrefixMatchMap(map)) = &t.tree_type else {
                    panic!("only prefix maps are written")
                };
                let input = t.input.as_ref().unwrap().typed_config.as_ref().unwrap();
                Tree::Map {
                    input: HttpRequestHeaderMatchInput::decode(&input.value[..])
                        .unwrap()
                        .header_name,
                    prefixes: map
                        .map
                        .iter()
                        .map(|(k, o)| (k.clone(), Self::on_match(o)))
                        .collect(),
                    otherwise,
                }
            }
            MatcherType::MatcherList(l) => Tree::List {
                tries: l
                    .matchers
                    .iter()
                    .map(|f| {
                        let on_match = Self::on_match(f.on_match.as_ref().unwrap());
                        (describe(f.predicate.as_ref().unwrap()), on_match)
                    })
                    .collect(),
                otherwise,
            },
        }
    }

    fn on_match(o: &OnMatch) -> Self {
        match o.on_match.as_ref().unwrap() {
            on_match::OnMatch::Matcher(m) => Self::of(m),
            on_match::OnMatch::Action(a) => {
                let any = a.typed_config.as_ref().unwrap();
                if any.type_url.ends_with(".RouteList") {
                    Tree::Routes(RouteList::decode(&any.value[..]).unwrap().routes)
                } else {
                    Tree::Route(Box::new(Route::decode(&any.value[..]).unwrap()))
                }
            }
        }
    }

    fn routes(&self) -> Vec<&Route> {
        match self {
            Tree::Map {
                prefixes,
                otherwise,
                ..
            } => prefixes
                .values()
                .chain(otherwise.as_deref())
                .flat_map(Tree::routes)
                .collect(),
            Tree::List { tries, otherwise } => tries
                .iter()
                .map(|(_, t)| t)
                .chain(otherwise.as_deref())
                .flat_map(Tree::routes)
                .collect(),
            Tree::Route(r) => vec![r],
            Tree::Routes(r) => r.iter().collect(),
        }
    }
}

#[test]
fn pure_stages_match_their_golden_files() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut failures = Vec::new();
    let mut cases = 0;
    for case in std::fs::read_dir(&root).unwrap() {
        let case = case.unwrap().path();
        let input = [case.join("input.yaml"), case.join("input")]
            .into_iter()
            .find(|p| p.exists())
            .unwrap();
        let config = Configuration::build(&load(&input), &Settings::default());
        check(
            &case.join("ir.txt"),
            &format!("{:#?}\n", config.ir),
            &mut failures,
        );
        let mut messages = envoy::translate(&config.ir);
        // The trees, taken out of the resources to print them in order.
        let mut trees = Vec::new();
        for v in messages
            .routes
            .iter_mut()
            .flat_map(|t| &mut t.virtual_hosts)
        {
            if let Some(m) = v.matcher.take() {
                trees.push((v.name.clone(), Tree::of(&m)));
                v.matcher = Some(m);
            }
        }
        // Prost keeps `typed_per_filter_config` in a HashMap, printed and encoded in hash order:
        // a route with two entries (CORS and a check, say) would print differently each run.
        // ADS writes them in key order (envoy/route.rs); tests/auth.rs covers such routes.
        for r in messages
            .routes
            .iter()
            .flat_map(|t| &t.virtual_hosts)
            .flat_map(|v| &v.routes)
            .chain(trees.iter().flat_map(|(_, t)| t.routes()))
        {
            assert!(
                r.typed_per_filter_config.len() < 2,
                "{}: route {} has several typed_per_filter_config entries, which print in hash \
                 order; keep golden cases to one per route",
                case.display(),
                r.name
            );
        }
        // What ADS serves is exactly those messages, encoded (the trees' tables, decoded).
        let (served, served_tables) = route_tables_with_trees(&config.resources);
        assert_eq!(served, encoded(&messages), "{}", case.display());
        let tables: Vec<&RouteConfiguration> =
            messages.routes.iter().filter(|r| has_tree(r)).collect();
        assert_eq!(
            served_tables.iter().collect::<Vec<_>>(),
            tables,
            "{}",
            case.display()
        );
        for v in messages
            .routes
            .iter_mut()
            .flat_map(|t| &mut t.virtual_hosts)
        {
            v.matcher = None;
        }
        check(
            &case.join("envoy.txt"),
            &format!("{messages:#?}\nmatcher trees (by virtual host): {trees:#?}\n"),
            &mut failures,
        );
        cases += 1;
    }
    assert!(cases >= 2);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
