//! `ir`: arbitrary fleets of resources, described in [`crate::vocabulary`]'s terms, rendered
//! to YAML, loaded, and translated both ways: from scratch ([`Configuration::build`]) and by one
//! [`Translator`] through a series of edits, as a directory of YAML and as Kubernetes (both
//! [`Settings`] modes). Nothing may panic, and every incremental build must equal the build from
//! scratch of the same resources.

use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use legate_agent::{
    ir::{ServiceNamespaces, Settings},
    pipeline::{Configuration, Translator},
};
use legate_crds::{Resource, loader::load_str};

use crate::vocabulary::{Document, GOLDEN};

#[derive(Arbitrary, Debug)]
struct Fleet {
    /// A golden test's input to start from (`0`: none).
    golden: u8,
    documents: Vec<Document>,
    edits: Vec<Edit>,
    kubernetes: bool,
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Remove(u8),
    Add(Document),
    Replace(u8, Document),
    /// The same content as a new object: the translator must recompute it, to the same result.
    Renew(u8),
}

pub fn run(data: &[u8]) {
    let u = Unstructured::new(data);
    let Ok(fleet) = Fleet::arbitrary_take_rest(u) else {
        return;
    };
    crate::show(&fleet);
    let settings = if fleet.kubernetes {
        Settings {
            service_namespaces: Some(ServiceNamespaces::All),
            ..Settings::default()
        }
    } else {
        Settings::default()
    };
    let golden = match usize::from(fleet.golden) % (GOLDEN.len() + 1) {
        0 => "",
        i => GOLDEN[i - 1],
    };
    let mut resources: Vec<Arc<Resource>> = load(golden, &fleet.documents)
        .into_iter()
        .map(Arc::new)
        .collect();
    let mut translator = Translator::new(settings.clone());
    check(&mut translator, &resources, &settings);
    for edit in &fleet.edits {
        let at = |i: &u8, len: usize| (len > 0).then(|| usize::from(*i) % len);
        match edit {
            Edit::Remove(i) => {
                if let Some(i) = at(i, resources.len()) {
                    resources.remove(i);
                }
            }
            Edit::Add(doc) => resources.extend(
                load("", std::slice::from_ref(doc))
                    .into_iter()
                    .map(Arc::new),
            ),
            Edit::Replace(i, doc) => {
                let new = load("", std::slice::from_ref(doc));
                if let (Some(i), Some(new)) = (at(i, resources.len()), new.into_iter().next()) {
                    resources[i] = Arc::new(new);
                }
            }
            Edit::Renew(i) => {
                if let Some(i) = at(i, resources.len()) {
                    resources[i] = Arc::new(Resource::clone(&resources[i]));
                }
            }
        }
        check(&mut translator, &resources, &settings);
    }
}

/// The resources of `golden` and `documents`, through the loader as a file of YAML.
fn load(golden: &str, documents: &[Document]) -> Vec<Resource> {
    let mut text = golden.to_owned();
    for doc in documents {
        text.push_str("\n---\n");
        text.push_str(&doc.render());
    }
    load_str("fleet.yaml", &text).map_or_else(|_| Vec::new(), |loaded| loaded.resources)
}

fn check(translator: &mut Translator, resources: &[Arc<Resource>], settings: &Settings) {
    let owned: Vec<Resource> = resources.iter().map(|r| Resource::clone(r)).collect();
    let fresh = Configuration::build(&owned, settings);
    let incremental = translator.build(resources);
    assert!(
        incremental == fresh,
        "the incremental build differs from the build from scratch of {owned:#?}"
    );
}
