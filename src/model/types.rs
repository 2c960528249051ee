//! The slim model types: what DNS needs of each Kubernetes object, and nothing else.
//!
//! Identifiers are validated when they are made, so the record builder never has to wonder
//! whether a name is a valid DNS label. Do not add fields without a record that needs them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// Why a string is not a valid DNS label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid DNS-1123 label: {reason}")]
pub struct InvalidLabel {
    /// The rejected value.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Checks the DNS-1123 label rules Kubernetes applies to names, namespaces and hostnames (and,
/// a subset of them, to port names).
pub(crate) fn validate_label(value: &str) -> Result<(), InvalidLabel> {
    let fail = |reason| {
        Err(InvalidLabel {
            value: value.to_owned(),
            reason,
        })
    };
    if value.is_empty() {
        return fail("it is empty");
    }
    if value.len() > 63 {
        return fail("it is longer than 63 characters");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return fail("only lowercase letters, digits and '-' are allowed");
    }
    if value.starts_with('-') || value.ends_with('-') {
        return fail("it must start and end with a letter or digit");
    }
    Ok(())
}

macro_rules! label_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates `value` as a DNS-1123 label.
            pub fn new(value: &str) -> Result<Self, InvalidLabel> {
                validate_label(value)?;
                Ok(Self(Arc::from(value)))
            }

            /// The label as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Shares the text with an equal string `strings` has seen.
            pub fn share(&mut self, strings: &mut Interner) {
                strings.share(&mut self.0);
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

label_type!(
    /// A Kubernetes namespace (a DNS-1123 label).
    Namespace
);
label_type!(
    /// A Service name (a DNS label).
    ServiceName
);
label_type!(
    /// An endpoint's hostname: the first label of its per-host DNS name.
    Hostname
);

/// Equal strings seen while loading objects, so the objects of one load share them: a label
/// key such as `app` is then stored once rather than once per Pod (a fifth of a Pod's memory).
/// The same for Pods' container port lists, which every Pod of a workload has alike.
#[derive(Debug, Default)]
pub struct Interner {
    strings: foldhash::HashSet<Arc<str>>,
    port_lists: foldhash::HashSet<Arc<[ContainerPort]>>,
}

impl Interner {
    /// Replaces `text` with the equal string seen first, or remembers it.
    pub fn share(&mut self, text: &mut Arc<str>) {
        match self.strings.get(&**text) {
            Some(seen) => *text = seen.clone(),
            None => {
                self.strings.insert(text.clone());
            }
        }
    }

    /// Replaces `ports` with the equal list seen first, or shares its names and remembers it.
    pub fn share_ports(&mut self, ports: &mut Arc<[ContainerPort]>) {
        if let Some(seen) = self.port_lists.get(&**ports) {
            *ports = seen.clone();
            return;
        }
        if let Some(own) = Arc::get_mut(ports) {
            for port in own {
                if let Some(name) = &mut port.name {
                    self.share(name);
                }
            }
        }
        self.port_lists.insert(ports.clone());
    }
}

/// Identifies a Service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// The Service's namespace.
    pub namespace: Namespace,
    /// The Service's name.
    pub name: ServiceName,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Identifies any namespaced object other than a Service (Pod, EndpointSlice, StatefulSet),
/// whose names need not be DNS labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// The object's namespace.
    pub namespace: Namespace,
    /// The object's name, as Kubernetes allows it (may contain dots).
    pub name: Arc<str>,
}

impl ObjectKey {
    /// Shares the key's strings with equal ones `strings` has seen.
    pub fn share(&mut self, strings: &mut Interner) {
        self.namespace.share(strings);
        strings.share(&mut self.name);
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP, the default.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// The lowercase label used in `_port._proto` names.
    pub fn label(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

/// What kind of Service this is, which decides the names it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceKind {
    /// `clusterIP: None`: names resolve to the endpoints themselves.
    Headless,
    /// A virtual IP per address family.
    ClusterIp(Vec<IpAddr>),
    /// `type: ExternalName`: a CNAME to this DNS name (no trailing dot).
    ExternalName(String),
}

/// The target port of a Service port: a number, or the name of a container port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPort {
    /// A port number.
    Number(u16),
    /// A container port's name, resolved per Pod.
    Named(String),
}

/// One port of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The port's name, lowercase; `None` when unnamed.
    pub name: Option<String>,
    /// Its protocol.
    pub protocol: Protocol,
    /// The Service's port.
    pub port: u16,
    /// Where traffic goes on the endpoints.
    pub target_port: TargetPort,
}

/// What DNS needs of a v1 Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Its namespace and name.
    pub key: ServiceKey,
    /// Headless, ClusterIP or ExternalName.
    pub kind: ServiceKind,
    /// Its ports.
    pub ports: Vec<ServicePort>,
    /// The Pod selector; `None` when the Service has none (endpoints managed by hand).
    pub selector: Option<Labels>,
    /// `publishNotReadyAddresses`: not-ready endpoints are published too.
    pub publish_not_ready_addresses: bool,
}

