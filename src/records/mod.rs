//! Cluster state → [`Snapshot`]: every name and answer of DESIGN.md section 2, settled once.
//!
//! [`build`] is pure and synchronous: no tokio, no I/O. Readiness, `publishNotReadyAddresses`,
//! hostname fallback, SRV weights and additional records are decided here, never per query.

pub mod names;
mod ownership;

use std::collections::BTreeMap;

use foldhash::HashMap;
use std::net::IpAddr;

use hickory_proto::ProtoError;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use crate::config::{PodsMode, ZoneConfig};
use crate::model::{
    ClusterState, Dirty, EndpointGroup, Namespace, ObjectKey, Service, ServiceKey, ServiceKind,
};
use crate::snapshot::{Index, NameKey, Node, RecordSet, Snapshot, Zone, name_key};
use ownership::{OwnerId, Ownership};

/// The version of the Kubernetes DNS schema we implement, served at `dns-version.<zone>`.
pub const SCHEMA_VERSION: &str = "1.1.0";
/// TTL of `dns-version.<zone>`, as the specification gives it.
pub const SCHEMA_VERSION_TTL: u32 = 28800;

/// SOA timers (refresh, retry, expire), the values CoreDNS uses.
const SOA_REFRESH: i32 = 7200;
const SOA_RETRY: i32 = 1800;
const SOA_EXPIRE: i32 = 86400;

/// The records of one type at one name, and their additional-section records.
#[derive(Debug, Default, Clone)]
struct PendingSet {
    /// All owned by the set's name, so they are told apart by their data.
    records: Distinct,
    additionals: Distinct,
}

/// Records without duplicates (as `Record`'s `==` sees them), in the order first added.
#[derive(Debug, Default, Clone)]
struct Distinct {
    list: Vec<Record>,
    /// Hashes of `list` once it is long, so a set of thousands of Pods is not quadratic. Boxed:
    /// most sets never have it, and every name carries two `Distinct`s.
    hashes: Option<Box<foldhash::HashSet<u64>>>,
}

/// From this many records a [`Distinct`] looks duplicates up by hash rather than by scanning.
const HASHED_FROM: usize = 16;

impl Distinct {
    /// Adds `record` unless it is there already. `same_owner` says every record here has the
    /// same name (told apart by data alone).
    fn insert(&mut self, record: Record, same_owner: bool) {
        let hash = |r: &Record| {
            use std::hash::BuildHasher;
            let state = foldhash::fast::FixedState::default();
            if same_owner {
                state.hash_one(&r.data)
            } else {
                state.hash_one((&r.name, &r.data))
            }
        };
        if self.hashes.is_none() && self.list.len() >= HASHED_FROM {
            self.hashes = Some(Box::new(self.list.iter().map(hash).collect()));
        }
        let scan = match &mut self.hashes {
            // A new hash is a new record; a known one is most likely a duplicate: confirm.
            Some(hashes) => !hashes.insert(hash(&record)),
            None => true,
        };
        if scan
            && self
                .list
                .iter()
                .any(|r| same_record(r, &record, same_owner))
        {
            return;
        }
        if self.list.is_empty() {
            // Most sets hold one record (an endpoint's A, a PTR): room for that one, not the
            // four a `Vec` starts with (a `Record` is 272 bytes).
            self.list.reserve_exact(1);
        }
        self.list.push(record);
    }
}

/// `a == b` for records (name, class and data), cheaper for what the builder compares most:
/// names are told apart by their first label before the whole name is compared.
fn same_record(a: &Record, b: &Record, same_owner: bool) -> bool {
    a.dns_class == b.dns_class
        && (same_owner || same_name(&a.name, &b.name))
        && match (&a.data, &b.data) {
            (RData::SRV(x), RData::SRV(y)) => {
                x.priority == y.priority
                    && x.weight == y.weight
                    && x.port == y.port
                    && same_name(&x.target, &y.target)
            }
            (RData::PTR(x), RData::PTR(y)) => same_name(&x.0, &y.0),
            (x, y) => x == y,
        }
}

/// `a == b` for names, testing the length and then the first label: sibling names differ
/// there. (Not the number of labels: hickory's `num_labels` looks at the first label too.)
fn same_name(a: &Name, b: &Name) -> bool {
    a.len() == b.len()
        && a.iter()
            .next()
            .unwrap_or_default()
            .eq_ignore_ascii_case(b.iter().next().unwrap_or_default())
        && a == b
}

