//! Rate limiting, as Emissary does it: the gateway's one `RateLimitService` (a gRPC
//! `envoy.service.ratelimit.v3` server) is called by Envoy's `ratelimit` HTTP filter on every
//! HTTP listener, with the descriptors each route's `labels` make for the service's domain, the
//! Module's `default_labels` of that domain put first in every one.
//!
//! Emissary's code: `python/ambassador/src/ambassador/ir/irratelimit.py` (the service's fields
//! and defaults), `envoy/v3/v3httpfilter.py` (`V3HTTPFilter_ratelimit`), `envoy/v3/v3route.py`
//! (`group.labels.get(rlsvc.domain)`), `envoy/v3/v3ratelimitaction.py` (labels → actions),
//! `ir/irhttpmappinggroup.py` (default labels) and, for the label shapes,
//! `pkg/api/getambassador.io/v3alpha1/crd_mapping.go` (`MappingLabelSpecifier`) and
//! `pkg/api/getambassador.io/v2/handwritten.conversion.go` (the v2 shorthands).
//!
//! Deliberate differences: of several RateLimitServices one is used (see
//! [`super::external_service::ranked`]) and the others are refused, where Emissary disables
//! rate limiting; a RateLimitService that cannot be used (v2, a TLSContext missing, ...) is
//! refused but its filter stays, calling a cluster without endpoints, so `failure_mode_deny`
//! decides what requests see rather than rate limiting silently vanishing;
//! `grpc.use_resource_exhausted_code` is applied (Emissary reads another key).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use legate_crds::{
    Module, ObjectRef, RateLimitService, Resource,
    auth_service::ProtocolVersion,
    mapping::{LabelSpecifier, RateLimitLabels},
};
use serde_json::Value;

use super::{
    Reason, Refusal, Rejection, Settings, envoy_rules,
    external_service::{self, Context, Target},
    module,
    service::Cluster,
};

/// Emissary's domain when neither the RateLimitService nor the Module names one.
pub const DEFAULT_DOMAIN: &str = "ambassador";
/// Emissary's `timeout_ms` default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(20);

/// Envoy's `ratelimit` filter, the same on every HTTP listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub domain: String,
    pub timeout: Duration,
    /// Answer 500 when the service cannot be asked (default: let the request through).
    pub failure_mode_deny: bool,
    /// Answer rate-limited gRPC requests `RESOURCE_EXHAUSTED` rather than `UNAVAILABLE`.
    pub resource_exhausted: bool,
    /// The cluster the service is reached through.
    pub cluster: String,
}

/// One label: what one entry of a descriptor is made of (Envoy's `RateLimit.Action`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `source_cluster`: Envoy's own cluster (`node.cluster`).
    SourceCluster,
    /// `destination_cluster`: the route's cluster.
    DestinationCluster,
    /// `remote_address`: the client's address.
    RemoteAddress,
    /// `<key>=<value>` (key `generic_key` unless given).
    GenericKey { key: String, value: String },
    /// `<key>=<the header's value>`; without the header, the descriptor is not sent.
    RequestHeader { header: String, key: String },
}

/// One descriptor of a route: an Envoy `RateLimit` (stage 0) with these actions, in order.
pub type Descriptor = Vec<Action>;

/// What every Mapping's rate limits depend on besides the Mapping: the domain used and the
/// Module's default labels for it. Part of [`super::defaults::MappingDefaults`], so a change
/// compiles every Mapping again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteDefaults {
    /// The RateLimitService's domain: only the labels of this domain are sent.
    pub domain: String,
    /// `default_labels.<domain>.defaults`, put first in every descriptor.
    pub defaults: Vec<Action>,
    /// Whether a Mapping without labels sends the defaults alone: Emissary gives it
    /// `{<default_label_domain>: [{defaults: ...}]}`, which counts only when that domain is the
    /// service's.
    pub unlabelled: bool,
}

