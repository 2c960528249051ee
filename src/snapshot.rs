//! The immutable answer index, and its atomic publication.
//!
//! A [`Snapshot`] maps every name the server answers for to its record sets, with the
//! additional-section records of each set settled in advance. Empty non-terminals are names
//! too, so NXDOMAIN versus NODATA is a map lookup (RFC 8020). A query costs one
//! [`SnapshotReader::load`], one hash lookup and a few `Arc` clones: no lock, and nothing that
//! grows with the cluster.
//!
//! There is one [`SnapshotWriter`] (the app's reconciler) and any number of cheap
//! [`SnapshotReader`]s (the server's workers). Publishing swaps an `Arc` with `ArcSwap`, so
//! readers never wait for a writer.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use tokio::sync::watch;

use crate::records::names;

mod index;

pub use index::Index;

/// One record set and the records that go in the additional section with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSet {
    /// The type of every record in `records`.
    pub record_type: RecordType,
    /// The records, in answer order.
    pub records: Vec<Record>,
    /// A/AAAA of SRV targets and the like.
    pub additionals: Vec<Record>,
}

/// Everything a name has: its record sets (none for an empty non-terminal).
///
/// A set is kept once, as the response to a question for it, already in wire format (see
/// [`encode_answer`]) but without its question: the question is the name, which the index key
/// holds already, and every query brings it. The fast path copies the header, the query's
/// question and the rest; the general path puts the key back in and decodes records. Only a
/// set too big to encode alone keeps its records instead.
///
/// One allocation per name, shared by every snapshot that has the name unchanged: a thin
/// pointer to a table of the sets (`count`, then `type`, `length` per set, each a byte or
/// two) followed by the encoded responses back to back. A lookup reaches the table and the
/// answer's first bytes on one cache line.
#[derive(Clone, PartialEq, Eq)]
pub struct Node(triomphe::ThinArc<Oversized, u8>);

/// The sets of a [`Node`] too big for one DNS message, in type order (almost always none).
/// Behind a thin pointer: it sits in every node's header, where a boxed slice's length would
/// cost 8 bytes per name (2 MiB at 100k pods).
type Oversized = Option<Box<Vec<Arc<RecordSet>>>>;

/// Bytes of a set's entry in a [`Node`]'s table: its type and its response's length (u16s).
const SET_ENTRY: usize = 4;

/// The length a [`Node`]'s table gives an oversized set: an encoded response is never empty.
const OVERSIZED: u16 = 0;

impl Default for Node {
    /// An empty non-terminal.
    fn default() -> Self {
        Self(triomphe::ThinArc::from_header_and_slice(None, &[0]))
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.entries()
                    .map(|(record_type, form)| (record_type, form.len())),
            )
            .finish()
    }
}

/// Where a [`Node`]'s set is.
enum SetForm<'a> {
    /// The response, encoded.
    Wire(&'a [u8]),
    /// The records, for a set whose response does not fit a DNS message.
    Records(&'a Arc<RecordSet>),
}

impl SetForm<'_> {
    fn len(&self) -> usize {
        match self {
            Self::Wire(wire) => wire.len(),
            Self::Records(set) => set.records.len(),
        }
    }

    /// The set's records: decoded from the response to a question for `key`, or as kept.
    fn records(&self, key: &[u8], record_type: RecordType) -> Arc<RecordSet> {
        match self {
            Self::Wire(wire) => Arc::new(decode_answer(key, record_type, wire)),
            Self::Records(set) => Arc::clone(set),
        }
    }
}

/// A name as the index keys it: its wire form (length-prefixed labels, root last), lowercase.
/// The server looks names up straight from the packet bytes this way, without building a `Name`.
/// Shared by the index and the builder's bookkeeping, so each name is stored once; a thin
/// pointer (the length lives in the allocation), since hash tables hold one per name.
#[derive(Clone)]
pub struct NameKey(triomphe::ThinArc<(), u8>);

impl std::ops::Deref for NameKey {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0.slice
    }
}

