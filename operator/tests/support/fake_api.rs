//! An API server for reconciler tests, on kube's `tower-test` mock: it answers the reconciler's
//! calls as the API server would (GET, LIST with a label selector, server-side apply, JSON patch,
//! status, DELETE, Events) from an in-memory store, and records every call, so a scenario asserts
//! the exact calls made — a missing or an extra one fails it.
//!
//! Server-side apply of a status keeps track of which field manager applied which field (top-level
//! status fields, and each condition by type), as the API server's managed fields do: an apply
//! sets what it names, removes what the same manager applied before and no longer names, and
//! leaves every other manager's fields alone.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
};

use http::{Method, Request, Response, StatusCode};
use kube::{Client, client::Body};
use serde_json::{Value, json};

/// One call the reconciler made.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub method: Method,
    /// Path and query, e.g. `/apis/apps/v1/namespaces/infra/deployments/public?fieldManager=…`.
    pub uri: String,
    pub body: Option<Value>,
}

impl Call {
    fn is_write(&self) -> bool {
        self.method != Method::GET
    }

    /// `METHOD path` without the query, for compact expectations.
    pub fn line(&self) -> String {
        let path = self.uri.split('?').next().unwrap_or_default();
        format!("{} {path}", self.method)
    }
}

#[derive(Default)]
struct State {
    /// Objects by their path (no query).
    objects: BTreeMap<String, Value>,
    calls: Vec<Call>,
    resource_version: u64,
    /// Per object path and field manager, the status fields it applied (`conditions/<type>` for
    /// a condition).
    status_owners: BTreeMap<(String, String), BTreeSet<String>>,
}

/// The fake server: clone it freely; every clone sees the same store.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