/// The gateway's RateLimitService, chosen before the Mappings are compiled.
#[derive(Debug, Default)]
pub struct Selection<'r> {
    /// The one used, and what is wrong with it (it is then refused, and called through a
    /// cluster without endpoints).
    pub chosen: Option<(&'r RateLimitService, ObjectRef)>,
    /// The domain used: the service's, else the Module's `default_label_domain`, else
    /// `ambassador`.
    pub domain: String,
    /// For the Mappings; `None` without a RateLimitService: no route sends descriptors.
    pub routes: Option<RouteDefaults>,
    /// The other RateLimitServices (Conflict) and the Module's default labels that cannot be
    /// used.
    pub rejections: Vec<Rejection>,
    /// A problem of the chosen one found here (its domain), joined with those found later.
    problems: Vec<String>,
}

/// Chooses the gateway's RateLimitService among `resources` (those this gateway serves) and
/// reads the Module's label settings.
pub fn select<'r>(
    resources: &[&'r Resource],
    module: Option<&Module>,
    settings: &Settings,
) -> Selection<'r> {
    let mut rejections = Vec::new();
    let config = module.map(|m| &m.spec.config);
    // `irambassador.py`: an empty or absent `default_label_domain` is `ambassador`.
    let default_domain = config
        .and_then(|c| c.default_label_domain.as_deref())
        .filter(|d| !d.is_empty())
        .unwrap_or(DEFAULT_DOMAIN)
        .to_owned();
    let defaults = module
        .map(|m| default_labels(m, &mut rejections))
        .unwrap_or_default();

    let winner = external_service::the_one(
        resources,
        |r| matches!(r, Resource::RateLimitService(_)),
        &settings.namespace,
        "the gateway's RateLimitService",
        &mut rejections,
    );
    let Some(winner) = winner else {
        return Selection {
            domain: default_domain,
            rejections,
            ..Selection::default()
        };
    };
    let Resource::RateLimitService(service) = winner else {
        // Only RateLimitServices were ranked.
        return Selection {
            domain: default_domain,
            rejections,
            ..Selection::default()
        };
    };
    let mut problems = Vec::new();
    let domain = match service.spec.domain.as_deref() {
        None => default_domain.clone(),
        Some("") => {
            // Envoy refuses an empty domain (`min_len: 1`).
            problems.push("domain: must not be empty (Envoy refuses it)".to_owned());
            default_domain.clone()
        }
        Some(d) => d.to_owned(),
    };
    let routes = RouteDefaults {
        defaults: defaults.get(&domain).cloned().unwrap_or_default(),
        unlabelled: domain == default_domain,
        domain: domain.clone(),
    };
    Selection {
        chosen: Some((service, winner.object_ref())),
        domain,
        routes: Some(routes),
        rejections,
        problems,
    }
}

/// The Module's `default_labels`, by domain; one that cannot be used is named in one rejection
/// of the Module and left out (its domain's other defaults too: half a prefix would count
/// requests under the wrong descriptors).
fn default_labels(
    module: &Module,
    rejections: &mut Vec<Rejection>,
) -> BTreeMap<String, Descriptor> {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for (domain, labels) in module.spec.config.default_labels.iter().flatten() {
        let field = format!("spec.config.default_labels.{domain}.defaults");
        let parsed: Result<Descriptor, String> = labels
            .defaults
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, s)| specifier(&format!("{field}[{i}]"), s).map(|(a, _)| a))
            .collect();
        match parsed {
            Ok(actions) if !actions.is_empty() => {
                out.insert(domain.clone(), actions);
            }
            Ok(_) => {}
            Err(e) => problems.push(e),
        }
    }
    if !problems.is_empty() {
        rejections.push(module::invalid(
            module,
            format!("{}; those default labels are left out", problems.join("; ")),
        ));
    }
    out
}

/// The chosen RateLimitService, made usable: its cluster (added to `clusters`) and the filter.
/// A service that cannot be used is refused (naming the field) and its filter still installed,
/// calling a cluster without endpoints: `failure_mode_deny` then decides what requests see.
pub struct Chosen {
    pub object: ObjectRef,
    pub filter: Arc<RateLimit>,
}

