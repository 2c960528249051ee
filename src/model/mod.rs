//! The cluster state: the Kubernetes objects DNS needs, cut down and indexed.
//!
//! [`ClusterState`] is owned by one writer (the app's reconciler); the record builder reads it to
//! make a snapshot. It never answers queries itself. Endpoints are resolved here, once, exactly
//! as the EndpointSlice controller would: readiness, `publishNotReadyAddresses`, the
//! hostname/subdomain rule and named target ports are all settled before records are built.

pub mod convert;
pub mod diagnose;
mod types;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

pub use types::*;

/// One endpoint as DNS sees it: readiness already decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedEndpoint {
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
    /// Published: ready, or the Service publishes not-ready addresses.
    pub ready: bool,
    /// Its hostname, when it has one (else DNS uses the dashed address).
    pub hostname: Option<Hostname>,
}

/// Endpoints that share one set of ports (an EndpointSlice, or one Pod when derived).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointGroup {
    /// The ports every endpoint of the group listens on.
    pub ports: Vec<EndpointPort>,
    /// The endpoints.
    pub endpoints: Vec<ResolvedEndpoint>,
}

/// The objects of the feed, indexed for the record builder and `check`.
#[derive(Debug, Default, Clone)]
pub struct ClusterState {
    services: BTreeMap<ServiceKey, Service>,
    slices: BTreeMap<ObjectKey, EndpointSlice>,
    pods: BTreeMap<ObjectKey, Pod>,
    statefulsets: BTreeMap<ObjectKey, StatefulSet>,
    origins: HashMap<(&'static str, ObjectKey), Origin>,
    /// EndpointSlices by the Service they name, so a Service finds its slices in one lookup.
    slices_by_service: HashMap<ServiceKey, BTreeSet<ObjectKey>>,
    /// Pods by (namespace, label, value), so selectors do not scan every Pod.
    pods_by_label: HashMap<(Namespace, String, String), BTreeSet<ObjectKey>>,
    /// How many objects live in each namespace: a namespace exists while any object does.
    namespaces: BTreeMap<Namespace, usize>,
}

fn kind_of(object: &Object) -> &'static str {
    match object {
        Object::Service(_) => "Service",
        Object::EndpointSlice(_) => "EndpointSlice",
        Object::Pod(_) => "Pod",
        Object::StatefulSet(_) => "StatefulSet",
    }
}

fn service_object_key(key: &ServiceKey) -> ObjectKey {
    ObjectKey {
        namespace: key.namespace.clone(),
        name: key.name.as_str().into(),
    }
}