impl FakeApi {
    /// A client whose every request this fake answers.
    pub fn client(&self) -> Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let this = self.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.expect("a request body");
                let body = (!bytes.is_empty())
                    .then(|| serde_json::from_slice(&bytes).expect("a JSON request body"));
                let call = Call {
                    method: parts.method.clone(),
                    uri: parts.uri.to_string(),
                    body,
                };
                let (status, reply) = this.answer(&call);
                respond.send_response(
                    Response::builder()
                        .status(status)
                        .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                        .unwrap(),
                );
            }
        });
        Client::new(service, "default")
    }

    /// Stores `object` at `path` (as if created earlier), with server-set metadata.
    pub fn put(&self, path: &str, mut object: Value) {
        let mut state = self.state.lock().unwrap();
        state.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(state.resource_version.to_string());
        state.objects.insert(path.to_owned(), object);
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap().objects.get(path).cloned()
    }

    pub fn remove(&self, path: &str) {
        self.state.lock().unwrap().objects.remove(path);
    }

    /// Server-side applies `status` to the object at `path` under `manager`, as another writer
    /// (an agent) would.
    pub fn apply_status(&self, path: &str, manager: &str, status: Value) {
        let mut state = self.state.lock().unwrap();
        let current = state.objects.get(path).cloned().unwrap();
        let updated = apply_status(&mut state, path, manager, current, &status);
        state.resource_version += 1;
        let mut updated = updated;
        updated["metadata"]["resourceVersion"] = json!(state.resource_version.to_string());
        state.objects.insert(path.to_owned(), updated);
    }

    /// Every call so far that wrote something, and forgets all calls.
    pub fn take_writes(&self) -> Vec<Call> {
        let calls = std::mem::take(&mut self.state.lock().unwrap().calls);
        calls.into_iter().filter(Call::is_write).collect()
    }

    fn answer(&self, call: &Call) -> (StatusCode, Value) {
        let mut state = self.state.lock().unwrap();
        state.calls.push(call.clone());
        let path = call.uri.split('?').next().unwrap().to_owned();
        let query = call.uri.split('?').nth(1).unwrap_or_default();
        match call.method {
            Method::GET => match state.objects.get(&path) {
                Some(object) => (StatusCode::OK, object.clone()),
                None => match list(&state.objects, &path, query) {
                    Some(list) => (StatusCode::OK, list),
                    None => not_found(&path),
                },
            },
            Method::DELETE => match state.objects.remove(&path) {
                Some(_) => (
                    StatusCode::OK,
                    json!({"kind": "Status", "status": "Success"}),
                ),
                None => not_found(&path),
            },
            // Events: created as sent.
            Method::POST => {
                let body = call.body.clone().unwrap();
                let name = body["metadata"]["name"].as_str().unwrap();
                state.objects.insert(format!("{path}/{name}"), body.clone());
                (StatusCode::CREATED, body)
            }
            // An Event seen again: kube's recorder patches its series.
            Method::PATCH if path.contains("/events/") => {
                let Some(mut event) = state.objects.get(&path).cloned() else {
                    return not_found(&path);
                };
                json_patch::merge(&mut event, call.body.as_ref().unwrap());
                state.objects.insert(path, event.clone());
                (StatusCode::OK, event)
            }
            Method::PATCH => {
                let body = call.body.clone().unwrap();
                let (object_path, status_only) = match path.strip_suffix("/status") {
                    Some(p) => (p.to_owned(), true),
                    None => (path.clone(), false),
                };
                let current = state.objects.get(&object_path).cloned();
                let updated = if body.is_array() {
                    // A JSON patch (the finalizer): applied to the stored object.
                    let Some(mut object) = current else {
                        return not_found(&path);
                    };
                    // The API server tests an absent field as null.
                    let metadata = object["metadata"].as_object_mut().unwrap();
                    metadata.entry("finalizers").or_insert(Value::Null);
                    let patch: json_patch::Patch = serde_json::from_value(body).unwrap();
                    if json_patch::patch(&mut object, &patch).is_err() {
                        return (
                            StatusCode::UNPROCESSABLE_ENTITY,
                            json!({"kind": "Status", "code": 422, "message": "test failed"}),
                        );
                    }
                    object
                } else if status_only {
                    assert!(query.contains("fieldManager=legate-operator"), "{query}");
                    let Some(object) = current else {
                        return not_found(&path);
                    };
                    apply_status(
                        &mut state,
                        &object_path,
                        "legate-operator",
                        object,
                        &body["status"],
                    )
                } else {
                    assert!(query.contains("fieldManager=legate-operator"), "{query}");
                    assert!(query.contains("force=true"), "{query}");
                    apply(current, body)
                };
                state.resource_version += 1;
                let mut updated = updated;
                updated["metadata"]["resourceVersion"] = json!(state.resource_version.to_string());
                state.objects.insert(object_path, updated.clone());
                (StatusCode::OK, updated)
            }
            _ => panic!("unexpected call {call:?}"),
        }
    }
}

/// Server-side apply, as far as these tests need: the manifest replaces what was there, the
/// server-owned parts (uid, generation, status) stay, and a changed spec bumps the generation.
fn apply(current: Option<Value>, manifest: Value) -> Value {
    let mut object = manifest;
    let Some(current) = current else {
        object["metadata"]["uid"] = json!("uid-of-a-child");
        object["metadata"]["generation"] = json!(1);
        return object;
    };
    let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
    let changed = current.get("spec") != object.get("spec");
    object["metadata"]["uid"] = current["metadata"]["uid"].clone();
    object["metadata"]["generation"] = json!(generation + i64::from(changed));
    if let Some(status) = current.get("status") {
        object["status"] = status.clone();
    }
    object
}

