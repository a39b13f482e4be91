//! Kubernetes Services and their endpoints: which Service a Mapping's `service` resolves to in
//! a snapshot, and the ready endpoints of every EDS cluster.
//!
//! Endpoints are kept out of [`Cluster`]s and out of compiled Mappings: a Mapping is compiled
//! again only when the Service it names appears, changes or goes away, never when its endpoints
//! do, so a scale event changes [`super::Ir::endpoints`] and nothing else.
//!
//! Which endpoints: a Service's EndpointSlices (labelled `kubernetes.io/service-name`) when it
//! has any, else its Endpoints (same name; servers before Kubernetes 1.21 have no
//! EndpointSlices). Only ready ones: an EndpointSlice endpoint whose `conditions.ready` is not
//! false, the `addresses` (not `notReadyAddresses`) of an Endpoints subset; each on the port
//! named as the Service port the Mapping targets.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use k8s_openapi::api::{core::v1::Endpoints, discovery::v1::EndpointSlice};
use legate_crds::{Mapping, Resource, service::SERVICE_NAME_LABEL};

use super::{
    Cluster, Reason, Refusal, Rejection, ServiceNamespaces, Settings,
    defaults::MappingDefaults,
    group::{HostSelectors, Keyed},
    mapping,
    resolver::{Resolve, Resolvers},
    service::{Resolution, ServiceKey, ServiceRef},
};

/// The ready endpoints of one EDS cluster, sorted: what its ClusterLoadAssignment carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterEndpoints {
    pub addresses: Vec<SocketAddr>,
}

/// The Services, EndpointSlices and Endpoints of one snapshot, by namespace and Service name.
#[derive(Default)]
pub(super) struct ServiceIndex<'a> {
    services: HashMap<&'a str, HashMap<&'a str, &'a Arc<Resource>>>,
    slices: HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
    endpoints: HashMap<(&'a str, &'a str), &'a Endpoints>,
}

impl<'a> ServiceIndex<'a> {
    /// Indexes `resources`; one without a namespace is in the gateway's (`default_namespace`).
    pub fn new(resources: &[&'a Arc<Resource>], default_namespace: &'a str) -> Self {
        let mut index = Self::default();
        for r in resources {
            let meta = r.meta();
            let namespace = meta.namespace.as_deref().unwrap_or(default_namespace);
            let name = meta.name.as_deref().unwrap_or_default();
            match &***r {
                Resource::Service(_) => {
                    index
                        .services
                        .entry(namespace)
                        .or_default()
                        .insert(name, *r);
                }
                Resource::EndpointSlice(slice) => {
                    let service = meta.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL));
                    if let Some(service) = service {
                        index
                            .slices
                            .entry((namespace, service.as_str()))
                            .or_default()
                            .push(slice);
                    }
                }
                Resource::Endpoints(endpoints) => {
                    index.endpoints.insert((namespace, name), endpoints);
                }
                _ => {}
            }
        }
        index
    }

    pub(super) fn service(&self, key: &ServiceKey) -> Option<&'a Arc<Resource>> {
        self.services
            .get(key.namespace.as_str())?
            .get(key.name.as_str())
            .copied()
    }

    /// What `key` (the Service a Mapping in `mapping_namespace` names) resolves to.
    ///
    /// A missing Service is meant as one (and served empty, with a note) only where the source
    /// has authority over Services. With authority over every namespace, `name.namespace` is
    /// also how public DNS names are written (`httpbin.org`): it names a Service only when its
    /// namespace is the Mapping's own or has Services at all; otherwise it stays a DNS name.
    pub(super) fn resolve(
        &self,
        key: &ServiceKey,
        mapping_namespace: &str,
        settings: &Settings,
    ) -> Resolved {
        if let Some(found) = self.service(key) {
            return Resolved::Found(found.clone());
        }
        let covered = match &settings.service_namespaces {
            None => false,
            Some(ServiceNamespaces::Only(namespaces)) => namespaces.contains(&key.namespace),
            Some(ServiceNamespaces::All) => {
                !key.ambiguous
                    || key.namespace == mapping_namespace
                    || self.services.contains_key(key.namespace.as_str())
            }
        };
        if covered {
            Resolved::Missing
        } else {
            Resolved::Dns
        }
    }

    /// What `key` resolves to for a resource in `namespace` whose resolver is `resolve`: an
    /// endpoint resolver names a Service whether or not the source has authority over it.
    pub(super) fn lookup(
        &self,
        key: &Option<ServiceKey>,
        resolve: Resolve,
        namespace: &str,
        settings: &Settings,
    ) -> Resolved {
        let Some(key) = key else {
            return Resolved::Dns;
        };
        match resolve {
            Resolve::Endpoints => match self.service(key) {
                Some(found) => Resolved::Found(found.clone()),
                None => Resolved::Missing,
            },
            _ => self.resolve(key, namespace, settings),
        }
    }

    /// The ready endpoints of `service`'s port, sorted and without duplicates.
    fn endpoints_of(&self, service: &ServiceRef) -> ClusterEndpoints {
        let Some(port_name) = service.port_name.as_deref() else {
            return ClusterEndpoints::default();
        };
        let key = (service.namespace.as_str(), service.name.as_str());
        let mut addresses = Vec::new();
        match self.slices.get(&key) {
            Some(slices) if !slices.is_empty() => {
                for slice in slices {
                    let port = slice
                        .ports
                        .iter()
                        .flatten()
                        .find(|p| p.name.as_deref().unwrap_or_default() == port_name)
                        .and_then(|p| p.port)
                        .and_then(|p| u16::try_from(p).ok());
                    let Some(port) = port else { continue };
                    let ready = slice
                        .endpoints
                        .iter()
                        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false));
                    // The addresses of one endpoint are fungible; kube-proxy uses the first.
                    addresses.extend(
                        ready
                            .filter_map(|e| e.addresses.first()?.parse::<IpAddr>().ok())
                            .map(|ip| SocketAddr::new(ip, port)),
                    );
                }
            }
            _ => {
                let subsets = self.endpoints.get(&key).and_then(|e| e.subsets.as_ref());
                for subset in subsets.into_iter().flatten() {
                    let port = subset
                        .ports
                        .iter()
                        .flatten()
                        .find(|p| p.name.as_deref().unwrap_or_default() == port_name)
                        .and_then(|p| u16::try_from(p.port).ok());
                    let Some(port) = port else { continue };
                    addresses.extend(
                        subset
                            .addresses
                            .iter()
                            .flatten()
                            .filter_map(|a| a.ip.parse::<IpAddr>().ok())
                            .map(|ip| SocketAddr::new(ip, port)),
                    );
                }
            }
        }
        addresses.sort_unstable();
        addresses.dedup();
        ClusterEndpoints { addresses }
    }
}