/// Records by name and type while a snapshot is being built.
#[derive(Debug, Default, Clone)]
struct Table {
    /// Keyed as the index keys names, so publishing needs no second conversion; an empty map
    /// is an empty non-terminal.
    names: HashMap<NameKey, NameSets>,
}

/// `RecordType` is not `Ord`; its numeric code is.
type RecordTypeKey = u16;

impl Table {
    /// Makes `name` exist (an empty non-terminal unless records are added).
    fn touch(&mut self, name: &Name) {
        self.touch_key(name_key(name));
    }

    /// [`Self::touch`] for a name whose key the caller has.
    fn touch_key(&mut self, key: NameKey) {
        self.names.entry(key).or_default();
    }

    fn add(&mut self, record: Record) {
        self.add_at(&name_key(&record.name), record, []);
    }

    /// Adds `record`, whose name has the index key `key`: for a caller adding many records at
    /// one name, which converts the name once.
    fn add_at(
        &mut self,
        key: &NameKey,
        record: Record,
        additionals: impl IntoIterator<Item = Record>,
    ) {
        let node = self.names.entry(key.clone()).or_default();
        let set = node.set_mut(u16::from(record.record_type()));
        set.records.insert(record, true);
        for add in additionals {
            set.additionals.insert(add, false);
        }
    }

    /// Makes the parents of every PTR name exist, down to their reverse zone's apex (one of
    /// `apexes`): they are empty non-terminals of the reverse zones. Walked on the keys, as
    /// they need no `Name`: a parent's key is a suffix of its child's.
    fn touch_reverse_parents(&mut self, apexes: &[NameKey]) {
        // A Service's addresses share most parents: a walk stops at a parent already seen,
        // whose own parents were seen with it.
        let mut parents = foldhash::HashSet::default();
        for (key, sets) in &self.names {
            if !sets.contains_key(&u16::from(RecordType::PTR)) {
                continue;
            }
            let Some(apex) = apexes.iter().find(|apex| key.ends_with(apex)) else {
                continue;
            };
            let mut parent = parent_key(key);
            while let Some(current) = parent.filter(|p| p.len() > apex.len()) {
                if !parents.insert(current) {
                    break;
                }
                parent = parent_key(current);
            }
        }
        let parents: Vec<NameKey> = parents.into_iter().map(NameKey::from).collect();
        for parent in parents {
            self.touch_key(parent);
        }
    }
}

/// The key of a name's parent: the key without its first label (`None` for the root).
fn parent_key(key: &[u8]) -> Option<&[u8]> {
    let length = usize::from(*key.first()?);
    if length == 0 {
        return None;
    }
    key.get(1 + length..)
}

fn address_record(name: Name, ttl: u32, ip: IpAddr) -> Record {
    let data = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(name, ttl, data)
}

fn soa(
    zone: &Name,
    primary: &Name,
    serial: u32,
    ttl: u32,
    negative_ttl: u32,
) -> Result<Record, ProtoError> {
    let mname = primary.prepend_label("dns")?.prepend_label("ns")?;
    let rname = primary.prepend_label("hostmaster")?;
    Ok(Record::from_rdata(
        zone.clone(),
        ttl,
        RData::SOA(SOA::new(
            mname,
            rname,
            serial,
            SOA_REFRESH,
            SOA_RETRY,
            SOA_EXPIRE,
            negative_ttl,
        )),
    ))
}

/// Builds the snapshot for `state` under `config`, with SOA serial `serial`, from scratch.
pub fn build(
    state: &ClusterState,
    config: &ZoneConfig,
    serial: u32,
) -> Result<Snapshot, ProtoError> {
    let mut builder = Builder::new(config.clone());
    builder.rebuild(state)?;
    builder.snapshot(state, serial, state.len())
}

/// What put a name into the index. Most names have one owner; reverse names and their parents
/// can have several (an address in two Services).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Owner {
    /// Apexes, `dns-version`, `svc.<zone>`, `pod.<zone>`: rebuilt at each snapshot (the serial).
    Zones,
    /// `<ns>.svc.<zone>` (and `<ns>.pod.<zone>`) while the namespace exists.
    Namespace(Namespace),
    /// Every name of one Service, and the PTR names of its addresses.
    Service(ServiceKey),
    /// `<ip>.<ns>.pod.<zone>` of one Pod (`--pods verified`).
    Pod(ObjectKey),
}

