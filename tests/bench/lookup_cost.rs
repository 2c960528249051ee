//! What one query and one publish cost in instructions and cache misses, for valgrind: counts
//! that other load on the machine does not disturb, unlike criterion's wall-clock figures.
//!
//! The cluster is the propagation bench's (10 namespaces of headless Services with 3 ready Pods
//! each, as model objects), built once with `records::build`. Then, each in its own function so
//! callgrind can collect it alone (`--toggle-collect`):
//!
//! - `warm`: every Pod's A query through `Responder::respond` once (the fast path), in a
//!   shuffled order: not counted, it settles the caches;
//! - `index_gets`: [`QUERIES`] lookups of Pod names in the index alone (`names.get` of the
//!   wire-form key), each name once, in another shuffled order;
//! - `responds`: the same names' A queries through `Responder::respond`;
//! - `publishes`: [`FLIPS`] publishes of one Pod's Ready flip through `Reconciler::apply` (the
//!   state, the touched Service's names, the snapshot, the swap and the old snapshot's drop).
//!
//! Run it with the size as the argument (`3k` or `100k`), e.g.
//!
//! ```sh
//! cargo bench --bench lookup_cost --no-run
//! valgrind --tool=callgrind --cache-sim=yes --collect-atstart=no \
//!   --toggle-collect='lookup_cost::index_gets' --toggle-collect='lookup_cost::responds' \
//!   --toggle-collect='lookup_cost::publishes' target/release/deps/lookup_cost-<hash> 100k
//! callgrind_annotate --inclusive=yes callgrind.out.<pid> | grep lookup_cost::
//! ```
//!
//! and divide each function's counts by the number of calls it printed. With
//! `LOOKUP_COST_MEMORY=1` (and `MIMALLOC_PURGE_DELAY=0`) it prints instead what the index's own
//! structure takes, and exits.

#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use stsdns::app::{self, Reconciler, SerialStore};
use stsdns::config::ZoneConfig;
use stsdns::feed::event::{Event, SourceEvent, SourceId};
use stsdns::model::{Object, Pod};
use stsdns::server::{Responder, Transport};
use stsdns::snapshot::{self, NameKey, name_key};

mod cluster;
use cluster::{SIZES, XorShift, cluster, first_list, origin};

/// The server's allocator: where it puts keys, nodes and answers decides which share a cache
/// line.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Queries counted per run (at most one per Pod).
const QUERIES: usize = 20_000;
/// Publishes counted per run.
const FLIPS: usize = 200;

/// `0..n` in a random order.
fn shuffled(rng: &mut XorShift, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order
}

/// An A query for `name` as a resolver sends it (EDNS, 1232-byte buffer).
fn query(name: &Name) -> Vec<u8> {
    let mut message = Message::new(0x5151, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name.clone(), RecordType::A));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    message.set_edns(edns);
    message.to_vec().unwrap()
}

#[inline(never)]
fn warm(handler: &Responder, queries: &[Vec<u8>], out: &mut Vec<u8>) -> usize {
    queries
        .iter()
        .map(|q| usize::from(handler.respond(q, Transport::Udp, out)))
        .sum()
}

#[inline(never)]
fn index_gets(names: &snapshot::Index, keys: &[NameKey]) -> usize {
    keys.iter()
        .map(|k| usize::from(names.get(&k[..]).is_some()))
        .sum()
}

/// Counts answer bytes, unlike [`warm`], so the two are not folded into one function.
#[inline(never)]
fn responds(handler: &Responder, queries: &[Vec<u8>], out: &mut Vec<u8>) -> usize {
    queries
        .iter()
        .map(|q| {
            assert!(handler.respond(q, Transport::Udp, out));
            out.len()
        })
        .sum()
}

#[inline(never)]
fn publishes(
    runtime: &tokio::runtime::Runtime,
    reconciler: &mut Reconciler,
    flips: Vec<Vec<SourceEvent>>,
) -> usize {
    flips
        .into_iter()
        .map(|batch| usize::from(runtime.block_on(reconciler.apply(batch)).unwrap().is_some()))
        .sum()
}

