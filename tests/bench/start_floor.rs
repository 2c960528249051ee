//! How close a 100k-Pod start is to the least the crates we build on need for it.
//!
//! The issue's start goal is Knot's zone load (0.82 s here, `dnsperf.sh --pods 100000`). Any
//! start that reads the cluster as Kubernetes JSON through `k8s-openapi` and answers in wire
//! format from `hickory-proto` does at least three things on its one core: reads the file,
//! deserializes every item into its `k8s-openapi` type, and encodes every answer once. This
//! bench times those three alone, then stsdns's own load and build of the same file, in one
//! process, one after the other, for a few rounds:
//!
//! - `read`: `std::fs::read_to_string` of the file;
//! - `k8s-openapi`: every List item into its type (`Pod`, `Service`, `EndpointSlice`,
//!   `StatefulSet`) with `serde_json::from_str`, and dropped. Finding the items and their kinds
//!   first (`split`, one `serde_json` pass) is not counted: the floor is generous;
//! - `hickory`: `snapshot::encode_answer` of every record set of the built snapshot (the sets
//!   are decoded first, not counted);
//! - `stsdns load`: `app::load` of the file (read, convert, insert, diagnose), as `stsdns check`
//!   does; `stsdns build`: `records::build` of that state.
//!
//! ```sh
//! python3 tests/bench/gen_cluster.py --pods 100000 --out /tmp/b100k
//! cargo bench --bench start_floor --no-run
//! taskset -c 1 cargo bench --bench start_floor -- /tmp/b100k/feed/cluster-000.json 3
//! ```
//!
//! The file must be one JSON List (what `gen_cluster.py` writes); the last argument is the
//! number of rounds (default 3). Medians last. Without a file (as `cargo test --all-targets`
//! runs it) it takes one round of a small List of its own, so the suite keeps it working.

#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::value::RawValue;
use stsdns::config::{FeedSource, ZoneConfig};
use stsdns::snapshot::{RecordSet, encode_answer};
use stsdns::{app, records};

/// The server's allocator, so both sides allocate as `stsdns serve` does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A List's items, each kept as its text.
#[derive(serde::Deserialize)]
struct List {
    items: Vec<Box<RawValue>>,
}

/// The one field the split reads of an item.
#[derive(serde::Deserialize)]
struct Kind {
    kind: String,
}

/// One round's times.
#[derive(Default, Clone, Copy)]
struct Round {
    read: Duration,
    split: Duration,
    typed: Duration,
    encode: Duration,
    load: Duration,
    build: Duration,
}

impl Round {
    fn floor(&self) -> Duration {
        self.read + self.typed + self.encode
    }
    fn stsdns(&self) -> Duration {
        self.load + self.build
    }
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let value = f();
    (value, started.elapsed())
}

/// Every item into its `k8s-openapi` type; returns how many were of a kind stsdns reads.
#[inline(never)]
fn deserialize_items(items: &[(String, Box<RawValue>)]) -> usize {
    let mut read = 0;
    for (kind, item) in items {
        let text = item.get();
        let known = match kind.as_str() {
            "Pod" => black_box(serde_json::from_str::<Pod>(text)).is_ok(),
            "Service" => black_box(serde_json::from_str::<Service>(text)).is_ok(),
            "EndpointSlice" => black_box(serde_json::from_str::<EndpointSlice>(text)).is_ok(),
            "StatefulSet" => black_box(serde_json::from_str::<StatefulSet>(text)).is_ok(),
            _ => false,
        };
        read += usize::from(known);
    }
    read
}

/// Every set encoded once; returns the bytes encoded.
#[inline(never)]
fn encode_sets(sets: Vec<(hickory_proto::rr::Name, RecordSet)>) -> usize {
    sets.into_iter()
        .map(|(name, set)| encode_answer(&name, set).map_or(0, |wire| black_box(wire).len()))
        .sum()
}