/// Keeps the index between changes and rebuilds only what a change touched.
///
/// The published index is a persistent map, so a snapshot shares every untouched name with the
/// previous one and a publish costs what the change costs, not what the cluster costs. Records
/// are kept once, encoded, in the index: what an owner contributes is a pure function of the
/// state, so the builder remembers only which names each owner had, and regenerates an owner's
/// records when a name it shares with a changed owner has to be merged again.
#[derive(Debug)]
pub struct Builder {
    config: ZoneConfig,
    /// The first zone: SOA/NS names of the reverse zones and PTR targets live under it.
    primary: Name,
    /// The apexes' records (they depend on the serial, not on the state).
    zones: Table,
    /// The index keys of the reverse zones' apexes.
    reverse_apexes: [NameKey; 2],
    /// The names each owner had at its last update, and the owners of each name.
    ownership: Ownership,
    names: Index,
    records: usize,
}

impl Builder {
    /// An empty index for `config`.
    pub fn new(config: ZoneConfig) -> Self {
        let primary = config.zones.first().cloned().unwrap_or_else(Name::root);
        Self {
            config,
            primary,
            zones: Table::default(),
            reverse_apexes: names::reverse_zones().map(|apex| name_key(&apex)),
            ownership: Ownership::default(),
            names: Index::default(),
            records: 0,
        }
    }

    /// Rebuilds every name of `state`.
    pub fn rebuild(&mut self, state: &ClusterState) -> Result<(), ProtoError> {
        let stale: Vec<Owner> = self
            .ownership
            .owners()
            .filter(|o| **o != Owner::Zones)
            .cloned()
            .collect();
        if stale.is_empty() {
            // A first build: about one name with records per object and zone, plus the PTR
            // names.
            let names = state.len().saturating_mul(self.config.zones.len() + 1);
            // Every Service and namespace, the zones, and each Pod with `--pods verified`.
            let mut owners = state.services().count() + state.namespaces().count() + 1;
            if self.config.pods == PodsMode::Verified {
                owners += state.pods().count();
            }
            self.ownership.reserve(names, owners);
            self.names.reserve(names);
        }
        let mut regenerated = HashMap::default();
        for owner in stale {
            self.set(owner, Table::default(), state, &mut regenerated)?;
        }
        // Every owner of the state, made one at a time (not a `Dirty` of every key first).
        let verified = self.config.pods == PodsMode::Verified;
        let owners = state
            .services()
            .map(|s| Owner::Service(s.key.clone()))
            .chain(state.namespaces().cloned().map(Owner::Namespace))
            .chain(
                state
                    .pods()
                    .filter(|_| verified)
                    .map(|p| Owner::Pod(p.key.clone())),
            );
        self.regenerate(state, owners)
    }

    /// Rebuilds the names of what `dirty` says changed.
    pub fn update(&mut self, state: &ClusterState, dirty: &Dirty) -> Result<(), ProtoError> {
        if dirty.everything {
            return self.rebuild(state);
        }
        let verified = self.config.pods == PodsMode::Verified;
        let owners = dirty
            .services
            .iter()
            .map(|key| Owner::Service(key.clone()))
            .chain(dirty.namespaces.iter().cloned().map(Owner::Namespace))
            .chain(
                dirty
                    .pods
                    .iter()
                    .filter(|_| verified)
                    .cloned()
                    .map(Owner::Pod),
            );
        self.regenerate(state, owners)
    }

    /// Replaces what each of `owners` contributes with what it contributes in `state`.
    fn regenerate(
        &mut self,
        state: &ClusterState,
        owners: impl Iterator<Item = Owner>,
    ) -> Result<(), ProtoError> {
        // Other owners' records regenerated during this update, each at most once.
        let mut regenerated = HashMap::default();
        for owner in owners {
            let table = self.table(&owner, state)?;
            regenerated.remove(&owner);
            self.set(owner, table, state, &mut regenerated)?;
        }
        Ok(())
    }

