//! The cluster state: the Kubernetes objects DNS needs, cut down and indexed.
//!
//! [`ClusterState`] is owned by one writer (the app's reconciler); the record builder reads it to
//! make a snapshot. It never answers queries itself. Endpoints are resolved here, once, exactly
//! as the EndpointSlice controller would: readiness, `publishNotReadyAddresses`, the
//! hostname/subdomain rule and named target ports are all settled before records are built.

pub mod convert;
pub mod diagnose;
mod types;

use std::collections::{BTreeMap, BTreeSet};

use foldhash::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

pub use types::*;

use crate::feed::event::{Event, SourceId};

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

/// What a change touched: the record builder rebuilds exactly these.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dirty {
    /// Everything may have changed (a first list into an empty state): the sets below are not
    /// kept, and the builder rebuilds every name.
    pub everything: bool,
    /// Services whose records may have changed.
    pub services: BTreeSet<ServiceKey>,
    /// Namespaces that appeared or disappeared.
    pub namespaces: BTreeSet<Namespace>,
    /// Pods whose addresses may have changed (for `--pods verified`).
    pub pods: BTreeSet<ObjectKey>,
}

impl Dirty {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        !self.everything
            && self.services.is_empty()
            && self.namespaces.is_empty()
            && self.pods.is_empty()
    }

    /// Adds what `other` touched.
    pub fn merge(&mut self, other: Dirty) {
        self.everything |= other.everything;
        self.services.extend(other.services);
        self.namespaces.extend(other.namespaces);
        self.pods.extend(other.pods);
    }
}

/// What applying one feed event did.
#[derive(Debug, Default)]
pub struct Applied {
    /// What changed.
    pub dirty: Dirty,
    /// Input that was reported and not applied.
    pub problems: Vec<diagnose::Problem>,
    /// Events that made no sense for the state (a DELETED for an object never seen).
    pub warnings: Vec<String>,
}

/// What the state remembers of each feed: a list in progress. (The objects it said last are
/// those whose [`Provenance::feed`] it is.)
#[derive(Debug, Default, Clone)]
struct SourceState {
    /// `Init` … `InitDone` in progress: applied all at once at `InitDone`.
    pending: Option<Vec<(Object, Origin)>>,
    /// Whether a first full list has completed.
    listed: bool,
}

/// The objects of the feeds, indexed for the record builder and `check`.
#[derive(Debug, Default, Clone)]
pub struct ClusterState {
    services: BTreeMap<ServiceKey, Stored<Service>>,
    slices: BTreeMap<ObjectKey, Stored<EndpointSlice>>,
    pods: BTreeMap<ObjectKey, Stored<Pod>>,
    statefulsets: BTreeMap<ObjectKey, Stored<StatefulSet>>,
    /// EndpointSlices by the Service they name, so a Service finds its slices in one lookup.
    slices_by_service: HashMap<ServiceKey, BTreeSet<ObjectKey>>,
    /// The Pods and the Services of each (namespace, label, value), so that selectors do not
    /// scan every Pod and a Pod change finds the Services it may belong to without a scan. One
    /// map for both, since a label a selector has is mostly one its Pods carry: a map each
    /// kept every such label twice (3 MiB at 100k Pods).
    labels: LabelMap,
    /// The label keys whose Pods `labels` lists: every first key of a selector seen so far.
    indexed_label_keys: HashSet<Arc<str>>,
    /// How many objects live in each namespace: a namespace exists while any object does.
    namespaces: BTreeMap<Namespace, usize>,
    /// Per feed: whether it has listed, and a list in progress.
    sources: HashMap<SourceId, SourceState>,
    /// Where the objects came from, numbered for their [`Meta`].
    provenances: Provenances,
}

/// Every (file, feed) pair objects came from, numbered for [`Meta::provenance`]. It never
/// shrinks: one entry per file and feed ever seen, against 32 bytes saved per object.
#[derive(Debug, Default, Clone)]
struct Provenances {
    list: Vec<Provenance>,
    /// The number of each pair in `list`.
    ids: HashMap<Provenance, u32>,
}

/// Where objects came from: the file or stream an [`Origin`] names, and the feed that said
/// them last (`None` for [`ClusterState::insert`]), so a relist replaces only its own objects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Provenance {
    file: Arc<str>,
    feed: Option<SourceId>,
}

/// A label in a namespace: `(namespace, key, value)`, the strings shared with the Pods'.
type LabelKey = (Namespace, Arc<str>, Arc<str>);

/// The state's label map: per namespace, what uses each `(key, value)`. A table per namespace
/// rather than one keyed by the namespace too: an entry is 16 bytes smaller.
#[derive(Debug, Clone, Default)]
struct LabelMap(HashMap<Namespace, NamespaceLabels>);

/// The labels of one namespace, by `(key, value)`.
type NamespaceLabels = HashMap<(Arc<str>, Arc<str>), LabelUsers>;

impl LabelMap {
    fn get(&self, (namespace, key, value): LabelKey) -> Option<&LabelUsers> {
        self.0.get(&namespace)?.get(&(key, value))
    }

    /// Adds `user` to the set `users` picks of the label `key`.
    fn add_user<V: Eq + std::hash::Hash + Clone>(
        &mut self,
        (namespace, key, value): LabelKey,
        users: fn(&mut LabelUsers) -> &mut Option<KeySet<V>>,
        user: V,
    ) {
        let in_namespace = self.0.entry(namespace).or_default();
        add_key(users(in_namespace.entry((key, value)).or_default()), user);
    }