fn round(file: &PathBuf) -> Round {
    let mut times = Round::default();

    let (text, read) = timed(|| std::fs::read_to_string(file).unwrap());
    times.read = read;
    let (items, split) = timed(|| {
        let list: List = serde_json::from_str(&text).expect("the file is one JSON List");
        list.items
            .into_iter()
            .map(|item| (serde_json::from_str::<Kind>(item.get()).unwrap().kind, item))
            .collect::<Vec<_>>()
    });
    times.split = split;
    drop(text);
    let (known, typed) = timed(|| deserialize_items(&items));
    times.typed = typed;
    assert_eq!(known, items.len(), "every item is of a kind stsdns reads");
    drop(items);

    let (loaded, load) = timed(|| app::load(&[FeedSource::Path(file.clone())]).unwrap());
    times.load = load;
    assert_eq!(loaded.errors(), 0, "the feed loads without errors");
    assert_eq!(loaded.state.len(), known, "stsdns loaded every item");
    let zone = ZoneConfig::default();
    let (snapshot, build) = timed(|| records::build(&loaded.state, &zone, 1).unwrap());
    times.build = build;

    let sets: Vec<_> = snapshot
        .names
        .iter()
        .flat_map(|(key, node)| node.sets(key))
        .map(|set| {
            let set = std::sync::Arc::unwrap_or_clone(set);
            (set.records[0].name.clone(), set)
        })
        .collect();
    drop(snapshot);
    drop(loaded);
    let (bytes, encode) = timed(|| encode_sets(sets));
    times.encode = encode;
    assert!(bytes > 0);
    times
}

/// A List of `services` headless Services with 3 ready Pods each, shaped as `gen_cluster.py`
/// writes them.
fn small_list(services: usize) -> String {
    use serde_json::json;
    let mut items = Vec::new();
    for s in 0..services {
        let name = format!("svc-{s:04}");
        items.push(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "ns-00", "labels": {"app": name}},
            "spec": {"clusterIP": "None", "selector": {"app": name},
                     "ports": [{"name": "web", "port": 80, "protocol": "TCP", "targetPort": 80}]},
        }));
        for i in 0..3 {
            let pod = format!("{name}-{i}");
            let ip = format!("10.1.{}.{}", s / 80, (s % 80) * 3 + i + 1);
            items.push(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod, "namespace": "ns-00",
                             "labels": {"app": name, "statefulset.kubernetes.io/pod-name": pod}},
                "spec": {"hostname": pod, "subdomain": name, "containers": [{"name": "web",
                         "image": "nginx", "ports": [{"containerPort": 80, "name": "web"}]}]},
                "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                           "conditions": [{"type": "Ready", "status": "True"}]},
            }));
        }
    }
    json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
}

fn median(rounds: &[Round], part: impl Fn(&Round) -> Duration) -> f64 {
    let mut values: Vec<f64> = rounds.iter().map(|r| part(r).as_secs_f64()).collect();
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn main() {
    // `cargo bench` passes `--bench`; the rest are ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let small = tempfile::NamedTempFile::new().unwrap();
    let (file, rounds) = match args.first() {
        Some(file) => (
            PathBuf::from(file),
            args.get(1)
                .map_or(3, |r| r.parse().expect("ROUNDS is a number")),
        ),
        None => {
            std::fs::write(small.path(), small_list(20)).unwrap();
            (small.path().to_owned(), 1)
        }
    };
    let mut all = Vec::new();
    for i in 1..=rounds {
        let r = round(&file);
        println!(
            "round {i}: read {:.3} s, split {:.3} s (not counted), k8s-openapi {:.3} s, \
             hickory {:.3} s: floor {:.3} s | stsdns load {:.3} s, build {:.3} s: {:.3} s",
            r.read.as_secs_f64(),
            r.split.as_secs_f64(),
            r.typed.as_secs_f64(),
            r.encode.as_secs_f64(),
            r.floor().as_secs_f64(),
            r.load.as_secs_f64(),
            r.build.as_secs_f64(),
            r.stsdns().as_secs_f64(),
        );
        all.push(r);
    }
    let floor = median(&all, Round::floor);
    let stsdns = median(&all, Round::stsdns);
    println!(
        "median of {rounds}: read {:.3} s, k8s-openapi {:.3} s, hickory {:.3} s: floor {floor:.3} s; \
         stsdns load {:.3} s, build {:.3} s: {stsdns:.3} s = {:.2}x the floor",
        median(&all, |r| r.read),
        median(&all, |r| r.typed),
        median(&all, |r| r.encode),
        median(&all, |r| r.load),
        median(&all, |r| r.build),
        stsdns / floor,
    );
}