    /// What `owner` contributes in `state` (nothing for an object that is gone).
    fn table(&self, owner: &Owner, state: &ClusterState) -> Result<Table, ProtoError> {
        let ttl = self.config.ttl;
        let mut table = Table::default();
        match owner {
            Owner::Zones => table = self.zones.clone(),
            Owner::Service(key) => {
                if let Some(service) = state.service_by_key(key) {
                    let groups = state.endpoints(service);
                    for zone in &self.config.zones {
                        // An address has one name: reverse names point into the first zone
                        // only (as in CoreDNS), not one PTR per cluster domain.
                        let ptr = *zone == self.primary;
                        add_service(&mut table, service, &groups, zone, ttl, ptr)?;
                    }
                    table.touch_reverse_parents(&self.reverse_apexes);
                }
            }
            Owner::Namespace(namespace) => {
                if state.has_namespace(namespace) {
                    for zone in &self.config.zones {
                        table.touch(&names::namespace(namespace, zone)?);
                        if self.config.pods != PodsMode::Disabled {
                            table.touch(&names::pod_namespace(namespace, zone)?);
                        }
                    }
                }
            }
            Owner::Pod(key) => {
                if let Some(pod) = state.pod(key) {
                    for zone in &self.config.zones {
                        for ip in &pod.ips {
                            table.add(address_record(
                                names::pod(*ip, &pod.key.namespace, zone)?,
                                ttl,
                                *ip,
                            ));
                        }
                    }
                }
            }
        }
        Ok(table)
    }

    /// The current index as a snapshot with SOA serial `serial`: O(1) apart from the apexes.
    pub fn snapshot(
        &mut self,
        state: &ClusterState,
        serial: u32,
        objects: usize,
    ) -> Result<Snapshot, ProtoError> {
        let config = &self.config;
        let ttl = config.ttl;
        let mut table = Table::default();
        let mut zones = Vec::new();
        let mut apex = |table: &mut Table,
                        zone: &Name,
                        primary: &Name,
                        synthesize_pods: bool|
         -> Result<(), ProtoError> {
            let soa_record = soa(zone, primary, serial, ttl, config.negative_ttl)?;
            let mut negative_soa = soa_record.clone();
            negative_soa.ttl = config.negative_ttl;
            table.add(soa_record.clone());
            table.add(Record::from_rdata(
                zone.clone(),
                ttl,
                RData::NS(NS(primary.prepend_label("dns")?.prepend_label("ns")?)),
            ));
            zones.push(Zone {
                origin: LowerName::from(zone),
                soa: soa_record,
                negative_soa,
                synthesize_pods,
                ttl,
            });
            Ok(())
        };
        for zone in &config.zones {
            apex(&mut table, zone, zone, config.pods == PodsMode::Insecure)?;
            table.add(Record::from_rdata(
                zone.prepend_label("dns-version")?,
                SCHEMA_VERSION_TTL,
                RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_owned()])),
            ));
            table.touch(&names::svc_root(zone)?);
            table.touch(&names::pod_root(zone)?);
        }
        for reverse in names::reverse_zones() {
            apex(&mut table, &reverse, &self.primary, false)?;
        }
        zones.sort_by_key(|z| std::cmp::Reverse(z.origin.num_labels()));
        self.zones = table.clone();
        self.set(Owner::Zones, table, state, &mut HashMap::default())?;
        Ok(Snapshot {
            serial,
            zones,
            names: self.names.clone(),
            objects,
            records: self.records,
        })
    }

    /// Replaces what `owner` contributes with `table`, and recomputes every name it had or
    /// has. `regenerated` keeps other owners' tables made for merging, for the rest of the
    /// update.
    fn set(
        &mut self,
        owner: Owner,
        table: Table,
        state: &ClusterState,
        regenerated: &mut HashMap<Owner, Table>,
    ) -> Result<(), ProtoError> {
        // A key already in the index is shared, not stored again. Sorted, so the names the
        // owner no longer has are found by binary search.
        let mut entries: Vec<(NameKey, NameSets)> = table
            .names
            .into_iter()
            .map(|(key, sets)| {
                let key = self
                    .names
                    .get_key_value(&key)
                    .map_or(key, |(shared, _)| shared.clone());
                (key, sets)
            })
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let (records, empty): (Vec<&(NameKey, NameSets)>, Vec<_>) =
            entries.iter().partition(|(_, sets)| !sets.is_empty());
        let (old_records, old_empty) = self.ownership.replace(
            &owner,
            records.into_iter().map(|(key, _)| key.clone()).collect(),
            empty.into_iter().map(|(key, _)| key.clone()).collect(),
        );
        let changed = self.ownership.id(&owner);
        for key in old_records.iter().chain(&old_empty[..]) {
            if entries.binary_search_by(|(name, _)| name.cmp(key)).is_err() {
                self.recompute(key, NameSets::new(), changed, state, regenerated)?;
            }
        }
        for (key, sets) in entries {
            self.recompute(&key, sets, changed, state, regenerated)?;
        }
        Ok(())
    }

    /// Merges the records of a name's owners into its published node: `mine` for `changed`
    /// (the owner being set, `None` once it has no names), regenerated records for the others.
    fn recompute(
        &mut self,
        key: &NameKey,
        mine: NameSets,
        changed: Option<OwnerId>,
        state: &ClusterState,
        regenerated: &mut HashMap<Owner, Table>,
    ) -> Result<(), ProtoError> {
        let owners = self.ownership.of(key);
        let merged = match &owners[..] {
            [] => NameSets::new(),
            // The common case: one owner, whose records are taken as they are.
            [only] if Some(*only) == changed => mine,
            _ => {
                let mut merged = NameSets::new();
                for id in &owners {
                    let contribution = if Some(*id) == changed {
                        &mine
                    } else {
                        let owner = self.ownership.owner(*id).clone();
                        if !regenerated.contains_key(&owner) {
                            let other = self.table(&owner, state)?;
                            regenerated.insert(owner.clone(), other);
                        }
                        match regenerated[&owner].names.get(key) {
                            Some(sets) => sets,
                            None => continue,
                        }
                    };
                    for (record_type, set) in contribution {
                        let into = merged.set_mut(*record_type);
                        for record in &set.records.list {
                            into.records.insert(record.clone(), true);
                        }
                        for record in &set.additionals.list {
                            into.additionals.insert(record.clone(), false);
                        }
                    }
                }
                merged
            }
        };
        let exists = !owners.is_empty() || self.ownership.exists(key);
        let current = self.names.get(key);
        if exists && owners.is_empty() && current.is_some_and(|n| n.is_empty()) {
            // An empty non-terminal touched again: keep sharing the old node.
            return Ok(());
        }
        let new = exists.then(|| node(merged));
        if new.as_ref() == current {
            // Unchanged: keep sharing the old node.
            return Ok(());
        }
        // Counted before the move, rather than looked up again once inserted.
        let added = new.as_ref().map_or(0, Node::record_count);
        let previous = match new {
            None => self.names.remove(key),
            Some(new) => self.names.insert(key.clone(), new),
        };
        if let Some(previous) = previous {
            self.records -= previous.record_count();
        }
        self.records += added;
        Ok(())
    }
}