    /// Removes `user` from the set `users` picks of the label `key`; a label nothing uses any
    /// more leaves the map, and so does a namespace without labels.
    fn remove_user<V: Eq + std::hash::Hash + Clone>(
        &mut self,
        (namespace, key, value): LabelKey,
        users: fn(&mut LabelUsers) -> &mut Option<KeySet<V>>,
        user: &V,
    ) {
        use std::collections::hash_map::Entry;
        if let Entry::Occupied(mut in_namespace) = self.0.entry(namespace) {
            if let Entry::Occupied(mut entry) = in_namespace.get_mut().entry((key, value)) {
                remove_key(users(entry.get_mut()), user);
                if entry.get().is_unused() {
                    entry.remove();
                }
            }
            if in_namespace.get().is_empty() {
                in_namespace.remove();
            }
        }
    }

    /// Every label's users, in no order.
    #[cfg(test)]
    fn values(&self) -> impl Iterator<Item = &LabelUsers> {
        self.0.values().flat_map(HashMap::values)
    }

    /// How many labels are listed.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.values().map(HashMap::len).sum()
    }
}

/// What carries or selects one label in a namespace, by name: the namespace is the label's
/// (keys of namespace and name made each entry 16 bytes larger, and each list of Pods twice
/// as large: 2.6 MiB at 100k Pods).
#[derive(Debug, Clone, Default)]
struct LabelUsers {
    /// The Pods with the label, for the label keys a selector starts with (see
    /// [`ClusterState::index_label_key`]): a StatefulSet Pod's own `pod-name` and `pod-index`
    /// labels would otherwise be most of the map.
    pods: Option<KeySet<Arc<str>>>,
    /// The Services whose selector has the label (any of its labels, not only the first).
    services: Option<KeySet<ServiceName>>,
}

impl LabelUsers {
    fn is_unused(&self) -> bool {
        self.pods.is_none() && self.services.is_none()
    }
}

/// The label map's key of a selector's or a Pod's `key: value` in `namespace`, sharing their
/// strings: strings of its own made a selector's labels cost their text again (1.5 MiB at
/// 100k Pods).
fn label_key(namespace: &Namespace, key: &Arc<str>, value: &Arc<str>) -> LabelKey {
    (namespace.clone(), key.clone(), value.clone())
}

/// An object as the state keeps it: shared with the feed that sent it, beside where it came
/// from. (Kept in the object's own map rather than a map of its own: one key, one lookup.)
#[derive(Debug, Clone)]
struct Stored<T> {
    object: Arc<T>,
    meta: Meta,
}

/// What the state keeps beside an object: where it came from, as a number in
/// [`ClusterState::provenances`] and a line. 16 bytes, where an [`Origin`] and a feed were 48:
/// the object maps were 4.6 MiB smaller at 100k Pods.
#[derive(Debug, Clone, Copy)]
struct Meta {
    provenance: u32,
    /// The origin's line, or [`NO_LINE`].
    line: u64,
}

/// [`Meta::line`] of an origin without a line.
const NO_LINE: u64 = u64::MAX;

impl Provenances {
    /// The [`Meta`] of `origin` said by `feed`, numbering the pair if it is new.
    fn meta(&mut self, origin: Origin, feed: Option<SourceId>) -> Meta {
        let provenance = Provenance {
            file: origin.source,
            feed,
        };
        let provenance = match self.ids.get(&provenance) {
            Some(id) => *id,
            None => {
                // More than 4 billion files do not fit in memory anyway.
                let id = u32::try_from(self.list.len()).expect("fewer than 2^32 files");
                self.list.push(provenance.clone());
                self.ids.insert(provenance, id);
                id
            }
        };
        let line = origin.line.map_or(NO_LINE, |line| line as u64);
        Meta { provenance, line }
    }

    fn get(&self, meta: Meta) -> &Provenance {
        &self.list[meta.provenance as usize]
    }

    fn origin(&self, meta: Meta) -> Origin {
        Origin {
            source: self.get(meta).file.clone(),
            line: (meta.line != NO_LINE).then_some(meta.line as usize),
        }
    }
}

/// The keys of one index entry. Most entries have one key (a Pod's own name label, the one
/// Service selecting `app: x`), which is kept inline; a few (the Pods of a small workload) are
/// a short list, scanned; only a large set pays for a hash set's table.
#[derive(Debug, Clone)]
enum KeySet<K> {
    One(K),
    /// At most [`FEW_KEYS`] keys, in no order.
    Few(Vec<K>),
    /// Boxed: an entry holding a hash set inline was as large as one holding a list.
    Many(Box<HashSet<K>>),
}

/// The most keys a [`KeySet`] keeps in a list: comparing that many costs less than hashing, and
/// a list of them is a third of a hash set's memory.
const FEW_KEYS: usize = 8;

impl<K: Eq + std::hash::Hash + Clone> KeySet<K> {
    fn insert(&mut self, key: K) {
        match self {
            Self::One(one) if *one == key => {}
            Self::One(one) => *self = Self::Few(vec![one.clone(), key]),
            Self::Few(list) if list.contains(&key) => {}
            Self::Few(list) if list.len() < FEW_KEYS => list.push(key),
            Self::Few(list) => {
                let mut set: HashSet<K> = list.drain(..).collect();
                set.insert(key);
                *self = Self::Many(Box::new(set));
            }
            Self::Many(set) => {
                set.insert(key);
            }
        }
    }