impl ClusterState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces an object; returns where the replaced one came from, if any.
    pub fn insert(&mut self, object: Object, origin: Origin) -> Option<Origin> {
        let kind = kind_of(&object);
        let key = match &object {
            Object::Service(s) => service_object_key(&s.key),
            Object::EndpointSlice(s) => s.key.clone(),
            Object::Pod(p) => p.key.clone(),
            Object::StatefulSet(s) => s.key.clone(),
        };
        let previous = self.remove(kind, &key);
        *self.namespaces.entry(key.namespace.clone()).or_default() += 1;
        match object {
            Object::Service(s) => {
                self.services.insert(s.key.clone(), s);
            }
            Object::EndpointSlice(s) => {
                if let Some(service) = &s.service {
                    let skey = ServiceKey {
                        namespace: s.key.namespace.clone(),
                        name: service.clone(),
                    };
                    self.slices_by_service
                        .entry(skey)
                        .or_default()
                        .insert(s.key.clone());
                }
                self.slices.insert(s.key.clone(), s);
            }
            Object::Pod(p) => {
                for (k, v) in &p.labels {
                    self.pods_by_label
                        .entry((p.key.namespace.clone(), k.clone(), v.clone()))
                        .or_default()
                        .insert(p.key.clone());
                }
                self.pods.insert(p.key.clone(), p);
            }
            Object::StatefulSet(s) => {
                self.statefulsets.insert(s.key.clone(), s);
            }
        }
        let replaced = self.origins.insert((kind, key), origin);
        previous.and(replaced)
    }

    /// Removes an object by kind (`"Pod"`, …) and key; returns whether it existed.
    pub fn remove(&mut self, kind: &'static str, key: &ObjectKey) -> Option<()> {
        let existed = match kind {
            "Service" => {
                let skey = ServiceKey {
                    namespace: key.namespace.clone(),
                    name: ServiceName::new(&key.name).ok()?,
                };
                self.services.remove(&skey).is_some()
            }
            "EndpointSlice" => match self.slices.remove(key) {
                Some(s) => {
                    if let Some(service) = s.service {
                        let skey = ServiceKey {
                            namespace: key.namespace.clone(),
                            name: service,
                        };
                        if let Some(set) = self.slices_by_service.get_mut(&skey) {
                            set.remove(key);
                            if set.is_empty() {
                                self.slices_by_service.remove(&skey);
                            }
                        }
                    }
                    true
                }
                None => false,
            },
            "Pod" => match self.pods.remove(key) {
                Some(p) => {
                    for (k, v) in p.labels {
                        let index = (key.namespace.clone(), k, v);
                        if let Some(set) = self.pods_by_label.get_mut(&index) {
                            set.remove(key);
                            if set.is_empty() {
                                self.pods_by_label.remove(&index);
                            }
                        }
                    }
                    true
                }
                None => false,
            },
            _ => self.statefulsets.remove(key).is_some(),
        };
        if !existed {
            return None;
        }
        self.origins.remove(&(kind, key.clone()));
        if let Some(count) = self.namespaces.get_mut(&key.namespace) {
            *count -= 1;
            if *count == 0 {
                self.namespaces.remove(&key.namespace);
            }
        }
        Some(())
    }

    /// Every Service, in key order.
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.values()
    }

    /// A Service by namespace and name.
    pub fn service(&self, namespace: &Namespace, name: &str) -> Option<&Service> {
        let name = ServiceName::new(name).ok()?;
        self.services.get(&ServiceKey {
            namespace: namespace.clone(),
            name,
        })
    }

    /// Every EndpointSlice.
    pub fn endpoint_slices(&self) -> impl Iterator<Item = &EndpointSlice> {
        self.slices.values()
    }

    /// Every Pod.
    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.pods.values()
    }

    /// Every StatefulSet.
    pub fn statefulsets(&self) -> impl Iterator<Item = &StatefulSet> {
        self.statefulsets.values()
    }

    /// Namespaces in which any object lives.
    pub fn namespaces(&self) -> impl Iterator<Item = &Namespace> {
        self.namespaces.keys()
    }

    /// How many objects the state holds.
    pub fn len(&self) -> usize {
        self.services.len() + self.slices.len() + self.pods.len() + self.statefulsets.len()
    }

    /// Whether the state holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where an object was read from.
    pub fn origin(&self, kind: &'static str, key: &ObjectKey) -> Option<&Origin> {
        self.origins.get(&(kind, key.clone()))
    }

    /// Pods in `namespace` that `matches` selects, using the label index to avoid a scan.
    pub fn pods_matching<'a>(
        &'a self,
        namespace: &Namespace,
        first_label: Option<(&String, &String)>,
        matches: impl Fn(&Pod) -> bool + 'a,
    ) -> Vec<&'a Pod> {
        let candidates: Box<dyn Iterator<Item = &Pod>> = match first_label {
            Some((k, v)) => match self
                .pods_by_label
                .get(&(namespace.clone(), k.clone(), v.clone()))
            {
                Some(keys) => Box::new(keys.iter().filter_map(|key| self.pods.get(key))),
                None => Box::new(std::iter::empty()),
            },
            None => Box::new(
                self.pods
                    .values()
                    .filter(move |p| &p.key.namespace == namespace),
            ),
        };
        candidates.filter(|p| matches(p)).collect()
    }

    /// Whether any EndpointSlice names this Service.
    pub fn has_slices(&self, key: &ServiceKey) -> bool {
        self.slices_by_service.contains_key(key)
    }

    /// The Service's endpoints: from its EndpointSlices when it has any (as in a live cluster),
    /// else derived from the Pods its selector matches, as the EndpointSlice controller would.
    pub fn endpoints(&self, service: &Service) -> Vec<EndpointGroup> {
        if let Some(slice_keys) = self.slices_by_service.get(&service.key) {
            return slice_keys
                .iter()
                .filter_map(|k| self.slices.get(k))
                .map(|slice| EndpointGroup {
                    ports: slice.ports.clone(),
                    endpoints: slice
                        .endpoints
                        .iter()
                        .map(|ep| ResolvedEndpoint {
                            addresses: ep.addresses.clone(),
                            ready: ep.ready || service.publish_not_ready_addresses,
                            hostname: ep.hostname.clone(),
                        })
                        .collect(),
                })
                .collect();
        }
        let Some(selector) = &service.selector else {
            return Vec::new();
        };
        let pods = self.pods_matching(&service.key.namespace, selector.iter().next(), |pod| {
            selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v))
        });
        pods.into_iter()
            .filter(|pod| !pod.ips.is_empty())
            .map(|pod| EndpointGroup {
                ports: derived_ports(service, pod),
                endpoints: vec![ResolvedEndpoint {
                    addresses: pod.ips.clone(),
                    ready: service.publish_not_ready_addresses || (pod.ready && !pod.terminating),
                    hostname: pod
                        .hostname
                        .clone()
                        .filter(|_| pod.subdomain.as_deref() == Some(service.key.name.as_str())),
                }],
            })
            .collect()
    }
}