/// Builds the chosen RateLimitService's cluster and filter.
pub(super) fn build(
    selection: &Selection<'_>,
    cx: &Context<'_, '_>,
    clusters: &mut BTreeMap<String, Arc<Cluster>>,
    rejections: &mut Vec<Rejection>,
    unreachable: &mut Vec<Rejection>,
) -> Option<Chosen> {
    let (service, object) = selection.chosen.as_ref()?;
    let spec = &service.spec;
    let namespace = object
        .namespace
        .as_deref()
        .unwrap_or(&cx.settings.namespace);
    let mut problems = selection.problems.clone();
    let mut reason = Reason::Invalid;
    // `irratelimit.py` refuses v2; Envoy speaks only v3 (absent means v3 here, as the CRD says).
    if spec.protocol_version == Some(ProtocolVersion::V2) {
        problems.push(
            "protocol_version: v2 is not supported; use v3 (Envoy speaks only v3)".to_owned(),
        );
    }
    let target = Target {
        field: "service",
        text: &spec.service,
        namespace,
        http2: true,
        tls: spec.tls.as_deref(),
        stats_name: &spec.stats_name,
        circuit_breakers: None,
    };
    let cluster = external_service::cluster_or_problem(&target, cx, &mut reason, &mut problems);
    let cluster = match (cluster, problems.is_empty()) {
        (Some((cluster, note)), true) => {
            // Its Service is missing: served anyway, the status says why checks fail.
            if let Some(note) = note {
                unreachable.push(Rejection::new(object.clone(), note.reason, note.message));
            }
            cluster
        }
        _ => {
            rejections.push(Rejection::new(
                object.clone(),
                reason,
                format!(
                    "{}; rate-limit checks fail until it is fixed (failure_mode_deny {}: {})",
                    problems.join("; "),
                    spec.failure_mode_deny == Some(true),
                    if spec.failure_mode_deny == Some(true) {
                        "requests are refused with 500"
                    } else {
                        "requests are let through, not rate limited"
                    }
                ),
            ));
            external_service::unusable("ratelimit-unusable", namespace, &object.name, true)
        }
    };
    let filter = RateLimit {
        domain: selection.domain.clone(),
        timeout: spec.timeout_ms.map_or(DEFAULT_TIMEOUT, |ms| {
            Duration::from_millis(u64::try_from(ms.get()).unwrap_or(0))
        }),
        failure_mode_deny: spec.failure_mode_deny == Some(true),
        resource_exhausted: spec
            .grpc
            .as_ref()
            .and_then(|g| g.use_resource_exhausted_code)
            == Some(true),
        cluster: cluster.name.clone(),
    };
    clusters
        .entry(cluster.name.clone())
        .or_insert_with(|| Arc::new(cluster));
    Some(Chosen {
        object: object.clone(),
        filter: Arc::new(filter),
    })
}

/// A Mapping's descriptors: its `labels` (every domain checked, as the CRD's schema checks them
/// in Emissary) and, for the service's domain, each group with the defaults first. No
/// RateLimitService (`routes` is `None`): none.
pub fn descriptors(
    labels: Option<&RateLimitLabels>,
    routes: Option<&RouteDefaults>,
) -> Result<Vec<Descriptor>, Refusal> {
    let parsed = parse_labels(labels).map_err(Refusal::from)?;
    let Some(routes) = routes else {
        return Ok(Vec::new());
    };
    // `irhttpmappinggroup.py`: `if not labels` (absent or `{}`) → the defaults alone.
    if labels.is_none_or(BTreeMap::is_empty) {
        return Ok(match routes.unlabelled && !routes.defaults.is_empty() {
            true => vec![routes.defaults.clone()],
            false => Vec::new(),
        });
    }
    Ok(parsed
        .get(&routes.domain)
        .into_iter()
        .flatten()
        .map(|group| routes.defaults.iter().chain(group).cloned().collect())
        // Envoy refuses a rate limit without actions; Emissary leaves such a group out.
        .filter(|d: &Descriptor| !d.is_empty())
        .collect())
}