/// A port of an EndpointSlice (or of an endpoint derived from a Pod).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointPort {
    /// The port's name, lowercase; `None` when unnamed.
    pub name: Option<String>,
    /// Its protocol.
    pub protocol: Protocol,
    /// The port number on the endpoint.
    pub port: u16,
}

/// One endpoint: the addresses of one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Its addresses (usually one).
    pub addresses: Vec<IpAddr>,
    /// `conditions.ready`; an absent condition counts as ready.
    pub ready: bool,
    /// Its hostname, if it has a valid one.
    pub hostname: Option<Hostname>,
    /// The Pod behind it, if the slice says so (`targetRef` of kind Pod).
    pub pod_name: Option<Arc<str>>,
}

/// What DNS needs of a discovery.k8s.io/v1 EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSlice {
    /// Its namespace and name.
    pub key: ObjectKey,
    /// The Service it belongs to (label `kubernetes.io/service-name`).
    pub service: Option<ServiceName>,
    /// Its ports.
    pub ports: Vec<EndpointPort>,
    /// Its endpoints.
    pub endpoints: Vec<Endpoint>,
}

/// A named container port of a Pod, for resolving named target ports.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerPort {
    /// The port's name (shared: every Pod of a workload names its ports alike).
    pub name: Option<Arc<str>>,
    /// Its protocol.
    pub protocol: Protocol,
    /// The container port number.
    pub port: u16,
}

/// What DNS needs of a v1 Pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    /// Its namespace and name.
    pub key: ObjectKey,
    /// Its labels, for Service and StatefulSet selectors.
    pub labels: Labels,
    /// `spec.hostname`, if set and valid.
    pub hostname: Option<Hostname>,
    /// `spec.subdomain`, if set (shared: the Pods of a StatefulSet have the same).
    pub subdomain: Option<Arc<str>>,
    /// `status.podIPs` (or `status.podIP`). Inline: almost every Pod has one address, and a
    /// separate allocation for it cost more than the address.
    pub ips: smallvec::SmallVec<[IpAddr; 1]>,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// `metadata.deletionTimestamp` is set.
    pub terminating: bool,
    /// The ports of its containers: one list for the Pods of a workload that share it (see
    /// [`Interner::share_ports`]). A list inline in the Pod took the Pod and its `Arc` past
    /// mimalloc's 160-byte class (3 MiB at 100k Pods).
    pub container_ports: Arc<[ContainerPort]>,
}

/// A Pod's labels, sorted by key. Each string is an `Arc` that the state's label index shares,
/// so a label costs its text once (a `BTreeMap<String, String>` of three labels was ~800 bytes,
/// and the index held a second copy of every string).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Labels(Box<[(Arc<str>, Arc<str>)]>);

impl Labels {
    /// The value of label `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        let at = self.0.binary_search_by(|(k, _)| (**k).cmp(key)).ok()?;
        Some(&self.0[at].1)
    }

    /// Every label, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &Arc<str>)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// Whether there is no label.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether these labels, as a Service's selector, select an object labelled `labels`:
    /// each of them is among `labels`.
    pub fn selects(&self, labels: &Labels) -> bool {
        self.iter().all(|(k, v)| labels.get(k) == Some(&**v))
    }

    /// Shares the keys' and values' strings with equal ones `strings` has seen.
    pub fn share(&mut self, strings: &mut Interner) {
        for (key, value) in &mut self.0 {
            strings.share(key);
            strings.share(value);
        }
    }
}

impl FromIterator<(String, String)> for Labels {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(labels: I) -> Self {
        // Collected through a map: sorted, and the last value of a repeated key wins.
        let sorted: BTreeMap<String, String> = labels.into_iter().collect();
        Self(
            sorted
                .into_iter()
                .map(|(k, v)| (Arc::from(k), Arc::from(v)))
                .collect(),
        )
    }
}

impl From<BTreeMap<String, String>> for Labels {
    /// A map's keys are sorted and distinct already (what `k8s-openapi` gives): taken in order.
    fn from(labels: BTreeMap<String, String>) -> Self {
        Self(
            labels
                .into_iter()
                .map(|(k, v)| (Arc::from(k), Arc::from(v)))
                .collect(),
        )
    }
}

impl<const N: usize> From<[(String, String); N]> for Labels {
    fn from(labels: [(String, String); N]) -> Self {
        labels.into_iter().collect()
    }
}