/// The Service's ports as they land on `pod`: named target ports resolve to the container port
/// of that name and protocol; a name the Pod does not have leaves that port out.
fn derived_ports(service: &Service, pod: &Pod) -> Vec<EndpointPort> {
    service
        .ports
        .iter()
        .filter_map(|sp| {
            let port = match &sp.target_port {
                TargetPort::Number(n) => *n,
                TargetPort::Named(name) => {
                    pod.container_ports
                        .iter()
                        .find(|cp| cp.name.as_deref() == Some(name) && cp.protocol == sp.protocol)?
                        .port
                }
            };
            Some(EndpointPort {
                name: sp.name.clone(),
                protocol: sp.protocol,
                port,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn origin() -> Origin {
        Origin {
            source: Arc::from("test"),
            line: None,
        }
    }

    fn ns(name: &str) -> Namespace {
        Namespace::new(name).expect("valid")
    }

    fn service(publish_not_ready: bool) -> Service {
        Service {
            key: ServiceKey {
                namespace: ns("default"),
                name: ServiceName::new("web").expect("valid"),
            },
            kind: ServiceKind::Headless,
            ports: vec![ServicePort {
                name: Some("http".into()),
                protocol: Protocol::Tcp,
                port: 8080,
                target_port: TargetPort::Named("http".into()),
            }],
            selector: Some([("app".to_owned(), "web".to_owned())].into()),
            publish_not_ready_addresses: publish_not_ready,
        }
    }

    fn pod(name: &str, ip: &str, ready: bool, subdomain: &str) -> Pod {
        Pod {
            key: ObjectKey {
                namespace: ns("default"),
                name: Arc::from(name),
            },
            labels: [("app".to_owned(), "web".to_owned())].into(),
            hostname: Some(Hostname::new(name).expect("valid")),
            subdomain: Some(subdomain.to_owned()),
            ips: vec![ip.parse().expect("ip")],
            ready,
            terminating: false,
            container_ports: vec![ContainerPort {
                name: Some("http".into()),
                protocol: Protocol::Tcp,
                port: 80,
            }],
        }
    }

    #[test]
    fn derived_endpoints_follow_the_endpointslice_controller() {
        let mut state = ClusterState::new();
        state.insert(Object::Service(service(false)), origin());
        state.insert(Object::Pod(pod("web-0", "10.0.0.1", true, "web")), origin());
        state.insert(
            Object::Pod(pod("web-1", "10.0.0.2", false, "web")),
            origin(),
        );
        state.insert(
            Object::Pod(pod("other-0", "10.0.0.3", true, "other")),
            origin(),
        );
        let svc = state.services().next().expect("one service").clone();
        let groups = state.endpoints(&svc);
        assert_eq!(groups.len(), 3);
        let by_ip = |ip: &str| {
            groups
                .iter()
                .find(|g| g.endpoints[0].addresses[0].to_string() == ip)
                .expect("present")
        };
        assert!(by_ip("10.0.0.1").endpoints[0].ready);
        assert!(!by_ip("10.0.0.2").endpoints[0].ready);
        // The hostname is used only when the subdomain names this Service.
        assert_eq!(by_ip("10.0.0.3").endpoints[0].hostname, None);
        assert_eq!(
            by_ip("10.0.0.1").ports[0].port,
            80,
            "named targetPort resolved"
        );

        state.insert(Object::Service(service(true)), origin());
        let svc = state.services().next().expect("one service").clone();
        assert!(state.endpoints(&svc).iter().all(|g| g.endpoints[0].ready));
    }

    #[test]
    fn namespaces_exist_while_objects_do() {
        let mut state = ClusterState::new();
        state.insert(Object::Pod(pod("web-0", "10.0.0.1", true, "web")), origin());
        assert_eq!(state.namespaces().count(), 1);
        let replaced = state.insert(Object::Pod(pod("web-0", "10.0.0.9", true, "web")), origin());
        assert!(
            replaced.is_some(),
            "a second object with the same key replaces the first"
        );
        assert_eq!(state.len(), 1);
        state.remove(
            "Pod",
            &ObjectKey {
                namespace: ns("default"),
                name: Arc::from("web-0"),
            },
        );
        assert_eq!(state.namespaces().count(), 0);
    }
}