/// Every domain's groups, each a list of actions.
fn parse_labels(
    labels: Option<&RateLimitLabels>,
) -> Result<BTreeMap<String, Vec<Descriptor>>, String> {
    let mut out = BTreeMap::new();
    for (domain, groups) in labels.into_iter().flatten() {
        let mut parsed = Vec::with_capacity(groups.len());
        for (i, group) in groups.iter().enumerate() {
            let at = format!("labels.{domain}[{i}]");
            let mut entries = group.iter();
            let (name, specifiers) = match (entries.next(), entries.next()) {
                (Some(entry), None) => entry,
                _ => {
                    let names: Vec<&str> = group.keys().map(String::as_str).collect();
                    return Err(format!(
                        "{at}: a label group is a map with one key, its name (e.g. `- my_group: \
                         [remote_address]`); this one has {}: {names:?}",
                        names.len()
                    ));
                }
            };
            let actions = specifiers
                .iter()
                .enumerate()
                .map(|(j, s)| specifier(&format!("{at}.{name}[{j}]"), s).map(|(a, _)| a))
                .collect::<Result<Descriptor, String>>()?;
            parsed.push(actions);
        }
        out.insert(domain.clone(), parsed);
    }
    Ok(out)
}

/// Whether any label asks for `omit_if_not_present: true` (not applied, as in Emissary).
pub fn omits_if_not_present<'a>(specifiers: impl IntoIterator<Item = &'a LabelSpecifier>) -> bool {
    specifiers
        .into_iter()
        .any(|s| specifier("", s).is_ok_and(|(_, omit)| omit))
}

/// The specifiers of every group of every domain of `labels`.
pub fn all_specifiers(labels: &RateLimitLabels) -> impl Iterator<Item = &LabelSpecifier> {
    labels
        .values()
        .flatten()
        .flat_map(BTreeMap::values)
        .flatten()
}

const KINDS: &str = "source_cluster, destination_cluster, remote_address, generic_key or \
                     request_headers (or Emissary v2's `{<key>: {header: <name>}}`)";

