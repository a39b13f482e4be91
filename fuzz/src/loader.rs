//! `loader`: any bytes, as a file's text and as an object from the API server. The loader must
//! return (a result or an error), never panic; what it accepts must survive being written back
//! and read again unchanged.

use legate_crds::loader::{Loaded, load_object, load_str};

pub fn run(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(loaded) = load_str("fuzz.yaml", text)
    {
        round_trip(&loaded);
    }
    // An object as a watch hands it over: JSON, already parsed.
    if let Ok(value) = serde_json::from_slice(data) {
        round_trip(&load_object("fuzz", value));
    }
}

/// A resource the loader accepted, as written back ([`legate_crds::Resource::to_json`]), loads
/// again as the same resource.
fn round_trip(loaded: &Loaded) {
    for resource in &loaded.resources {
        let again = load_object("again", resource.to_json());
        assert!(
            again.errors.is_empty(),
            "{resource:?} written back is refused: {:?}",
            again.errors
        );
        assert_eq!(again.resources.as_slice(), std::slice::from_ref(resource));
    }
}