    /// Removes `key`; returns whether the set is now empty.
    fn remove(&mut self, key: &K) -> bool {
        match self {
            Self::One(one) => one == key,
            Self::Few(list) => {
                list.retain(|k| k != key);
                // Back to inline: a set that shrinks stays as small as one built small.
                if let [last] = &list[..] {
                    *self = Self::One(last.clone());
                }
                false
            }
            Self::Many(set) => {
                set.remove(key);
                if set.len() <= FEW_KEYS {
                    *self = Self::Few(set.drain().collect());
                    return self.remove(key);
                }
                false
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = &K> {
        let (one, few, many) = match self {
            Self::One(one) => (Some(one), None, None),
            Self::Few(list) => (None, Some(list.iter()), None),
            Self::Many(set) => (None, None, Some(set.iter())),
        };
        one.into_iter()
            .chain(few.into_iter().flatten())
            .chain(many.into_iter().flatten())
    }
}

fn service_key(key: &ObjectKey) -> Option<ServiceKey> {
    Some(ServiceKey {
        namespace: key.namespace.clone(),
        name: ServiceName::new(&key.name).ok()?,
    })
}

/// Adds `value` to the set in `slot`, making the set if there is none.
fn add_key<V: Eq + std::hash::Hash + Clone>(slot: &mut Option<KeySet<V>>, value: V) {
    match slot {
        Some(set) => set.insert(value),
        None => *slot = Some(KeySet::One(value)),
    }
}

/// Removes `value` from the set in `slot`, leaving `None` for a set left empty.
fn remove_key<V: Eq + std::hash::Hash + Clone>(slot: &mut Option<KeySet<V>>, value: &V) {
    if slot.as_mut().is_some_and(|set| set.remove(value)) {
        *slot = None;
    }
}

fn pods_of(users: &mut LabelUsers) -> &mut Option<KeySet<Arc<str>>> {
    &mut users.pods
}

fn services_of(users: &mut LabelUsers) -> &mut Option<KeySet<ServiceName>> {
    &mut users.services
}

impl ClusterState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces an object; returns where the replaced one came from, if any.
    pub fn insert(&mut self, object: Object, origin: Origin) -> Option<Origin> {
        self.upsert(object, origin).0
    }

    /// Adds or replaces an object; returns the replaced one's origin and what changed. An
    /// object equal to the one it replaces changes nothing.
    pub fn upsert(&mut self, object: Object, origin: Origin) -> (Option<Origin>, Dirty) {
        self.upsert_tracked(object, origin, None, true)
    }

    /// [`Self::upsert`], said by `feed` (a replaced object's feed is kept when `None`), and
    /// computing what changed only when `track` (a first list into an empty state rebuilds
    /// everything, so it need not know).
    fn upsert_tracked(
        &mut self,
        object: Object,
        origin: Origin,
        feed: Option<&SourceId>,
        track: bool,
    ) -> (Option<Origin>, Dirty) {
        let reference = object.reference();
        if self.refresh(&object) {
            // An object equal to the one it replaces changes nothing but where it was read.
            let mut provenances = std::mem::take(&mut self.provenances);
            let replaced = self.meta_mut(&reference).map(|meta| {
                let old = *meta;
                let feed = feed.or(provenances.get(old).feed.as_ref()).cloned();
                *meta = provenances.meta(origin, feed);
                provenances.origin(old)
            });
            self.provenances = provenances;
            return (replaced, Dirty::default());
        }
        let (replaced, source, mut dirty) = match self.take(&reference, track) {
            Some((meta, dirty)) => (
                Some(self.provenances.origin(meta)),
                feed.or(self.provenances.get(meta).feed.as_ref()).cloned(),
                dirty,
            ),
            None => {
                let namespace = reference.key.namespace.clone();
                let count = self.namespaces.entry(namespace.clone()).or_default();
                *count += 1;
                let mut dirty = Dirty::default();
                if *count == 1 && track {
                    dirty.namespaces.insert(namespace);
                }
                (None, feed.cloned(), dirty)
            }
        };
        if track {
            dirty.merge(self.touched_by(&object));
        }
        let meta = self.provenances.meta(origin, source);
        match object {
            Object::Service(s) => {
                for (k, v) in s.selector.iter().flat_map(Labels::iter) {
                    self.labels.add_user(
                        label_key(&s.key.namespace, k, v),
                        services_of,
                        s.key.name.clone(),
                    );
                }
                if let Some((k, _)) = s.selector.iter().flat_map(Labels::iter).next() {
                    self.index_label_key(k);
                }
                self.services
                    .insert(s.key.clone(), Stored { object: s, meta });
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
                self.slices
                    .insert(s.key.clone(), Stored { object: s, meta });
            }
            Object::Pod(p) => {
                for (k, v) in p.labels.iter() {
                    if !self.indexed_label_keys.contains(k) {
                        continue;
                    }
                    self.labels.add_user(
                        label_key(&p.key.namespace, k, v),
                        pods_of,
                        p.key.name.clone(),
                    );
                }
                self.pods.insert(p.key.clone(), Stored { object: p, meta });
            }
            Object::StatefulSet(s) => {
                self.statefulsets
                    .insert(s.key.clone(), Stored { object: s, meta });
            }
        }
        (replaced, dirty)
    }

    /// Indexes the Pods by label `key` from now on (the first key of a selector), adding the
    /// Pods already held. Never undone: a key stays indexed while the state lives.
    fn index_label_key(&mut self, key: &str) {
        if self.indexed_label_keys.contains(key) {
            return;
        }
        let key: Arc<str> = Arc::from(key);
        for (pod_key, stored) in &self.pods {
            if let Some((k, v)) = stored.object.labels.iter().find(|(k, _)| **k == key) {
                self.labels.add_user(
                    label_key(&pod_key.namespace, k, v),
                    pods_of,
                    pod_key.name.clone(),
                );
            }
        }
        self.indexed_label_keys.insert(key);
    }

    /// Removes an object; returns what changed, or `None` if there was no such object.
    pub fn delete(&mut self, reference: &ObjectRef) -> Option<Dirty> {
        let (_, mut dirty) = self.take(reference, true)?;
        let namespace = &reference.key.namespace;
        if let Some(count) = self.namespaces.get_mut(namespace) {
            *count -= 1;
            if *count == 0 {
                self.namespaces.remove(namespace);
                dirty.namespaces.insert(namespace.clone());
            }
        }
        Some(dirty)
    }

    /// Whether the state holds `object` as it is (the same `Arc`, or an equal object). An equal
    /// object is replaced by `object`'s `Arc`, so the state shares the copy the feed keeps
    /// (the manifest feed's last good version) rather than holding an older one beside it.
    fn refresh(&mut self, object: &Object) -> bool {
        fn same<T: PartialEq>(stored: Option<&mut Stored<T>>, object: &Arc<T>) -> bool {
            let Some(stored) = stored else {
                return false;
            };
            let same = Arc::ptr_eq(&stored.object, object) || *stored.object == **object;
            if same {
                stored.object = object.clone();
            }
            same
        }
        match object {
            Object::Service(s) => same(self.services.get_mut(&s.key), s),
            Object::EndpointSlice(s) => same(self.slices.get_mut(&s.key), s),
            Object::Pod(p) => same(self.pods.get_mut(&p.key), p),
            Object::StatefulSet(s) => same(self.statefulsets.get_mut(&s.key), s),
        }
    }

    /// What the state keeps beside the object `reference` names.
    fn meta(&self, reference: &ObjectRef) -> Option<Meta> {
        let key = &reference.key;
        match reference.kind {
            Kind::Service => self.services.get(&service_key(key)?).map(|s| s.meta),
            Kind::EndpointSlice => self.slices.get(key).map(|s| s.meta),
            Kind::Pod => self.pods.get(key).map(|s| s.meta),
            Kind::StatefulSet => self.statefulsets.get(key).map(|s| s.meta),
        }
    }

    /// [`Self::meta`], to change.
    fn meta_mut(&mut self, reference: &ObjectRef) -> Option<&mut Meta> {
        let key = &reference.key;
        match reference.kind {
            Kind::Service => self
                .services
                .get_mut(&service_key(key)?)
                .map(|s| &mut s.meta),
            Kind::EndpointSlice => self.slices.get_mut(key).map(|s| &mut s.meta),
            Kind::Pod => self.pods.get_mut(key).map(|s| &mut s.meta),
            Kind::StatefulSet => self.statefulsets.get_mut(key).map(|s| &mut s.meta),
        }
    }

    /// Every object's reference with what the state keeps beside it.
    fn metas(&self) -> impl Iterator<Item = (ObjectRef, &Meta)> {
        fn reference(kind: Kind, key: &ObjectKey) -> ObjectRef {
            ObjectRef {
                kind,
                key: key.clone(),
            }
        }
        let services = self.services.iter().map(|(key, s)| {
            let key = ObjectKey {
                namespace: key.namespace.clone(),
                name: Arc::from(key.name.as_str()),
            };
            (reference(Kind::Service, &key), &s.meta)
        });
        let slices =
            (self.slices.iter()).map(move |(k, s)| (reference(Kind::EndpointSlice, k), &s.meta));
        let pods = (self.pods.iter()).map(move |(k, s)| (reference(Kind::Pod, k), &s.meta));
        let statefulsets = (self.statefulsets.iter())
            .map(move |(k, s)| (reference(Kind::StatefulSet, k), &s.meta));
        services.chain(slices).chain(pods).chain(statefulsets)
    }

    /// Takes an object out of the maps and indexes (not its namespace count); returns what the
    /// state kept beside it and what its absence touches (when `track`).
    fn take(&mut self, reference: &ObjectRef, track: bool) -> Option<(Meta, Dirty)> {
        let key = &reference.key;
        let (object, meta) = match reference.kind {
            Kind::Service => {
                let Stored { object, meta } = self.services.remove(&service_key(key)?)?;
                for (k, v) in object.selector.iter().flat_map(Labels::iter) {
                    self.labels.remove_user(
                        label_key(&key.namespace, k, v),
                        services_of,
                        &object.key.name,
                    );
                }
                (Object::Service(object), meta)
            }
            Kind::EndpointSlice => {
                let Stored { object, meta } = self.slices.remove(key)?;
                if let Some(service) = &object.service {
                    let skey = ServiceKey {
                        namespace: key.namespace.clone(),
                        name: service.clone(),
                    };
                    if let std::collections::hash_map::Entry::Occupied(mut entry) =
                        self.slices_by_service.entry(skey)
                    {
                        entry.get_mut().remove(key);
                        if entry.get().is_empty() {
                            entry.remove();
                        }
                    }
                }
                (Object::EndpointSlice(object), meta)
            }
            Kind::Pod => {
                let Stored { object, meta } = self.pods.remove(key)?;
                for (k, v) in object.labels.iter() {
                    self.labels
                        .remove_user(label_key(&key.namespace, k, v), pods_of, &key.name);
                }
                (Object::Pod(object), meta)
            }
            Kind::StatefulSet => {
                let Stored { object, meta } = self.statefulsets.remove(key)?;
                (Object::StatefulSet(object), meta)
            }
        };
        let dirty = if track {
            self.touched_by(&object)
        } else {
            Dirty::default()
        };
        Some((meta, dirty))
    }

    /// The records an object's presence or absence can change.
    fn touched_by(&self, object: &Object) -> Dirty {
        let mut dirty = Dirty::default();
        match object {
            Object::Service(s) => {
                dirty.services.insert(s.key.clone());
            }
            Object::EndpointSlice(s) => {
                if let Some(service) = &s.service {
                    dirty.services.insert(ServiceKey {
                        namespace: s.key.namespace.clone(),
                        name: service.clone(),
                    });
                }
            }
            Object::Pod(p) => {
                dirty.pods.insert(p.key.clone());
                for (k, v) in p.labels.iter() {
                    let index = label_key(&p.key.namespace, k, v);
                    for name in (self.labels.get(index))
                        .and_then(|users| users.services.as_ref())
                        .into_iter()
                        .flat_map(KeySet::iter)
                    {
                        let skey = ServiceKey {
                            namespace: p.key.namespace.clone(),
                            name: name.clone(),
                        };
                        let selects = self.service_by_key(&skey).is_some_and(|svc| {
                            svc.selector.as_ref().is_none_or(|s| s.selects(&p.labels))
                        });
                        if selects {
                            dirty.services.insert(skey);
                        }
                    }
                }
            }
            Object::StatefulSet(_) => {}
        }
        dirty
    }

    /// Applies one feed event. A list (`Init` … `InitDone`) replaces the objects that source
    /// said before, all at once at `InitDone`; other sources' objects are untouched.
    pub fn apply(&mut self, source: &SourceId, event: Event) -> Applied {
        let mut applied = Applied::default();
        let state = self.sources.entry(source.clone()).or_default();
        match event {
            Event::Init => state.pending = Some(Vec::new()),
            Event::InitApply(object, origin) => {
                state
                    .pending
                    .get_or_insert_with(Vec::new)
                    .push((object, origin));
            }
            Event::InitDone => {
                let listed = state.pending.take().unwrap_or_default();
                state.listed = true;
                // Into an empty state, everything is new (and nothing is gone): the builder
                // rebuilds it all, so what each object touches need not be worked out (a tenth
                // of a large first start).
                let track = !self.is_empty();
                applied.dirty.everything = !track;
                if track {
                    let current: HashSet<ObjectRef> =
                        listed.iter().map(|(o, _)| o.reference()).collect();
                    let gone: Vec<ObjectRef> = self
                        .metas()
                        .filter(|(reference, meta)| {
                            self.provenances.get(**meta).feed.as_ref() == Some(source)
                                && !current.contains(reference)
                        })
                        .map(|(reference, _)| reference)
                        .collect();
                    for gone in &gone {
                        if let Some(dirty) = self.delete(gone) {
                            applied.dirty.merge(dirty);
                        }
                    }
                }
                for (object, origin) in listed {
                    applied
                        .dirty
                        .merge(self.apply_object(object, origin, source, track));
                }
                if !track {
                    self.compact();
                }
            }
            Event::Apply(object, origin) => {
                applied.dirty = self.apply_object(object, origin, source, true);
            }
            Event::Delete(reference, origin) => match self.delete(&reference) {
                Some(dirty) => applied.dirty = dirty,
                None => applied.warnings.push(format!(
                    "{origin}: DELETED for {reference}, which was never seen; ignored"
                )),
            },
            Event::Problem(problem) => applied.problems.push(problem),
        }
        applied
    }

    /// Upserts an object `source` said (see [`Self::upsert_tracked`]) and records that it said
    /// it last; returns what changed.
    fn apply_object(
        &mut self,
        object: Object,
        origin: Origin,
        source: &SourceId,
        track: bool,
    ) -> Dirty {
        let (_, dirty) = self.upsert_tracked(object, origin, Some(source), track);
        dirty
    }

    /// Rebuilds the object maps with full nodes. Filled one insert at a time, a B-tree's
    /// nodes end up a little over half full (a node splits in two when it overflows); built
    /// from sorted entries, they are full. After a first list this is a tenth of the state's
    /// memory at 100k Pods, for a few milliseconds.
    fn compact(&mut self) {
        fn full<K: Ord, V>(map: &mut BTreeMap<K, V>) {
            *map = std::mem::take(map).into_iter().collect();
        }
        full(&mut self.services);
        full(&mut self.slices);
        full(&mut self.pods);
        full(&mut self.statefulsets);
    }

    /// Whether `source` has delivered a first complete list.
    pub fn is_listed(&self, source: &SourceId) -> bool {
        self.sources.get(source).is_some_and(|s| s.listed)
    }

    /// Whether the namespace has any object.
    pub fn has_namespace(&self, namespace: &Namespace) -> bool {
        self.namespaces.contains_key(namespace)
    }

    /// A Pod by key.
    pub fn pod(&self, key: &ObjectKey) -> Option<&Pod> {
        self.pods.get(key).map(|s| &*s.object)
    }

    /// A Service by key.
    pub fn service_by_key(&self, key: &ServiceKey) -> Option<&Service> {
        self.services.get(key).map(|s| &*s.object)
    }

    /// Every Service, in key order.
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.values().map(|s| &*s.object)
    }

    /// A Service by namespace and name.
    pub fn service(&self, namespace: &Namespace, name: &str) -> Option<&Service> {
        let name = ServiceName::new(name).ok()?;
        self.service_by_key(&ServiceKey {
            namespace: namespace.clone(),
            name,
        })
    }

    /// Every EndpointSlice.
    pub fn endpoint_slices(&self) -> impl Iterator<Item = &EndpointSlice> {
        self.slices.values().map(|s| &*s.object)
    }

    /// Every Pod.
    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.pods.values().map(|s| &*s.object)
    }