/// One label specifier, in Emissary v3alpha1's shapes or v2's shorthands (converted as
/// `Convert_v2_MappingLabelSpecifier_To_v3alpha1_MappingLabelSpecifier` does), and whether it
/// asks for `omit_if_not_present`. `at` names it in messages.
fn specifier(at: &str, s: &LabelSpecifier) -> Result<(Action, bool), String> {
    let object = match s {
        // v2: the three names, any other string a generic_key value.
        LabelSpecifier::Name(name) => {
            return Ok((
                match name.as_str() {
                    "source_cluster" => Action::SourceCluster,
                    "destination_cluster" => Action::DestinationCluster,
                    "remote_address" => Action::RemoteAddress,
                    _ => Action::GenericKey {
                        key: "generic_key".to_owned(),
                        value: non_empty(at, "", name)?,
                    },
                },
                false,
            ));
        }
        LabelSpecifier::Object(object) => object,
    };
    let mut entries = object.iter();
    let (kind, value) = match (entries.next(), entries.next()) {
        (Some(entry), None) => entry,
        _ => {
            let keys: Vec<&str> = object.keys().map(String::as_str).collect();
            return Err(format!(
                "{at}: a label is one of {KINDS}, a map with one key; this one has {}: {keys:?}",
                keys.len()
            ));
        }
    };
    let at = format!("{at}.{kind}");
    let fields = |allowed: &[&str]| -> Result<&serde_json::Map<String, Value>, String> {
        let Some(fields) = value.as_object() else {
            return Err(format!("{at}: must be a map, not {value}"));
        };
        match fields.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(unknown) => Err(format!(
                "{at}: unknown field {unknown:?} (it takes {})",
                allowed.join(", ")
            )),
            None => Ok(fields),
        }
    };
    let text =
        |fields: &serde_json::Map<String, Value>, name: &str| -> Result<Option<String>, String> {
            match fields.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(format!("{at}.{name}: must be a string, not {other}")),
            }
        };
    let omit = |fields: &serde_json::Map<String, Value>| -> Result<bool, String> {
        match fields.get("omit_if_not_present") {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(format!(
                "{at}.omit_if_not_present: must be true or false, not {other}"
            )),
        }
    };
    let action = match kind.as_str() {
        // v3alpha1: `{source_cluster: {key: source_cluster}}`; the CRD allows only that key.
        name @ ("source_cluster" | "destination_cluster" | "remote_address") => {
            if !value.is_null() {
                let fields = fields(&["key"])?;
                if let Some(key) = text(fields, "key")?.filter(|k| k != name) {
                    return Err(format!(
                        "{at}.key: must be {name} (Envoy names this entry itself), not {key:?}"
                    ));
                }
            }
            match name {
                "source_cluster" => Action::SourceCluster,
                "destination_cluster" => Action::DestinationCluster,
                _ => Action::RemoteAddress,
            }
        }
        "generic_key" => match value {
            // v2: `{generic_key: <value>}`.
            Value::String(v) => Action::GenericKey {
                key: "generic_key".to_owned(),
                value: non_empty(&at, "", v)?,
            },
            _ => {
                let fields = fields(&["key", "value", "v2Shorthand"])?;
                let value = text(fields, "value")?
                    .ok_or_else(|| format!("{at}.value: missing (the descriptor's value)"))?;
                Action::GenericKey {
                    // `v3ratelimitaction.py`: `key` defaults to `generic_key`, as in Envoy.
                    key: text(fields, "key")?
                        .filter(|k| !k.is_empty())
                        .unwrap_or_else(|| "generic_key".to_owned()),
                    value: non_empty(&at, ".value", &value)?,
                }
            }
        },
        "request_headers" => {
            let fields = fields(&["key", "header_name", "omit_if_not_present"])?;
            let header = text(fields, "header_name")?
                .ok_or_else(|| format!("{at}.header_name: missing (the header to read)"))?;
            let key = text(fields, "key")?
                .ok_or_else(|| format!("{at}.key: missing (the descriptor's key)"))?;
            return Ok((
                Action::RequestHeader {
                    header: header_name(&at, ".header_name", &header)?,
                    key: non_empty(&at, ".key", &key)?,
                },
                omit(fields)?,
            ));
        }
        // v2: `{<key>: {header: <name>, omit_if_not_present?}}`.
        key if value.get("header").is_some() => {
            let fields = fields(&["header", "omit_if_not_present"])?;
            let header = text(fields, "header")?.unwrap_or_default();
            return Ok((
                Action::RequestHeader {
                    header: header_name(&at, ".header", &header)?,
                    key: key.to_owned(),
                },
                omit(fields)?,
            ));
        }
        other => {
            return Err(format!(
                "{at}: {} is not a label kind; use {KINDS}",
                envoy_rules::shown(other)
            ));
        }
    };
    Ok((action, false))
}

/// Envoy's descriptor keys and values must not be empty (`min_len: 1`).
fn non_empty(at: &str, field: &str, value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err(format!("{at}{field}: must not be empty"));
    }
    Ok(value.to_owned())
}