/// A label selector requirement (`matchExpressions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectorRequirement {
    /// The label's value is one of these.
    In(String, Vec<String>),
    /// The label is absent or its value is none of these.
    NotIn(String, Vec<String>),
    /// The label is present.
    Exists(String),
    /// The label is absent.
    DoesNotExist(String),
}

/// A label selector: `matchLabels` and `matchExpressions`, all of which must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    /// Labels that must be equal.
    pub match_labels: BTreeMap<String, String>,
    /// Requirements that must hold.
    pub match_expressions: Vec<SelectorRequirement>,
}

impl LabelSelector {
    /// Whether `labels` satisfy every part of the selector.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|req| match req {
                SelectorRequirement::In(k, values) => {
                    labels.get(k).is_some_and(|v| values.contains(v))
                }
                SelectorRequirement::NotIn(k, values) => {
                    labels.get(k).is_none_or(|v| !values.contains(v))
                }
                SelectorRequirement::Exists(k) => labels.contains_key(k),
                SelectorRequirement::DoesNotExist(k) => !labels.contains_key(k),
            })
    }

    /// A selector with no requirement matches everything, which Kubernetes rejects for
    /// StatefulSets.
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }
}

/// What DNS needs of an apps/v1 StatefulSet: enough to explain why its pods are not published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatefulSet {
    /// Its namespace and name.
    pub key: ObjectKey,
    /// `spec.serviceName`: the governing headless Service.
    pub service_name: Option<String>,
    /// `spec.replicas` (default 1).
    pub replicas: i32,
    /// `spec.selector`; `None` when missing.
    pub selector: Option<LabelSelector>,
    /// `spec.template.metadata.labels`.
    pub template_labels: BTreeMap<String, String>,
}

/// The kinds of object DNS reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// v1 Service.
    Service,
    /// discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice,
    /// v1 Pod.
    Pod,
    /// apps/v1 StatefulSet.
    StatefulSet,
}

impl Kind {
    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "Service",
            Self::EndpointSlice => "EndpointSlice",
            Self::Pod => "Pod",
            Self::StatefulSet => "StatefulSet",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Names one object: its kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// The object's kind.
    pub kind: Kind,
    /// Its namespace and name.
    pub key: ObjectKey,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.key)
    }
}

/// Where an object came from, so problems can point at it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    /// The file (or stream) it was read from.
    pub source: Arc<str>,
    /// The 1-based line where its document starts, when known.
    pub line: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}", self.source, line),
            None => f.write_str(&self.source),
        }
    }
}

/// One object of the feed, converted to the model. Shared (`Arc`): the cluster state and a feed
/// that must resend it (the manifest feed's last good version of a file) hold one copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// A Service.
    Service(Arc<Service>),
    /// An EndpointSlice.
    EndpointSlice(Arc<EndpointSlice>),
    /// A Pod.
    Pod(Arc<Pod>),
    /// A StatefulSet.
    StatefulSet(Arc<StatefulSet>),
}

impl From<Service> for Object {
    fn from(service: Service) -> Self {
        Self::Service(Arc::new(service))
    }
}

impl From<EndpointSlice> for Object {
    fn from(slice: EndpointSlice) -> Self {
        Self::EndpointSlice(Arc::new(slice))
    }
}

impl From<Pod> for Object {
    fn from(pod: Pod) -> Self {
        Self::Pod(Arc::new(pod))
    }
}

impl From<StatefulSet> for Object {
    fn from(statefulset: StatefulSet) -> Self {
        Self::StatefulSet(Arc::new(statefulset))
    }
}

impl Object {
    /// The object's kind and key.
    pub fn reference(&self) -> ObjectRef {
        let (kind, key) = match self {
            Self::Service(s) => (
                Kind::Service,
                ObjectKey {
                    namespace: s.key.namespace.clone(),
                    name: Arc::from(s.key.name.as_str()),
                },
            ),
            Self::EndpointSlice(s) => (Kind::EndpointSlice, s.key.clone()),
            Self::Pod(p) => (Kind::Pod, p.key.clone()),
            Self::StatefulSet(s) => (Kind::StatefulSet, s.key.clone()),
        };
        ObjectRef { kind, key }
    }