impl std::borrow::Borrow<[u8]> for NameKey {
    fn borrow(&self) -> &[u8] {
        self
    }
}

/// Compared and hashed as its bytes, like the `[u8]` it borrows as.
impl PartialEq for NameKey {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for NameKey {}

impl std::hash::Hash for NameKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl PartialOrd for NameKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for NameKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

impl std::fmt::Debug for NameKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NameKey({:?})", String::from_utf8_lossy(self))
    }
}

impl From<&[u8]> for NameKey {
    fn from(bytes: &[u8]) -> Self {
        Self(triomphe::ThinArc::from_header_and_slice((), bytes))
    }
}

/// The index key of `name`.
pub fn name_key(name: &Name) -> NameKey {
    let mut key = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        // Labels are at most 63 octets (hickory enforces it), so the length fits one byte.
        key.push(u8::try_from(label.len()).unwrap_or(63));
        key.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    key.push(0);
    NameKey::from(&key[..])
}

/// The whole response to a question for `name`/`set.record_type`, in wire format, as the
/// server's general path encodes it (id 0, QR and AA set, RD clear, no OPT record): the
/// question in lowercase, the set's records as answers (their owner compressed to the
/// question), its additional records. A [`Node`] keeps it without the question; the fast path
/// writes it back with the query's id, RD and question (which echoes the client's letter
/// case), and appends an OPT record.
/// A set too big for one message comes back as it went in (hickory's encoder cuts such a
/// message short and sets TC rather than failing: what is cut depends on the transport, so the
/// general path does it per query).
pub fn encode_answer(name: &Name, set: RecordSet) -> Result<Box<[u8]>, RecordSet> {
    use std::cell::RefCell;

    use hickory_proto::op::{MessageType, Metadata, OpCode, Query, emit_message_parts};
    use hickory_proto::serialize::binary::BinEncoder;

    thread_local! {
        /// Where this thread encodes: a build encodes every set of every name, and a fresh
        /// 512-byte `Vec` per answer, shrunk to fit afterwards, was two allocations each. (The
        /// `BinEncoder` itself cannot be kept: its count of compressed names never resets.)
        static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    // What `Message::to_vec` emits for such a message, without building the `Message`.
    let mut metadata = Metadata::new(0, MessageType::Response, OpCode::Query);
    metadata.authoritative = true;
    let question = Query::query(name.to_lowercase(), set.record_type);
    let encoded = BUFFER.with_borrow_mut(|buffer| {
        buffer.clear();
        let header = emit_message_parts(
            &metadata,
            &mut std::iter::once(&question),
            &mut set.records.iter(),
            &mut std::iter::empty::<&Record>(),
            &mut set.additionals.iter(),
            None,
            None,
            &mut BinEncoder::new(buffer),
        )
        .ok()?;
        // hickory truncates what does not fit 64 KiB (and sets TC) rather than failing: such a
        // response is not the set, which is kept as records instead.
        (!header.metadata.truncation).then(|| Box::from(buffer.as_slice()))
    });
    encoded.ok_or(set)
}

/// The header of a DNS message: the question follows it.
pub const HEADER_LEN: usize = 12;

/// The bytes of the question of a message [`encode_answer`] made: its name (uncompressed, as
/// the first name of a message always is), type and class.
fn question_len(message: &[u8]) -> usize {
    let mut at = HEADER_LEN;
    while let Some(&len) = message.get(at).filter(|&&len| len != 0) {
        at += 1 + usize::from(len);
    }
    at + 1 + 4 - HEADER_LEN
}

/// The record set a stored answer for `key` holds: the inverse of [`encode_answer`] and of
/// [`Node::new`] leaving the question out.
fn decode_answer(key: &[u8], record_type: RecordType, stored: &[u8]) -> RecordSet {
    let (header, sections) = stored.split_at(HEADER_LEN.min(stored.len()));
    let mut wire = Vec::with_capacity(stored.len() + key.len() + 4);
    wire.extend_from_slice(header);
    wire.extend_from_slice(key);
    wire.extend_from_slice(&u16::from(record_type).to_be_bytes());
    wire.extend_from_slice(&u16::from(hickory_proto::rr::DNSClass::IN).to_be_bytes());
    wire.extend_from_slice(sections);
    // The bytes were encoded by `encode_answer` from valid records: they decode.
    let message = hickory_proto::op::Message::from_vec(&wire).ok();
    let (records, additionals) =
        message.map_or_else(Default::default, |m| (m.answers, m.additionals));
    RecordSet {
        record_type,
        records,
        additionals,
    }
}

impl Node {
    /// A node for `name` with `sets` (types in the order given), each encoded once and kept
    /// without its question.
    pub fn new(name: &Name, sets: Vec<RecordSet>) -> Self {
        // Fewer than 256 types exist at one name in practice (a handful do).
        let count = u8::try_from(sets.len()).unwrap_or(u8::MAX);
        let mut table = vec![count];
        let mut wires = Vec::new();
        let mut oversized = Vec::new();
        for set in sets.into_iter().take(usize::from(count)) {
            let record_type = u16::from(set.record_type);
            let encoded = encode_answer(name, set).map(|wire| {
                let question = HEADER_LEN..HEADER_LEN + question_len(&wire);
                // A message is under 64 KiB, the more so without its question.
                let length = u16::try_from(wire.len() - question.len()).unwrap_or(u16::MAX);
                (wire, question, length)
            });
            let length = match encoded {
                Ok((wire, question, length)) => {
                    wires.extend_from_slice(&wire[..question.start]);
                    wires.extend_from_slice(&wire[question.end..]);
                    length
                }
                Err(set) => {
                    oversized.push(Arc::new(set));
                    OVERSIZED
                }
            };
            table.extend_from_slice(&record_type.to_le_bytes());
            table.extend_from_slice(&length.to_le_bytes());
        }
        table.extend_from_slice(&wires);
        let oversized = (!oversized.is_empty()).then(|| Box::new(oversized));
        Self(triomphe::ThinArc::from_header_and_slice(oversized, &table))
    }

    /// The table of the sets: an entry of [`SET_ENTRY`] bytes per set, and the encoded
    /// responses after it.
    /// (The types as their codes: a query compares codes rather than convert each.)
    fn table(&self) -> (impl Iterator<Item = (u16, usize)> + '_, &[u8]) {
        let bytes = &self.0.slice;
        let count = usize::from(bytes[0]);
        let (table, wires) = bytes[1..].split_at(count * SET_ENTRY);
        let entries = table.chunks_exact(SET_ENTRY).map(|entry| {
            let record_type = u16::from_le_bytes([entry[0], entry[1]]);
            (
                record_type,
                usize::from(u16::from_le_bytes([entry[2], entry[3]])),
            )
        });
        (entries, wires)
    }

    /// Every set: its type and where it is.
    fn entries(&self) -> impl Iterator<Item = (RecordType, SetForm<'_>)> {
        let (table, mut wires) = self.table();
        let mut oversized = self.0.header.header.iter().flat_map(|sets| sets.iter());
        table.filter_map(move |(record_type, length)| {
            let form = if length == usize::from(OVERSIZED) {
                SetForm::Records(oversized.next()?)
            } else {
                let (wire, rest) = wires.split_at(length);
                wires = rest;
                SetForm::Wire(wire)
            };
            Some((RecordType::from(record_type), form))
        })
    }

    /// The encoded response of the set of type `wanted`: what a query reads, so it walks the
    /// table alone (an oversized set's length is 0, so the offsets still add up).
    fn wire_of(&self, wanted: u16) -> Option<&[u8]> {
        let (table, wires) = self.table();
        let mut start = 0;
        for (record_type, length) in table {
            if length != usize::from(OVERSIZED) && wanted == record_type {
                return wires.get(start..start + length);
            }
            start += length;
        }
        None
    }

    /// Whether the name has no records (an empty non-terminal).
    pub fn is_empty(&self) -> bool {
        self.0.slice[0] == 0
    }

    /// How many records the node answers with.
    pub fn record_count(&self) -> usize {
        self.entries()
            .map(|(_, form)| match form {
                // ANCOUNT of the encoded response.
                SetForm::Wire(wire) => usize::from(u16::from_be_bytes([wire[6], wire[7]])),
                SetForm::Records(set) => set.records.len(),
            })
            .sum()
    }

    fn find(&self, record_type: RecordType) -> Option<SetForm<'_>> {
        self.entries()
            .find(|(t, _)| *t == record_type)
            .map(|(_, form)| form)
    }

    /// The set of `record_type`, if the name has one; `key` is the node's name (its index
    /// key), which the stored answers leave out.
    pub fn get(&self, key: &[u8], record_type: RecordType) -> Option<Arc<RecordSet>> {
        self.find(record_type)
            .map(|form| form.records(key, record_type))
    }

    /// Every set of the name `key`, in type order.
    pub fn sets(&self, key: &[u8]) -> Vec<Arc<RecordSet>> {
        self.entries()
            .map(|(record_type, form)| form.records(key, record_type))
            .collect()
    }

    /// The pre-encoded response for `record_type`, if the name has that set and it fits one
    /// message: its header and then its answer and additional sections (the question, which
    /// goes between them, is left out).
    pub fn wire(&self, record_type: RecordType) -> Option<&[u8]> {
        self.wire_of(u16::from(record_type))
    }
}