/// A header to read: set, without NUL, CR or LF (Envoy's `HTTP_HEADER_NAME`, not strict).
fn header_name(at: &str, field: &str, name: &str) -> Result<String, String> {
    envoy_rules::matcher_name(&format!("{at}{field}"), name).map_err(String::from)?;
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::*;

    fn labels(v: Value) -> RateLimitLabels {
        serde_json::from_value(v).unwrap()
    }

    /// The message refusing a Mapping with `labels: v`.
    fn refused(v: Value) -> String {
        descriptors(Some(&labels(v)), None).unwrap_err().message
    }

    fn generic(key: &str, value: &str) -> Action {
        Action::GenericKey {
            key: key.into(),
            value: value.into(),
        }
    }

    fn header(header: &str, key: &str) -> Action {
        Action::RequestHeader {
            header: header.into(),
            key: key.into(),
        }
    }

    fn routes(domain: &str, defaults: Vec<Action>, unlabelled: bool) -> RouteDefaults {
        RouteDefaults {
            domain: domain.into(),
            defaults,
            unlabelled,
        }
    }

    /// `crd_mapping.go`'s v3alpha1 shapes and `handwritten.conversion.go`'s v2 shorthands give
    /// the actions `v3ratelimitaction.py` writes for them.
    #[test]
    fn every_label_shape_becomes_its_action() {
        let l = labels(json!({"ambassador": [{"all": [
            {"source_cluster": {"key": "source_cluster"}},
            {"destination_cluster": {"key": "destination_cluster"}},
            {"remote_address": {"key": "remote_address"}},
            {"generic_key": {"value": "v"}},
            {"generic_key": {"key": "k", "value": "v"}},
            {"request_headers": {"key": "user", "header_name": "x-user"}},
            // v2
            "source_cluster",
            "destination_cluster",
            "remote_address",
            "some-string",
            {"generic_key": "gv"},
            {"tenant": {"header": "x-tenant", "omit_if_not_present": false}},
        ]}]}));
        let got = descriptors(Some(&l), Some(&routes("ambassador", vec![], true))).unwrap();
        assert_eq!(
            got,
            vec![vec![
                Action::SourceCluster,
                Action::DestinationCluster,
                Action::RemoteAddress,
                generic("generic_key", "v"),
                generic("k", "v"),
                header("x-user", "user"),
                Action::SourceCluster,
                Action::DestinationCluster,
                Action::RemoteAddress,
                generic("generic_key", "some-string"),
                generic("generic_key", "gv"),
                header("x-tenant", "tenant"),
            ]]
        );
    }

    /// `irhttpmappinggroup.py`: the domain's defaults go first in every group; a Mapping
    /// without labels gets the defaults alone, under the Module's default domain, so only when
    /// that is the service's; other domains' labels are not sent (`v3route.py`).
    #[test]
    fn defaults_go_first_and_only_the_services_domain_is_sent() {
        let l = labels(json!({
            "ambassador": [{"a": ["remote_address"]}, {"b": [{"generic_key": "x"}]}],
            "other": [{"c": ["source_cluster"]}],
        }));
        let r = routes("ambassador", vec![generic("generic_key", "default")], true);
        assert_eq!(
            descriptors(Some(&l), Some(&r)).unwrap(),
            vec![
                vec![generic("generic_key", "default"), Action::RemoteAddress],
                vec![
                    generic("generic_key", "default"),
                    generic("generic_key", "x")
                ],
            ]
        );
        assert_eq!(
            descriptors(None, Some(&r)).unwrap(),
            vec![vec![generic("generic_key", "default")]]
        );
        assert_eq!(
            descriptors(Some(&labels(json!({}))), Some(&r)).unwrap(),
            vec![vec![generic("generic_key", "default")]]
        );
        // The service's domain is not the Module's default one: no defaults for label-less
        // Mappings, and a Mapping labelled for other domains sends nothing.
        let elsewhere = routes("other", vec![], false);
        assert_eq!(
            descriptors(None, Some(&elsewhere)).unwrap(),
            Vec::<Descriptor>::new()
        );
        assert_eq!(
            descriptors(Some(&l), Some(&elsewhere)).unwrap(),
            vec![vec![Action::SourceCluster]]
        );
        // No RateLimitService: nothing, but the labels are still checked.
        assert_eq!(
            descriptors(Some(&l), None).unwrap(),
            Vec::<Descriptor>::new()
        );
        // An empty group is left out (Envoy refuses a rate limit without actions).
        let empty = labels(json!({"ambassador": [{"none": []}]}));
        let bare = routes("ambassador", vec![], true);
        assert_eq!(
            descriptors(Some(&empty), Some(&bare)).unwrap(),
            Vec::<Descriptor>::new()
        );
    }

    #[test]
    fn each_malformed_label_is_refused_naming_its_path() {
        let cases = [
            (
                json!({"d": [{"a": [], "b": []}]}),
                "labels.d[0]: a label group is a map with one key, its name (e.g. `- my_group: \
                 [remote_address]`); this one has 2: [\"a\", \"b\"]",
            ),
            (
                json!({"d": [{}]}),
                "labels.d[0]: a label group is a map with one key, its name (e.g. `- my_group: \
                 [remote_address]`); this one has 0: []",
            ),
            (
                json!({"d": [{"g": ["remote_address", {"source_cluster": {}, "remote_address": {}}]}]}),
                "labels.d[0].g[1]: a label is one of source_cluster, destination_cluster, \
                 remote_address, generic_key or request_headers (or Emissary v2's `{<key>: \
                 {header: <name>}}`), a map with one key; this one has 2: [\"remote_address\", \
                 \"source_cluster\"]",
            ),
            (
                json!({"d": [{"g": [{"header_value_match": {"x": 1}}]}]}),
                "labels.d[0].g[0].header_value_match: \"header_value_match\" is not a label \
                 kind; use source_cluster, destination_cluster, remote_address, generic_key or \
                 request_headers (or Emissary v2's `{<key>: {header: <name>}}`)",
            ),
            (
                json!({"d": [{"g": [{"generic_key": {"key": "k"}}]}]}),
                "labels.d[0].g[0].generic_key.value: missing (the descriptor's value)",
            ),
            (
                json!({"d": [{"g": [{"generic_key": {"value": ""}}]}]}),
                "labels.d[0].g[0].generic_key.value: must not be empty",
            ),
            (
                json!({"d": [{"g": [""]}]}),
                "labels.d[0].g[0]: must not be empty",
            ),
            (
                json!({"d": [{"g": [{"request_headers": {"key": "k"}}]}]}),
                "labels.d[0].g[0].request_headers.header_name: missing (the header to read)",
            ),
            (
                json!({"d": [{"g": [{"request_headers": {"header_name": "x-a"}}]}]}),
                "labels.d[0].g[0].request_headers.key: missing (the descriptor's key)",
            ),
            (
                json!({"d": [{"g": [{"request_headers": {"key": "", "header_name": "x-a"}}]}]}),
                "labels.d[0].g[0].request_headers.key: must not be empty",
            ),
            (
                json!({"d": [{"g": [{"request_headers": {"key": "k", "header_name": "x\na"}}]}]}),
                "labels.d[0].g[0].request_headers.header_name: \"x\\na\" contains a NUL, CR or LF \
                 character, which Envoy refuses here",
            ),
            (
                json!({"d": [{"g": [{"request_headers": {"key": "k", "header_name": "x", "default": "y"}}]}]}),
                "labels.d[0].g[0].request_headers: unknown field \"default\" (it takes key, \
                 header_name, omit_if_not_present)",
            ),
            (
                json!({"d": [{"g": [{"source_cluster": {"key": "mine"}}]}]}),
                "labels.d[0].g[0].source_cluster.key: must be source_cluster (Envoy names this \
                 entry itself), not \"mine\"",
            ),
            (
                json!({"d": [{"g": [{"remote_address": "yes"}]}]}),
                "labels.d[0].g[0].remote_address: must be a map, not \"yes\"",
            ),
            (
                json!({"d": [{"g": [{"tenant": {"header": "x-t", "omit_if_not_present": "yes"}}]}]}),
                "labels.d[0].g[0].tenant.omit_if_not_present: must be true or false, not \"yes\"",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(refused(input.clone()), expected, "{input}");
        }
    }

    #[test]
    fn omit_if_not_present_is_found_in_both_shapes() {
        let l = labels(json!({"d": [
            {"a": [{"request_headers": {"key": "k", "header_name": "x", "omit_if_not_present": true}}]},
        ]}));
        assert!(omits_if_not_present(all_specifiers(&l)));
        let v2 =
            labels(json!({"d": [{"a": [{"k": {"header": "x", "omit_if_not_present": true}}]}]}));
        assert!(omits_if_not_present(all_specifiers(&v2)));
        let not = labels(json!({"d": [{"a": [{"k": {"header": "x"}}, "remote_address"]}]}));
        assert!(!omits_if_not_present(all_specifiers(&not)));
    }

    fn load(yaml: &str) -> Vec<Resource> {
        let loaded = legate_crds::loader::load_str("test.yaml", yaml).unwrap();
        assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
        loaded.resources
    }

    const SERVICES: &str = "
apiVersion: getambassador.io/v3alpha1
kind: RateLimitService
metadata: {name: b-second, namespace: default}
spec: {service: rl-b:8081}
---
apiVersion: getambassador.io/v3alpha1
kind: RateLimitService
metadata: {name: a-first, namespace: default}
spec: {service: rl-a:8081, domain: \"\"}
---
apiVersion: getambassador.io/v3alpha1
kind: Module
metadata: {name: ambassador, namespace: default}
spec:
  config:
    default_label_domain: mine
    default_labels:
      mine: {defaults: [remote_address]}
      broken: {defaults: [{generic_key: {}}]}
";

    /// One RateLimitService is used (the others refused, naming it); its empty domain is
    /// refused and the Module's default label domain used; a default label that cannot be used
    /// is a Module rejection naming it.
    #[test]
    fn one_service_wins_and_the_modules_domain_and_defaults_apply() {
        let resources = load(SERVICES);
        let refs: Vec<&Resource> = resources.iter().collect();
        let module = module::gateway_module(&refs, &Settings::default());
        let s = select(&refs, module, &Settings::default());
        assert_eq!(
            s.chosen.as_ref().map(|(_, o)| o.name.as_str()),
            Some("a-first")
        );
        assert_eq!(s.domain, "mine");
        assert_eq!(
            s.routes,
            Some(routes("mine", vec![Action::RemoteAddress], true))
        );
        let messages: Vec<(String, Reason, &str)> = s
            .rejections
            .iter()
            .map(|r| (r.object.to_string(), r.reason, r.message.as_str()))
            .collect();
        assert_eq!(
            messages,
            vec![
                (
                    "Module default/ambassador".to_owned(),
                    Reason::Invalid,
                    "spec.config.default_labels.broken.defaults[0].generic_key.value: missing \
                     (the descriptor's value); those default labels are left out"
                ),
                (
                    "RateLimitService default/b-second".to_owned(),
                    Reason::Conflict,
                    "RateLimitService default/a-first is the gateway's RateLimitService, and one \
                     gateway uses one (the one in the gateway's namespace wins, then the oldest, \
                     then by namespace and name): this one is not used"
                ),
            ]
        );
        assert_eq!(s.problems, ["domain: must not be empty (Envoy refuses it)"]);
    }

    /// What Envoy would refuse or cannot speak (an empty domain, v2, which only a source
    /// without the CRD's rules lets through) refuses the RateLimitService naming each field;
    /// its filter stays on every listener, calling a cluster that never has an endpoint.
    #[test]
    fn an_unusable_service_is_refused_and_its_filter_calls_a_cluster_without_endpoints() {
        let mut resources = load(
            "apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {name: http, namespace: default}
spec: {port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}
---
apiVersion: getambassador.io/v3alpha1
kind: RateLimitService
metadata: {name: rl, namespace: default}
spec: {service: rl:8081, domain: \"\"}
",
        );
        for r in &mut resources {
            if let Resource::RateLimitService(rl) = r {
                rl.spec.protocol_version = Some(ProtocolVersion::V2);
            }
        }
        let ir = super::super::build(&resources, &Settings::default());
        let refused: Vec<(String, Reason, &str)> = ir
            .rejections
            .iter()
            .map(|r| (r.object.to_string(), r.reason, r.message.as_str()))
            .collect();
        assert_eq!(
            refused,
            [(
                "RateLimitService default/rl".to_owned(),
                Reason::Invalid,
                "domain: must not be empty (Envoy refuses it); protocol_version: v2 is not \
                 supported; use v3 (Envoy speaks only v3); rate-limit checks fail until it is \
                 fixed (failure_mode_deny false: requests are let through, not rate limited)"
            )]
        );
        let filter = ir.listeners[0].rate_limit.as_deref().expect("the filter");
        assert_eq!(filter.domain, DEFAULT_DOMAIN);
        assert_eq!(filter.timeout, DEFAULT_TIMEOUT);
        let cluster = &ir.clusters[&filter.cluster];
        assert_eq!(cluster.host, "ratelimit-unusable.rl.default");
        assert_eq!(cluster.service.as_ref().map(|s| &s.port_name), Some(&None));
        assert_eq!(ir.endpoints[&filter.cluster].addresses, []);
    }
}