/// Server-side apply of `status` by `manager` to `object` (see the module's documentation).
fn apply_status(
    state: &mut State,
    path: &str,
    manager: &str,
    mut object: Value,
    status: &Value,
) -> Value {
    let key = (path.to_owned(), manager.to_owned());
    let before = state.status_owners.remove(&key).unwrap_or_default();
    let owned_by_others: BTreeSet<String> = state
        .status_owners
        .iter()
        .filter(|((p, _), _)| p == path)
        .flat_map(|(_, fields)| fields.iter().cloned())
        .collect();
    let mut live = object["status"].as_object().cloned().unwrap_or_default();
    let mut conditions: Vec<Value> = live
        .remove("conditions")
        .and_then(|c| c.as_array().cloned())
        .unwrap_or_default();
    let mut now = BTreeSet::new();
    for (field, value) in status.as_object().into_iter().flatten() {
        if field == "conditions" {
            for condition in value.as_array().into_iter().flatten() {
                let type_ = condition["type"].as_str().unwrap().to_owned();
                match conditions.iter_mut().find(|c| c["type"] == type_.as_str()) {
                    Some(c) => *c = condition.clone(),
                    None => conditions.push(condition.clone()),
                }
                now.insert(format!("conditions/{type_}"));
            }
        } else {
            live.insert(field.clone(), value.clone());
            now.insert(field.clone());
        }
    }
    for dropped in before
        .difference(&now)
        .filter(|f| !owned_by_others.contains(*f))
    {
        match dropped.strip_prefix("conditions/") {
            Some(type_) => conditions.retain(|c| c["type"] != type_),
            None => {
                live.remove(dropped);
            }
        }
    }
    if !conditions.is_empty() {
        live.insert("conditions".to_owned(), Value::Array(conditions));
    }
    state.status_owners.insert(key, now);
    object["status"] = Value::Object(live);
    object
}

/// A LIST of the collection at `path` (all namespaces or one; `None` when `path` names no
/// collection), filtered by the query's `labelSelector`.
fn list(objects: &BTreeMap<String, Value>, path: &str, query: &str) -> Option<Value> {
    let (prefix, rest) = match path.strip_prefix("/api/v1/") {
        Some(rest) => ("/api/v1", rest),
        None => {
            let rest = path.strip_prefix("/apis/")?;
            let mut parts = rest.splitn(3, '/');
            let (group, version, rest) = (parts.next()?, parts.next()?, parts.next()?);
            let prefix_len = "/apis/".len() + group.len() + version.len() + 1;
            (&path[..prefix_len], rest)
        }
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let (namespace, resource) = match segments[..] {
        [resource] => (None, resource),
        ["namespaces", namespace, resource] => (Some(namespace), resource),
        _ => return None,
    };
    let selector = query
        .split('&')
        .find_map(|q| q.strip_prefix("labelSelector="))
        .map(url_decode)
        .unwrap_or_default();
    let items: Vec<Value> = objects
        .iter()
        .filter(|(p, _)| {
            let Some(rest) = p.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) else {
                return false;
            };
            let segments: Vec<&str> = rest.split('/').collect();
            match (&segments[..], namespace) {
                ([r, _], None) => *r == resource,
                (["namespaces", ns, r, _], wanted) => {
                    *r == resource && wanted.is_none_or(|w| w == *ns)
                }
                _ => false,
            }
        })
        .map(|(_, object)| object.clone())
        .filter(|object| selects(&selector, &object["metadata"]["labels"]))
        .collect();
    Some(
        json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}),
    )
}

/// `%XX` and `+` decoded.
fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// Whether `labels` match a label selector string (`k=v`, `k!=v`, `k in (a,b)`,
/// `k notin (a,b)`, `k`, `!k`, comma-separated).
fn selects(selector: &str, labels: &Value) -> bool {
    let label = |k: &str| labels.get(k.trim()).and_then(Value::as_str);
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[start..]);
    terms
        .into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|term| {
            let set = |values: &str| -> Vec<String> {
                values
                    .trim()
                    .trim_start_matches('(')
                    .trim_end_matches(')')
                    .split(',')
                    .map(|v| v.trim().to_owned())
                    .collect()
            };
            if let Some((k, values)) = term.split_once(" notin ") {
                label(k).is_none_or(|v| !set(values).iter().any(|s| s == v))
            } else if let Some((k, values)) = term.split_once(" in ") {
                label(k).is_some_and(|v| set(values).iter().any(|s| s == v))
            } else if let Some((k, v)) = term.split_once("!=") {
                label(k) != Some(v.trim())
            } else if let Some((k, v)) = term.split_once('=') {
                label(k) == Some(v.trim_start_matches('=').trim())
            } else if let Some(k) = term.strip_prefix('!') {
                label(k).is_none()
            } else {
                label(term).is_some()
            }
        })
}

fn not_found(path: &str) -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": "NotFound", "code": 404, "message": format!("{path} not found"),
        }),
    )
}