/// A zone the server is authoritative for.
#[derive(Debug, Clone)]
pub struct Zone {
    /// The zone's apex.
    pub origin: LowerName,
    /// The SOA as answered at the apex.
    pub soa: Record,
    /// The SOA for the authority section of negative answers: its TTL is the negative TTL.
    pub negative_soa: Record,
    /// Whether `<ip>.<ns>.pod.<zone>` names are synthesized (`--pods insecure`).
    pub synthesize_pods: bool,
    /// TTL of synthesized pod records.
    pub ttl: u32,
}

/// The result of looking a question up.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// NOERROR, NXDOMAIN or REFUSED.
    pub response_code: ResponseCode,
    /// Answer record sets, in order (a CNAME chain first).
    pub answers: Vec<Arc<RecordSet>>,
    /// The SOA for the authority section of a negative answer.
    pub soa: Option<Record>,
    /// Whether the server is authoritative for the name.
    pub authoritative: bool,
}

impl Outcome {
    fn refused() -> Self {
        Self {
            response_code: ResponseCode::Refused,
            answers: Vec::new(),
            soa: None,
            authoritative: false,
        }
    }
}

/// Follow at most this many in-zone CNAMEs, so a loop of ExternalNames cannot spin.
const MAX_CNAME_CHAIN: usize = 8;