/// What a Mapping was compiled with: the Service it names as it was then. Equal while the
/// Mapping's compilation stays valid; a Service is compared by identity, as the source shares
/// an unchanged one between snapshots.
#[derive(Clone, Debug)]
pub(super) enum Resolved {
    Dns,
    Found(Arc<Resource>),
    Missing,
}

impl Resolved {
    /// What `key` (the Service the resolved text reads as, if any) resolves to, as
    /// [`super::service::cluster`] takes it.
    pub(super) fn resolution<'k>(&'k self, key: &'k Option<ServiceKey>) -> Resolution<'k> {
        match (key, self) {
            (Some(key), Self::Found(r)) => match &**r {
                Resource::Service(s) => Resolution::Found(key, s),
                _ => Resolution::Dns,
            },
            (Some(key), Self::Missing) => Resolution::Missing(key),
            _ => Resolution::Dns,
        }
    }
}

impl PartialEq for Resolved {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Dns, Self::Dns) | (Self::Missing, Self::Missing) => true,
            (Self::Found(a), Self::Found(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// A compiled Mapping and what it depends on besides itself, kept from one build to the next.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    /// How its `service` is resolved, or why it cannot be (then it is refused).
    resolve: Result<Resolve, Refusal>,
    /// The Service its `service` would name, found once per Mapping.
    key: Option<ServiceKey>,
    resolved: Resolved,
    pub compiled: Arc<super::Compiled>,
    /// Why it serves without endpoints, if it does.
    pub note: Option<Refusal>,
}

impl Entry {
    pub fn compile(
        mapping: &Mapping,
        settings: &Settings,
        selectors: &HostSelectors,
        resolvers: &Resolvers,
        defaults: &MappingDefaults,
        index: &ServiceIndex<'_>,
    ) -> Self {
        let namespace = mapping
            .metadata
            .namespace
            .as_deref()
            .unwrap_or(&settings.namespace);
        // A redirect sends nothing upstream: it has no service to resolve.
        let resolve = match mapping::forwards(mapping) {
            true => resolvers.choose(mapping, namespace),
            false => Ok(Resolve::Auto),
        };
        let key = match resolve {
            Ok(Resolve::Auto) => mapping::service_key(mapping, settings, defaults, false),
            // Emissary's endpoint resolver reads a URL's host as a Service too.
            Ok(Resolve::Endpoints) => mapping::service_key(mapping, settings, defaults, true),
            Ok(Resolve::Dns) | Err(_) => None,
        };
        let resolved = Self::resolve(&key, &resolve, mapping, settings, index);
        let (compiled, note) = match &resolve {
            Ok(_) => Self::compiled(mapping, settings, selectors, defaults, &key, &resolved),
            Err(refusal) => (Arc::new(Err(refusal.clone())), None),
        };
        Self {
            resolve,
            key,
            resolved,
            compiled,
            note,
        }
    }

    /// Compiles the Mapping again if the Service it names is not what it was compiled with;
    /// returns the compilation it replaced.
    pub fn refresh(
        &mut self,
        mapping: &Mapping,
        settings: &Settings,
        selectors: &HostSelectors,
        defaults: &MappingDefaults,
        index: &ServiceIndex<'_>,
    ) -> Option<Arc<super::Compiled>> {
        // A Mapping that names no Service depends on none.
        self.key.as_ref()?;
        let resolved = Self::resolve(&self.key, &self.resolve, mapping, settings, index);
        if resolved == self.resolved {
            return None;
        }
        let (compiled, note) =
            Self::compiled(mapping, settings, selectors, defaults, &self.key, &resolved);
        self.resolved = resolved;
        self.note = note;
        Some(std::mem::replace(&mut self.compiled, compiled))
    }

    fn resolve(
        key: &Option<ServiceKey>,
        resolve: &Result<Resolve, Refusal>,
        mapping: &Mapping,
        settings: &Settings,
        index: &ServiceIndex<'_>,
    ) -> Resolved {
        let namespace = mapping
            .metadata
            .namespace
            .as_deref()
            .unwrap_or(&settings.namespace);
        let resolve = resolve.as_ref().map_or(Resolve::Auto, |r| *r);
        index.lookup(key, resolve, namespace, settings)
    }

    fn compiled(
        mapping: &Mapping,
        settings: &Settings,
        selectors: &HostSelectors,
        defaults: &MappingDefaults,
        key: &Option<ServiceKey>,
        resolved: &Resolved,
    ) -> (Arc<super::Compiled>, Option<Refusal>) {
        match mapping::route(mapping, settings, resolved.resolution(key), defaults) {
            Ok((route, cluster, note)) => (
                Arc::new(Ok(Arc::new(Keyed::new(route, cluster, selectors)))),
                note,
            ),
            Err(refusal) => (Arc::new(Err(refusal)), None),
        }
    }
}

/// The endpoints of every EDS cluster, each shared with the last build while unchanged (so
/// the encoder reuses its encoding), kept from one build to the next.
#[derive(Debug, Default)]
pub(super) struct EndpointsKeeper {
    last: HashMap<String, Arc<ClusterEndpoints>>,
}

impl EndpointsKeeper {
    /// The endpoints of the EDS clusters among `clusters`. Mappings in `compiled` whose cluster
    /// has no ready endpoint (and whose Service exists) get a [`Reason::NoReadyEndpoints`] note.
    pub fn resolve(
        &mut self,
        clusters: &BTreeMap<String, Arc<Cluster>>,
        index: &ServiceIndex<'_>,
        compiled: &[(&Arc<Resource>, Arc<super::Compiled>, Option<Refusal>)],
        unreachable: &mut Vec<Rejection>,
    ) -> BTreeMap<String, Arc<ClusterEndpoints>> {
        let mut out = BTreeMap::new();
        let mut empty: HashMap<&str, (&ServiceRef, u16)> = HashMap::new();
        for (name, cluster) in clusters {
            let Some(service) = &cluster.service else {
                continue;
            };
            let now = index.endpoints_of(service);
            if now.addresses.is_empty() && service.port_name.is_some() {
                empty.insert(name, (service, cluster.port));
            }
            let shared = match self.last.get(name) {
                Some(last) if **last == now => last.clone(),
                _ => Arc::new(now),
            };
            out.insert(name.clone(), shared);
        }
        self.last = out.iter().map(|(n, e)| (n.clone(), e.clone())).collect();
        if !empty.is_empty() {
            let mut noted = HashSet::new();
            for (resource, c, _) in compiled {
                let Ok(keyed) = &**c else { continue };
                let Some(cluster) = &keyed.cluster else {
                    continue;
                };
                if let Some((service, port)) = empty.get(cluster.name.as_str())
                    && noted.insert(Arc::as_ptr(resource))
                {
                    unreachable.push(Rejection::new(
                        resource.object_ref(),
                        Reason::NoReadyEndpoints,
                        format!(
                            "Service {}/{} has no ready endpoint for port {port}; the route answers 503 until it has",
                            service.namespace, service.name,
                        ),
                    ));
                }
            }
        }
        out
    }
}