/// The record sets at one name, in type order. Most names have one set, so it is kept inline:
/// a `BTreeMap` allocated a node of over a kilobyte for each name of a build.
#[derive(Debug, Default, Clone)]
struct NameSets(smallvec::SmallVec<[(RecordTypeKey, PendingSet); 1]>);

impl NameSets {
    fn new() -> Self {
        Self::default()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn contains_key(&self, record_type: &RecordTypeKey) -> bool {
        self.0.iter().any(|(t, _)| t == record_type)
    }

    /// The set of `record_type`, added empty if there is none.
    fn set_mut(&mut self, record_type: RecordTypeKey) -> &mut PendingSet {
        let at = match self.0.binary_search_by_key(&record_type, |(t, _)| *t) {
            Ok(at) => at,
            Err(at) => {
                self.0.insert(at, (record_type, PendingSet::default()));
                at
            }
        };
        &mut self.0[at].1
    }

    fn into_values(self) -> impl Iterator<Item = PendingSet> {
        self.0.into_iter().map(|(_, set)| set)
    }
}

impl<'a> IntoIterator for &'a NameSets {
    type Item = (&'a RecordTypeKey, &'a PendingSet);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (RecordTypeKey, PendingSet)>,
        fn(&'a (RecordTypeKey, PendingSet)) -> (&'a RecordTypeKey, &'a PendingSet),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(t, set)| (t, set))
    }
}

/// A published node from merged record sets, each with its response pre-encoded.
fn node(sets: NameSets) -> Node {
    let sets: Vec<RecordSet> = sets
        .into_values()
        .filter(|set| !set.records.list.is_empty())
        .map(|set| RecordSet {
            record_type: set.records.list[0].record_type(),
            records: set.records.list,
            additionals: set.additionals.list,
        })
        .collect();
    // Every record of a node is owned by the node's name (the question of each answer).
    match sets.first().map(|set| set.records[0].name.clone()) {
        Some(name) => Node::new(&name, sets),
        None => Node::default(),
    }
}

/// The name an index key stands for.
fn key_name(key: &[u8]) -> Option<Name> {
    use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
    Name::read(&mut BinDecoder::new(key)).ok()
}

/// One SRV target: the host name and its addresses (borrowed from the endpoint or Service).
struct Target<'a> {
    name: Name,
    addresses: &'a [IpAddr],
}