/// An immutable index of every answer, built by [`records::build`](crate::records::build).
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The SOA serial of this snapshot.
    pub serial: u32,
    /// Served zones, longest origin first so the first match is the closest enclosing zone.
    pub zones: Vec<Zone>,
    /// Every name, with its record sets: shared with the previous snapshot wherever nothing
    /// changed.
    pub names: Index,
    /// How many objects the state held.
    pub objects: usize,
    /// How many records the snapshot serves (additional copies not counted).
    pub records: usize,
}

impl Snapshot {
    /// The served zone that encloses `name`, if any.
    pub fn zone_of(&self, name: &LowerName) -> Option<&Zone> {
        self.zones.iter().find(|z| z.origin.zone_of(name))
    }

    /// How many records the snapshot serves (additional copies not counted).
    pub fn record_count(&self) -> usize {
        self.records
    }

    /// Answers one question.
    pub fn lookup(&self, name: &LowerName, query_type: RecordType) -> Outcome {
        let Some(zone) = self.zone_of(name) else {
            return Outcome::refused();
        };
        let mut outcome = Outcome {
            response_code: ResponseCode::NoError,
            answers: Vec::new(),
            soa: None,
            authoritative: true,
        };
        let mut current = name.clone();
        let mut current_zone = zone;
        for _ in 0..=MAX_CNAME_CHAIN {
            let key = name_key(&Name::from(&current));
            let Some(node) = self.names.get(&key) else {
                if let Some(set) = synthesize_pod(current_zone, &current, query_type, self) {
                    match set {
                        Some(set) => outcome.answers.push(set),
                        None => outcome.soa = Some(current_zone.negative_soa.clone()),
                    }
                    return outcome;
                }
                outcome.response_code = ResponseCode::NXDomain;
                outcome.soa = Some(current_zone.negative_soa.clone());
                return outcome;
            };
            if query_type == RecordType::ANY {
                outcome.answers.extend(node.sets(&key));
                if node.is_empty() {
                    outcome.soa = Some(current_zone.negative_soa.clone());
                }
                return outcome;
            }
            if let Some(set) = node.get(&key, query_type) {
                outcome.answers.push(set);
                return outcome;
            }
            let Some(cname) = node.get(&key, RecordType::CNAME) else {
                outcome.soa = Some(current_zone.negative_soa.clone());
                return outcome;
            };
            outcome.answers.push(cname.clone());
            let Some(RData::CNAME(target)) = cname.records.first().map(|r| &r.data) else {
                return outcome;
            };
            current = LowerName::from(&target.0);
            // A loop of ExternalNames: each CNAME is listed once, and the resolver gives up.
            if outcome.answers.iter().any(|set| {
                set.records
                    .iter()
                    .any(|r| LowerName::from(&r.name) == current)
            }) {
                return outcome;
            }
            match self.zone_of(&current) {
                Some(zone) => current_zone = zone,
                // Out of our zones: the resolver follows the CNAME itself.
                None => return outcome,
            }
        }
        outcome
    }
}