    /// Every StatefulSet.
    pub fn statefulsets(&self) -> impl Iterator<Item = &StatefulSet> {
        self.statefulsets.values().map(|s| &*s.object)
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
    pub fn origin(&self, reference: &ObjectRef) -> Option<Origin> {
        self.meta(reference)
            .map(|meta| self.provenances.origin(meta))
    }

    /// Pods in `namespace` that `selector` selects, in key order; the label index gives the
    /// candidates (the Pods with the selector's first label), so no scan.
    pub fn pods_selected(&self, namespace: &Namespace, selector: &Labels) -> Vec<&Pod> {
        let candidates: Box<dyn Iterator<Item = &Pod>> = match selector.iter().next() {
            Some((k, v)) if self.indexed_label_keys.contains(k) => {
                let users = self.labels.get(label_key(namespace, k, v));
                match users.and_then(|users| users.pods.as_ref()) {
                    Some(names) => Box::new(names.iter().filter_map(|name| {
                        self.pod(&ObjectKey {
                            namespace: namespace.clone(),
                            name: name.clone(),
                        })
                    })),
                    None => Box::new(std::iter::empty()),
                }
            }
            _ => Box::new(self.pods().filter(move |p| &p.key.namespace == namespace)),
        };
        let mut pods: Vec<&Pod> = candidates.filter(|p| selector.selects(&p.labels)).collect();
        // In key order, whatever the index's order: the same state gives the same records.
        pods.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        pods
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
                .filter_map(|k| self.slices.get(k).map(|s| &*s.object))
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
        let pods = self.pods_selected(&service.key.namespace, selector);
        pods.into_iter()
            .filter(|pod| !pod.ips.is_empty())
            .map(|pod| EndpointGroup {
                ports: derived_ports(service, pod),
                endpoints: vec![ResolvedEndpoint {
                    addresses: pod.ips.to_vec(),
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
            subdomain: Some(subdomain.into()),
            ips: [ip.parse().expect("ip")].into(),
            ready,
            terminating: false,
            container_ports: [ContainerPort {
                name: Some("http".into()),
                protocol: Protocol::Tcp,
                port: 80,
            }]
            .into(),
        }
    }

    #[test]
    fn derived_endpoints_follow_the_endpointslice_controller() {
        let mut state = ClusterState::new();
        state.insert(Object::from(service(false)), origin());
        state.insert(
            Object::from(pod("web-0", "10.0.0.1", true, "web")),
            origin(),
        );
        state.insert(
            Object::from(pod("web-1", "10.0.0.2", false, "web")),
            origin(),
        );
        state.insert(
            Object::from(pod("other-0", "10.0.0.3", true, "other")),
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

        state.insert(Object::from(service(true)), origin());
        let svc = state.services().next().expect("one service").clone();
        assert!(state.endpoints(&svc).iter().all(|g| g.endpoints[0].ready));
    }

    #[test]
    fn namespaces_exist_while_objects_do() {
        let mut state = ClusterState::new();
        state.insert(
            Object::from(pod("web-0", "10.0.0.1", true, "web")),
            origin(),
        );
        assert_eq!(state.namespaces().count(), 1);
        let replaced = state.insert(
            Object::from(pod("web-0", "10.0.0.9", true, "web")),
            origin(),
        );
        assert!(
            replaced.is_some(),
            "a second object with the same key replaces the first"
        );
        assert_eq!(state.len(), 1);
        state.delete(&ObjectRef {
            kind: Kind::Pod,
            key: ObjectKey {
                namespace: ns("default"),
                name: Arc::from("web-0"),
            },
        });
        assert_eq!(state.namespaces().count(), 0);
    }
    #[test]
    fn a_first_list_into_an_empty_state_rebuilds_everything_and_later_ones_are_precise() {
        let source = SourceId::new("test");
        let list = |state: &mut ClusterState, objects: Vec<Object>| {
            let mut dirty = Dirty::default();
            dirty.merge(state.apply(&source, Event::Init).dirty);
            for object in objects {
                dirty.merge(
                    state
                        .apply(&source, Event::InitApply(object, origin()))
                        .dirty,
                );
            }
            dirty.merge(state.apply(&source, Event::InitDone).dirty);
            dirty
        };
        let objects = || {
            vec![
                Object::from(service(false)),
                Object::from(pod("web-0", "10.0.0.1", true, "web")),
            ]
        };
        let mut state = ClusterState::new();
        let first = list(&mut state, objects());
        assert!(first.everything && !first.is_empty());
        assert!(
            first.services.is_empty(),
            "not tracked when everything changed"
        );
        assert_eq!(state.len(), 2);
        assert_eq!(state.origin(&objects()[1].reference()), Some(origin()));

        let same = list(&mut state, objects());
        assert!(
            same.is_empty(),
            "an unchanged relist changes nothing: {same:?}"
        );

        let mut changed = objects();
        changed[1] = Object::from(pod("web-0", "10.0.0.2", true, "web"));
        let dirty = list(&mut state, changed);
        assert!(!dirty.everything);
        assert_eq!(dirty.services.len(), 1, "the Service selecting the Pod");

        // Once emptied, a list is a first list again.
        let emptied = list(&mut state, Vec::new());
        assert!(!emptied.everything && emptied.services.len() == 1);
        assert!(state.is_empty());
        assert!(list(&mut state, objects()).everything);
    }

    #[test]
    fn each_object_keeps_its_file_line_and_feed() {
        let at = |file: &str, line: Option<usize>| Origin {
            source: Arc::from(file),
            line,
        };
        let list = |state: &mut ClusterState, feed: &SourceId, objects: Vec<(Object, Origin)>| {
            state.apply(feed, Event::Init);
            for (object, origin) in objects {
                state.apply(feed, Event::InitApply(object, origin));
            }
            state.apply(feed, Event::InitDone);
        };
        let (a, b) = (SourceId::new("a"), SourceId::new("b"));
        let web = || Object::from(service(false));
        let web_0 = || Object::from(pod("web-0", "10.0.0.1", true, "web"));
        let mut state = ClusterState::new();
        list(
            &mut state,
            &a,
            vec![
                (web(), at("a.yaml", Some(3))),
                (web_0(), at("a.yaml", Some(9))),
            ],
        );
        state.insert(
            Object::from(pod("db-0", "10.0.0.9", true, "db")),
            at("manual", None),
        );
        assert_eq!(
            state.origin(&web().reference()),
            Some(at("a.yaml", Some(3)))
        );
        assert_eq!(
            state.origin(&web_0().reference()),
            Some(at("a.yaml", Some(9)))
        );
        let db_0 = Object::from(pod("db-0", "10.0.0.9", true, "db")).reference();
        assert_eq!(state.origin(&db_0), Some(at("manual", None)));

        // Feed b says the same Pod: it is b's now, read from b's file.
        list(&mut state, &b, vec![(web_0(), at("b.yaml", Some(2)))]);
        assert_eq!(
            state.origin(&web_0().reference()),
            Some(at("b.yaml", Some(2)))
        );

        // So a relist of a without it keeps it; one of b without it removes it.
        list(&mut state, &a, vec![(web(), at("a.yaml", Some(3)))]);
        assert!(state.pod(&web_0().reference().key).is_some());
        list(&mut state, &b, Vec::new());
        assert!(state.pod(&web_0().reference().key).is_none());
        assert!(state.pod(&db_0.key).is_some(), "inserted by no feed");
        assert_eq!(state.len(), 2);

        // Numbered per file and feed, not per object: one more pair for many.yaml from c.
        let before = state.provenances.list.len();
        let pods = (0..50)
            .map(|i| {
                let pod = Object::from(pod(&format!("app-{i}"), "10.0.1.1", true, "app"));
                (pod, at("many.yaml", Some(i + 1)))
            })
            .collect();
        list(&mut state, &SourceId::new("c"), pods);
        assert_eq!(state.len(), 52);
        assert_eq!(
            state.provenances.list.len() - before,
            1,
            "{:?}",
            state.provenances
        );
    }

    #[test]
    fn an_equal_object_replaces_the_stored_one_so_the_feeds_copy_is_shared() {
        let mut state = ClusterState::new();
        state.insert(
            Object::from(pod("web-0", "10.0.0.1", true, "web")),
            origin(),
        );
        let again = Arc::new(pod("web-0", "10.0.0.1", true, "web"));
        let (replaced, dirty) = state.upsert(Object::Pod(again.clone()), origin());
        assert!(replaced.is_some() && dirty.is_empty());
        let stored = state.pods().next().expect("one pod");
        assert!(
            std::ptr::eq(stored, &*again),
            "the state keeps the newest copy"
        );
    }

    #[test]
    fn pods_are_indexed_by_the_label_keys_selectors_start_with_even_when_they_came_first() {
        let mut state = ClusterState::new();
        let mut labelled = pod("web-0", "10.0.0.1", true, "web");
        labelled.labels = [
            ("app".to_owned(), "web".to_owned()),
            ("tier".to_owned(), "db".to_owned()),
        ]
        .into();
        state.insert(Object::from(labelled), origin());
        assert_eq!(pod_labels(&state), 0, "no selector yet: nothing indexed");

        // A Service selecting by `tier` arrives after the Pod: the Pod is indexed then.
        let mut by_tier = service(false);
        by_tier.key.name = ServiceName::new("db").expect("valid");
        by_tier.selector = Some([("tier".to_owned(), "db".to_owned())].into());
        state.insert(Object::from(by_tier.clone()), origin());
        assert_eq!(pod_labels(&state), 1, "only the `tier` label");
        assert_eq!(state.endpoints(&by_tier).len(), 1);

        // One that came after the Service is indexed as it arrives; `app` is still not.
        state.insert(
            Object::from(pod("web-1", "10.0.0.2", true, "web")),
            origin(),
        );
        let mut second = pod("web-2", "10.0.0.3", true, "web");
        second.labels = [("tier".to_owned(), "db".to_owned())].into();
        state.insert(Object::from(second), origin());
        assert_eq!(state.endpoints(&by_tier).len(), 2);
        assert_eq!(pod_labels(&state), 1);

        // A selector's other keys need no index: the first key finds the candidates.
        state.insert(Object::from(service(false)), origin());
        let web = state
            .services()
            .find(|s| s.key.name.as_str() == "web")
            .cloned();
        assert_eq!(
            state.endpoints(&web.expect("web")).len(),
            2,
            "web-0 and web-1"
        );
        assert_eq!(pod_labels(&state), 2, "`app: web` and `tier: db`");
    }

    /// How many labels the state lists Pods for.
    fn pod_labels(state: &ClusterState) -> usize {
        state.labels.values().filter(|u| u.pods.is_some()).count()
    }

    #[test]
    fn a_label_stays_listed_while_a_pod_or_a_service_uses_it() {
        let mut state = ClusterState::new();
        let web = service(false);
        state.insert(Object::from(web.clone()), origin());
        state.insert(
            Object::from(pod("web-0", "10.0.0.1", true, "web")),
            origin(),
        );
        state.insert(
            Object::from(pod("web-1", "10.0.0.2", true, "web")),
            origin(),
        );
        assert_eq!(state.labels.len(), 1, "{:?}", state.labels);
        let users = state.labels.values().next().expect("one label");
        assert_eq!(users.pods.iter().flat_map(KeySet::iter).count(), 2);
        assert_eq!(users.services.iter().flat_map(KeySet::iter).count(), 1);

        // The Service goes; its Pods still carry the label, and a new Service finds them.
        state.delete(&Object::from(web.clone()).reference());
        assert_eq!(state.labels.len(), 1);
        assert!(state.labels.values().all(|u| u.services.is_none()));
        state.insert(Object::from(web.clone()), origin());
        assert_eq!(state.endpoints(&web).len(), 2);

        // The Pods go; the Service still selects the label.
        for name in ["web-0", "web-1"] {
            let reference = Object::from(pod(name, "10.0.0.1", true, "web")).reference();
            state.delete(&reference).expect("was there");
        }
        assert_eq!(state.labels.len(), 1);
        assert_eq!(pod_labels(&state), 0);
        assert!(state.endpoints(&web).is_empty());

        // Nothing uses it: the entry goes, and so does its namespace's table.
        state.delete(&Object::from(web).reference());
        assert!(state.labels.0.is_empty(), "{:?}", state.labels);
    }

    #[test]
    fn the_label_map_shares_the_selectors_strings() {
        let mut state = ClusterState::new();
        let web = service(false);
        state.insert(Object::from(web.clone()), origin());
        let (key, value) = web
            .selector
            .iter()
            .flat_map(Labels::iter)
            .next()
            .expect("one");
        let (listed_key, listed_value) = state.labels.0[&web.key.namespace]
            .keys()
            .next()
            .expect("listed");
        assert!(Arc::ptr_eq(key, listed_key) && Arc::ptr_eq(value, listed_value));
    }

    #[test]
    fn key_sets_keep_one_key_inline_and_grow_and_shrink() {
        let mut slot: Option<KeySet<u32>> = None;
        add_key(&mut slot, 1);
        assert!(matches!(slot, Some(KeySet::One(1))));
        add_key(&mut slot, 1);
        assert!(matches!(slot, Some(KeySet::One(1))), "a key is kept once");
        add_key(&mut slot, 2);
        add_key(&mut slot, 3);
        let mut keys: Vec<u32> = slot.iter().flat_map(KeySet::iter).copied().collect();
        keys.sort_unstable();
        assert_eq!(keys, [1, 2, 3]);
        remove_key(&mut slot, &2);
        remove_key(&mut slot, &1);
        assert!(matches!(slot, Some(KeySet::One(3))));
        remove_key(&mut slot, &9);
        assert!(slot.is_some(), "removing an absent key keeps the set");
        remove_key(&mut slot, &3);
        assert!(slot.is_none(), "an empty set goes");
    }

    #[test]
    fn key_sets_past_a_few_keys_become_hash_sets_and_come_back() {
        let mut slot: Option<KeySet<u32>> = None;
        let keys = |slot: &Option<KeySet<u32>>| {
            let mut keys: Vec<u32> = slot.iter().flat_map(KeySet::iter).copied().collect();
            keys.sort_unstable();
            keys
        };
        for i in 0..=FEW_KEYS as u32 {
            add_key(&mut slot, i);
            add_key(&mut slot, i);
        }
        assert!(matches!(slot, Some(KeySet::Many(_))));
        assert_eq!(keys(&slot), (0..=FEW_KEYS as u32).collect::<Vec<_>>());
        remove_key(&mut slot, &0);
        assert!(matches!(&slot, Some(KeySet::Few(list)) if list.len() == FEW_KEYS));
        assert_eq!(keys(&slot), (1..=FEW_KEYS as u32).collect::<Vec<_>>());
        for i in 1..FEW_KEYS as u32 {
            remove_key(&mut slot, &i);
        }
        assert!(matches!(slot, Some(KeySet::One(k)) if k == FEW_KEYS as u32));
        remove_key(&mut slot, &(FEW_KEYS as u32));
        assert!(slot.is_none());
    }
}