fn srv_set(table: &mut Table, owner: &Name, candidates: &[(&Target<'_>, u16)], ttl: u32) {
    if candidates.is_empty() {
        return;
    }
    let key = name_key(owner);
    // `_<port>._<proto>.<svc>…` hangs below the empty non-terminal `_<proto>.<svc>…`.
    if let Some(parent) = key
        .get(1..)
        .filter(|labels| labels.starts_with(b"_"))
        .and_then(|_| parent_key(&key))
    {
        table.touch_key(NameKey::from(parent));
    }
    // Weight from the number of candidates before de-duplication, never 0 (coredns#3930).
    let weight = u16::try_from((100 / candidates.len()).max(1)).unwrap_or(1);
    for &(target, port) in candidates {
        // A duplicate (target, port) adds no record (the table keeps one copy of each), but its
        // addresses still go in the additional section: the same host can come from an IPv4 and
        // an IPv6 slice, each candidate carrying one family.
        let additionals = target
            .addresses
            .iter()
            .map(|ip| address_record(target.name.clone(), ttl, *ip));
        table.add_at(
            &key,
            Record::from_rdata(
                owner.clone(),
                ttl,
                RData::SRV(SRV::new(0, weight, port, target.name.clone())),
            ),
            additionals,
        );
    }
}

fn add_service(
    table: &mut Table,
    service: &Service,
    groups: &[EndpointGroup],
    zone: &Name,
    ttl: u32,
    ptr: bool,
) -> Result<(), ProtoError> {
    let service_name = names::service(&service.key, zone)?;
    match &service.kind {
        ServiceKind::ExternalName(target) => {
            let target = Name::from_ascii(format!("{target}."))?;
            table.add(Record::from_rdata(
                service_name,
                ttl,
                RData::CNAME(CNAME(target)),
            ));
        }
        ServiceKind::ClusterIp(ips) => {
            let service_key = name_key(&service_name);
            table.touch_key(service_key.clone());
            for ip in ips {
                table.add_at(
                    &service_key,
                    address_record(service_name.clone(), ttl, *ip),
                    [],
                );
                if ptr {
                    table.add(Record::from_rdata(
                        names::reverse(*ip),
                        ttl,
                        RData::PTR(PTR(service_name.clone())),
                    ));
                }
            }
            let target = Target {
                name: service_name,
                addresses: ips,
            };
            for port in &service.ports {
                if let Some(port_name) = &port.name {
                    let owner = names::srv(port_name, port.protocol, &target.name)?;
                    srv_set(table, &owner, &[(&target, port.port)], ttl);
                }
            }
            let all: Vec<_> = service.ports.iter().map(|p| (&target, p.port)).collect();
            srv_set(table, &target.name, &all, ttl);
        }
        ServiceKind::Headless => add_headless(table, &service_name, groups, ttl, ptr)?,
    }
    Ok(())
}

/// A published endpoint with its DNS name(s): one per address when it has no hostname.
struct Published<'a> {
    group: &'a EndpointGroup,
    /// Inline: most endpoints have one name.
    targets: smallvec::SmallVec<[Target<'a>; 1]>,
}

impl Published<'_> {
    /// The first label of the endpoint's first name, which orders peers.
    fn first_label(&self) -> &str {
        self.targets
            .first()
            .and_then(|t| t.name.iter().next())
            .and_then(|l| std::str::from_utf8(l).ok())
            .unwrap_or_default()
    }
}

fn add_headless(
    table: &mut Table,
    service_name: &Name,
    groups: &[EndpointGroup],
    ttl: u32,
    ptr: bool,
) -> Result<(), ProtoError> {
    let mut published: Vec<Published<'_>> = Vec::new();
    for group in groups {
        for endpoint in group.endpoints.iter().filter(|e| e.ready) {
            let targets = match &endpoint.hostname {
                Some(host) => smallvec::smallvec![Target {
                    name: names::endpoint(host, service_name)?,
                    addresses: &endpoint.addresses,
                }],
                None => endpoint
                    .addresses
                    .iter()
                    .map(|ip| {
                        Ok(Target {
                            name: names::dashed_endpoint(*ip, service_name)?,
                            addresses: std::slice::from_ref(ip),
                        })
                    })
                    .collect::<Result<_, ProtoError>>()?,
            };
            published.push(Published { group, targets });
        }
    }
    if published.is_empty() {
        // A headless Service with no ready endpoint does not exist in DNS (NXDOMAIN).
        return Ok(());
    }
    // Peers in StatefulSet ordinal order, so every answer lists them the same way.
    published.sort_by(|a, b| {
        names::ordinal_order(a.first_label()).cmp(&names::ordinal_order(b.first_label()))
    });

    let service_key = name_key(service_name);
    for endpoint in &published {
        for target in &endpoint.targets {
            let target_key = name_key(&target.name);
            for ip in target.addresses {
                table.add_at(
                    &service_key,
                    address_record(service_name.clone(), ttl, *ip),
                    [],
                );
                table.add_at(
                    &target_key,
                    address_record(target.name.clone(), ttl, *ip),
                    [],
                );
                if ptr {
                    table.add(Record::from_rdata(
                        names::reverse(*ip),
                        ttl,
                        RData::PTR(PTR(target.name.clone())),
                    ));
                }
            }
        }
    }

    // `_port._proto` SRV, one set per named port, across every group that has the port.
    let mut named: BTreeMap<(&str, crate::model::Protocol), Vec<(&Target, u16)>> = BTreeMap::new();
    let mut bare = Vec::new();
    for endpoint in &published {
        for port in &endpoint.group.ports {
            for target in &endpoint.targets {
                if let Some(name) = &port.name {
                    named
                        .entry((name, port.protocol))
                        .or_default()
                        .push((target, port.port));
                }
                bare.push((target, port.port));
            }
        }
    }
    for ((port_name, protocol), candidates) in named {
        let owner = names::srv(port_name, protocol, service_name)?;
        srv_set(table, &owner, &candidates, ttl);
    }
    srv_set(table, service_name, &bare, ttl);
    Ok(())
}

/// Every zone of the snapshot as RFC 1035 zone text (SOA first, then names in canonical
/// order), keyed by the zone's origin. Knot and BIND load it as it is.
pub fn zone_text(snapshot: &Snapshot) -> Vec<(Name, String)> {
    use std::fmt::Write;
    let mut zones: Vec<&Zone> = snapshot.zones.iter().collect();
    zones.sort_by_key(|z| Name::from(&z.origin));
    zones
        .into_iter()
        .map(|zone| {
            let origin = Name::from(&zone.origin);
            let mut names: Vec<(Name, &NameKey, &Node)> = snapshot
                .names
                .iter()
                .filter_map(|(key, node)| Some((key_name(key)?, key, node)))
                .filter(|(name, _, _)| {
                    snapshot
                        .zone_of(&LowerName::from(name))
                        .is_some_and(|z| z.origin == zone.origin)
                })
                .collect();
            names.sort_by(|a, b| a.0.cmp(&b.0));
            let mut text = format!(
                "; zone {origin} serial {}\n$ORIGIN {origin}\n",
                snapshot.serial
            );
            for (_, key, node) in names {
                let mut sets = node.sets(key);
                // SOA leads the zone.
                sets.sort_by_key(|s| (s.record_type != RecordType::SOA, u16::from(s.record_type)));
                for record in sets.iter().flat_map(|s| s.records.iter()) {
                    // Writing to a String cannot fail.
                    let _ = writeln!(text, "{}", presentation(record));
                }
            }
            (origin, text)
        })
        .collect()
}

/// One record in zone-file presentation form.
fn presentation(record: &Record) -> String {
    match &record.data {
        RData::TXT(txt) => {
            let strings: Vec<String> = txt
                .txt_data
                .iter()
                .map(|s| {
                    format!(
                        "\"{}\"",
                        String::from_utf8_lossy(s)
                            .replace('\\', "\\\\")
                            .replace('"', "\\\"")
                    )
                })
                .collect();
            format!(
                "{} {} {} TXT {}",
                record.name,
                record.ttl,
                record.dns_class,
                strings.join(" ")
            )
        }
        _ => record.to_string(),
    }
}

#[cfg(test)]
mod tests;