/// `--pods insecure`: answers `<a-b-c-d>.<ns>.pod.<zone>` for any IP-shaped first label when
/// the namespace exists. `None` when the name is not such a name; `Some(None)` for NODATA.
fn synthesize_pod(
    zone: &Zone,
    name: &LowerName,
    query_type: RecordType,
    snapshot: &Snapshot,
) -> Option<Option<Arc<RecordSet>>> {
    if !zone.synthesize_pods {
        return None;
    }
    let ip = names::parse_pod_name(name, &zone.origin)?;
    // The namespace must exist: `<ns>.pod.<zone>` is a node when it does.
    let parent = LowerName::from(Name::from(name).base_name());
    snapshot.names.get(&name_key(&Name::from(&parent)))?;
    let owner = Name::from(name);
    let record = match (ip, query_type) {
        (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => {
            Record::from_rdata(owner, zone.ttl, RData::A(A(v4)))
        }
        (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => {
            Record::from_rdata(owner, zone.ttl, RData::AAAA(AAAA(v6)))
        }
        _ => return Some(None),
    };
    Some(Some(Arc::new(RecordSet {
        record_type: record.record_type(),
        records: vec![record],
        additionals: Vec::new(),
    })))
}

/// The single writer: publishes snapshots and keeps the serial increasing.
#[derive(Debug)]
pub struct SnapshotWriter {
    current: Arc<ArcSwapOption<Snapshot>>,
    published: watch::Sender<u32>,
}

/// A cheap, cloneable handle for reading the current snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotReader {
    current: Arc<ArcSwapOption<Snapshot>>,
    published: watch::Receiver<u32>,
}

/// A new writer/reader pair with nothing published: until the first publish, the reader
/// reports not ready and the server answers SERVFAIL in its zones.
pub fn channel() -> (SnapshotWriter, SnapshotReader) {
    let current = Arc::new(ArcSwapOption::empty());
    let (tx, rx) = watch::channel(0);
    (
        SnapshotWriter {
            current: current.clone(),
            published: tx,
        },
        SnapshotReader {
            current,
            published: rx,
        },
    )
}

impl SnapshotWriter {
    /// Makes `snapshot` the one every new query sees.
    pub fn publish(&self, snapshot: Snapshot) {
        let serial = snapshot.serial;
        self.current.store(Some(Arc::new(snapshot)));
        self.published.send_replace(serial);
    }

    /// The serial of the current snapshot, if any.
    pub fn serial(&self) -> Option<u32> {
        self.current.load().as_ref().map(|s| s.serial)
    }
}

impl SnapshotReader {
    /// The current snapshot, or `None` before the first complete state.
    pub fn load(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    /// Runs `f` on the current snapshot for one query: arc-swap's guard, no lock and no write
    /// to memory shared with other threads.
    pub fn with_current<R>(&self, f: impl FnOnce(Option<&Snapshot>) -> R) -> R {
        let guard = self.current.load();
        f(guard.as_deref())
    }

    /// Whether a first snapshot has been published.
    pub fn is_ready(&self) -> bool {
        self.current.load().is_some()
    }

    /// Waits until a snapshot has been published (like kube's `wait_until_ready`).
    pub async fn ready(&mut self) {
        // An error means the writer is gone; there is nothing more to wait for then.
        let _ = self
            .published
            .wait_for(|_| self.current.load().is_some())
            .await;
    }

    /// Waits until a snapshot with a serial other than `serial` is published.
    pub async fn changed_from(&mut self, serial: u32) {
        let _ = self.published.wait_for(|s| *s != serial).await;
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn a_node_header_holds_one_pointer_for_its_oversized_sets() {
        // Every name pays for it; a boxed slice here was 8 bytes more per node.
        assert_eq!(size_of::<Oversized>(), size_of::<usize>());
    }

    fn set(name: &Name, data: impl Iterator<Item = RData>) -> RecordSet {
        let records: Vec<Record> = data
            .map(|data| Record::from_rdata(name.clone(), 30, data))
            .collect();
        RecordSet {
            record_type: records[0].record_type(),
            records,
            additionals: Vec::new(),
        }
    }

    /// An oversized set has length 0 in the table: the offsets of the encoded sets after it
    /// must still add up.
    #[test]
    fn a_set_too_big_for_a_message_is_kept_as_records_beside_encoded_ones() {
        let name = Name::from_ascii("big.default.svc.cluster.local.").expect("valid name");
        // 5,000 A records take over 200 KB: more than a DNS message holds.
        let big = set(
            &name,
            (0..5000u32).map(|i| RData::A(A(Ipv4Addr::from(0x0a00_0000 + i)))),
        );
        let small = set(
            &name,
            std::iter::once(RData::AAAA(AAAA(Ipv6Addr::LOCALHOST))),
        );
        let text = hickory_proto::rr::rdata::TXT::new(vec!["x".to_owned()]);
        let txt = set(&name, std::iter::once(RData::TXT(text)));
        let node = Node::new(&name, vec![big.clone(), small.clone(), txt.clone()]);

        assert!(!node.is_empty());
        assert_eq!(node.record_count(), 5002);
        let key = name_key(&name);
        assert!(node.wire(RecordType::A).is_none(), "too big to encode");
        assert_eq!(node.get(&key, RecordType::A).as_deref(), Some(&big));
        let aaaa = node.wire(RecordType::AAAA).expect("encoded");
        assert_eq!(decode_answer(&key, RecordType::AAAA, aaaa), small);
        assert_eq!(node.get(&key, RecordType::TXT).as_deref(), Some(&txt));
        let types: Vec<RecordType> = node.sets(&key).iter().map(|s| s.record_type).collect();
        assert_eq!(types, [RecordType::A, RecordType::AAAA, RecordType::TXT]);
        assert!(node.get(&key, RecordType::SRV).is_none() && node.wire(RecordType::SRV).is_none());
    }

    #[test]
    fn an_empty_non_terminal_has_no_sets() {
        let node = Node::default();
        assert!(node.is_empty());
        assert_eq!(node.record_count(), 0);
        assert!(node.sets(&[0]).is_empty());
    }
}