    /// `Kind namespace/name`, for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Service(s) => format!("Service {}", s.key),
            Self::EndpointSlice(s) => format!("EndpointSlice {}", s.key),
            Self::Pod(p) => format!("Pod {}", p.key),
            Self::StatefulSet(s) => format!("StatefulSet {}", s.key),
        }
    }

    /// Shares the object's names and labels with equal strings `strings` has seen (a Pod's
    /// namespace, label keys, its hostname and `pod-name` label, which repeat its name). Only an
    /// object not yet shared with anyone is changed.
    pub fn share_strings(&mut self, strings: &mut Interner) {
        match self {
            Self::Service(s) => {
                if let Some(s) = Arc::get_mut(s) {
                    s.key.namespace.share(strings);
                    s.key.name.share(strings);
                    if let Some(selector) = &mut s.selector {
                        selector.share(strings);
                    }
                }
            }
            Self::EndpointSlice(s) => {
                if let Some(s) = Arc::get_mut(s) {
                    s.key.share(strings);
                }
            }
            Self::Pod(p) => {
                if let Some(p) = Arc::get_mut(p) {
                    p.key.share(strings);
                    p.labels.share(strings);
                    if let Some(hostname) = &mut p.hostname {
                        hostname.share(strings);
                    }
                    if let Some(subdomain) = &mut p.subdomain {
                        strings.share(subdomain);
                    }
                    strings.share_ports(&mut p.container_ports);
                }
            }
            Self::StatefulSet(s) => {
                if let Some(s) = Arc::get_mut(s) {
                    s.key.share(strings);
                }
            }
        }
    }

    /// The namespace the object lives in.
    pub fn namespace(&self) -> &Namespace {
        match self {
            Self::Service(s) => &s.key.namespace,
            Self::EndpointSlice(s) => &s.key.namespace,
            Self::Pod(p) => &p.key.namespace,
            Self::StatefulSet(s) => &s.key.namespace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Pod and its `Arc`'s two counts fit mimalloc's 160-byte size class: one byte more and
    /// each of 100k Pods takes 192.
    #[test]
    fn a_shared_pod_fits_160_bytes() {
        assert!(
            size_of::<Pod>() + 2 * size_of::<usize>() <= 160,
            "{}",
            size_of::<Pod>()
        );
    }

    #[test]
    fn equal_port_lists_are_one_list_and_their_names_are_shared() {
        let list = |name: &str| -> Arc<[ContainerPort]> {
            [ContainerPort {
                name: Some(Arc::from(name)),
                protocol: Protocol::Tcp,
                port: 80,
            }]
            .into()
        };
        let mut strings = Interner::default();
        let mut seen_name = Arc::from("web");
        strings.share(&mut seen_name);
        let (mut first, mut second, mut other) = (list("web"), list("web"), list("metrics"));
        strings.share_ports(&mut first);
        strings.share_ports(&mut second);
        strings.share_ports(&mut other);
        assert!(Arc::ptr_eq(&first, &second));
        assert!(!Arc::ptr_eq(&first, &other));
        let name = first[0].name.as_ref().expect("named");
        assert!(
            Arc::ptr_eq(name, &seen_name),
            "the port's name is the string seen before"
        );
    }

    #[test]
    fn labels_from_a_map_are_those_collected_from_pairs() {
        let pairs = [
            ("tier", "db"),
            ("app", "web"),
            ("a.b/c", "x"),
            ("app", "api"),
        ];
        let pairs = pairs.map(|(k, v)| (k.to_owned(), v.to_owned()));
        let map: BTreeMap<String, String> = pairs.clone().into_iter().collect();
        let labels = Labels::from(map);
        assert_eq!(labels, pairs.into_iter().collect::<Labels>());
        assert_eq!(labels.get("app"), Some("api"));
        assert_eq!(labels.get("a.b/c"), Some("x"));
        assert_eq!(labels.get("b"), None);
    }

    #[test]
    fn labels_follow_dns_1123() {
        assert!(Namespace::new("default").is_ok());
        assert!(Namespace::new("kube-system").is_ok());
        assert!(Namespace::new("a").is_ok());
        assert!(Namespace::new("").is_err());
        assert!(Namespace::new("-a").is_err());
        assert!(Namespace::new("a-").is_err());
        assert!(Namespace::new("Upper").is_err());
        assert!(Namespace::new("a.b").is_err());
        assert!(Namespace::new(&"a".repeat(64)).is_err());
        assert!(Namespace::new(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn selector_semantics() {
        let labels: BTreeMap<String, String> =
            [("app".into(), "web".into()), ("tier".into(), "db".into())].into();
        let mut sel = LabelSelector::default();
        sel.match_labels.insert("app".into(), "web".into());
        assert!(sel.matches(&labels));
        sel.match_expressions
            .push(SelectorRequirement::In("tier".into(), vec!["db".into()]));
        assert!(sel.matches(&labels));
        sel.match_expressions
            .push(SelectorRequirement::DoesNotExist("tier".into()));
        assert!(!sel.matches(&labels));
    }
}