/// `VmRSS` of the process, in kB.
fn resident_kb() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// What the index's own structure takes (keys and nodes are shared, not counted): a copy is
/// built entry by entry and the resident memory compared. Run with `MIMALLOC_PURGE_DELAY=0`
/// so freed memory leaves at once.
fn index_memory(names: &snapshot::Index, label: &str) {
    let before = resident_kb();
    let mut copy = snapshot::Index::default();
    for (key, node) in names.iter() {
        copy.insert(key.clone(), node.clone());
    }
    let after = resident_kb();
    eprintln!(
        "{label}: {} names; a copy of the index takes {} kB ({:.1} bytes per name)",
        copy.len(),
        after - before,
        (after - before) as f64 * 1024.0 / copy.len() as f64
    );
}

fn main() {
    let label = std::env::args().nth(1).unwrap_or_else(|| "3k".to_owned());
    let size = SIZES
        .iter()
        .find(|s| s.label == label)
        .unwrap_or_else(|| panic!("unknown size {label}: 1k, 3k, 10k, 30k or 100k"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (services, pods) = cluster(size);
    let pods: Vec<(Pod, Name)> = pods
        .into_iter()
        .map(|(pod, host)| (pod, Name::from_ascii(&host).unwrap()))
        .collect();
    let (writer, reader) = snapshot::channel();
    let zone = ZoneConfig::default();
    let bulk = SourceId::new("bulk");
    let serials = runtime.block_on(SerialStore::open(None)).unwrap();
    let mut reconciler = Reconciler::new(zone.clone(), writer, vec![bulk.clone()], serials);
    let send = |event| SourceEvent {
        source: bulk.clone(),
        event,
    };
    let list = first_list(&bulk, &services, pods.iter().map(|(p, _)| p));
    runtime.block_on(reconciler.apply(list)).unwrap().unwrap();
    let handler = Responder::new(reader.clone(), app::served_zones(&zone));
    if std::env::var_os("LOOKUP_COST_MEMORY").is_some() {
        index_memory(&reader.load().unwrap().names, &label);
        return;
    }

    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let all: Vec<Vec<u8>> = shuffled(&mut rng, pods.len())
        .into_iter()
        .map(|i| query(&pods[i].1))
        .collect();
    let picked: Vec<usize> = shuffled(&mut rng, pods.len())
        .into_iter()
        .take(QUERIES)
        .collect();
    let keys: Vec<NameKey> = picked.iter().map(|&i| name_key(&pods[i].1)).collect();
    let queries: Vec<Vec<u8>> = picked.iter().map(|&i| query(&pods[i].1)).collect();
    let mut ready = vec![true; pods.len()];
    let flips: Vec<Vec<SourceEvent>> = (0..FLIPS)
        .map(|_| {
            let index = rng.below(pods.len());
            ready[index] = !ready[index];
            let mut pod = pods[index].0.clone();
            pod.ready = ready[index];
            vec![send(Event::Apply(Object::from(pod), origin()))]
        })
        .collect();
    let mut out = Vec::with_capacity(65_535);

    let snapshot = reader.load().unwrap();
    let warmed = warm(&handler, &all, &mut out);
    let found = index_gets(&snapshot.names, &keys);
    let bytes = responds(&handler, &queries, &mut out);
    let answered = queries.len();
    drop(snapshot);
    let published = publishes(&runtime, &mut reconciler, flips);
    assert_eq!((warmed, found), (all.len(), keys.len()));
    assert_eq!(published, FLIPS);
    eprintln!(
        "{label}: {} pods, {} names; warm {warmed}, index_gets {found}, responds {answered} \
         ({bytes} bytes), publishes {published}",
        pods.len(),
        reader.load().unwrap().names.len(),
    );
}
