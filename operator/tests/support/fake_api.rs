//! An API server for reconciler tests, on kube's `tower-test` mock: it answers the reconciler's
//! calls as the API server would (GET, server-side apply, JSON patch, status, DELETE, Events) from
//! an in-memory store, and records every call, so a scenario asserts the exact calls made — a
//! missing or an extra one fails it.

use std::{
    collections::BTreeMap,
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
                None => not_found(&path),
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
                    let Some(mut object) = current else {
                        return not_found(&path);
                    };
                    object["status"] = body["status"].clone();
                    object
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

fn not_found(path: &str) -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": "NotFound", "code": 404, "message": format!("{path} not found"),
        }),
    )
}
