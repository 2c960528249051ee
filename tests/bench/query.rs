//! The cost of one query, at 3k and at 100k pods: it must not grow with the cluster.
//!
//! Setup generates a cluster as Kubernetes YAML (namespaces × headless Services, each with a
//! StatefulSet of 3 Pods and an EndpointSlice), loads it through the file feed's parser, and
//! builds the snapshot with `records::build`, printing how long each step took and the
//! process's resident memory. Then, for each size:
//!
//! - `build/<size>`: `records::build` of the whole state (skipped for a size whose one build in
//!   setup took over [`SLOW_BUILD`]: the setup line gives that figure).
//! - `lookup/<kind>/<size>`: `Snapshot::lookup` alone; `lookup/pod_a_one_name/<size>` asks one
//!   name over and over (all in cache), to tell cache misses from work.
//! - `answer_encode/<kind>/<size>`: `lookup`, then the response `Message` built with
//!   hickory-proto and encoded with `to_vec()`.
//! - `handler/<kind>/<size>`: the query's wire bytes through the server's `Responder`: the
//!   pre-encoded fast path where it applies, else decode, lookup and encode; minus only the socket.
//!
//! Kinds: `pod_a` (A of a pod, an answer), `srv` (`_web._tcp` SRV of a Service: three records
//! plus their addresses as additionals), `nodata` (AAAA of a pod: the name exists, the type does
//! not) and `nxdomain` (A of a pod that does not exist). Each iteration asks the next of 4096
//! names drawn at random across the whole cluster, so the big index is not all in cache.
//!
//! See tests/bench/README.md for how to run it.

#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{LowerName, Name, Record, RecordType};
use stsdns::config::ZoneConfig;
use stsdns::feed::{self, file};
use stsdns::model::ClusterState;
use stsdns::model::diagnose::Severity;
use stsdns::records;
use stsdns::server::{Responder, Transport};
use stsdns::snapshot::{self, Snapshot};

/// Pods per Service (and StatefulSet replicas).
const PODS_PER_SERVICE: usize = 3;
/// A size whose one setup build took longer than this gets no `build/<size>` bench: criterion
/// needs ten builds, and the setup line already gives the figure.
const SLOW_BUILD: Duration = Duration::from_secs(10);
/// Names asked in rotation by each query bench (a power of two).
const ROTATION: usize = 4096;

/// One cluster size.
struct Size {
    label: &'static str,
    namespaces: usize,
    services_per_namespace: usize,
}

const SIZES: [Size; 2] = [
    Size {
        label: "3k",
        namespaces: 10,
        services_per_namespace: 100,
    },
    Size {
        label: "100k",
        namespaces: 10,
        services_per_namespace: 3334,
    },
];

/// A built cluster and the questions to ask it.
struct Cluster {
    label: &'static str,
    state: ClusterState,
    zone: ZoneConfig,
    snapshot: Arc<Snapshot>,
    handler: Responder,
    /// How long the one `records::build` of setup took.
    built: Duration,
    /// Keeps the handler's snapshot published.
    _writer: snapshot::SnapshotWriter,
    kinds: Vec<Kind>,
}

/// One kind of question, with the names asked in rotation.
struct Kind {
    name: &'static str,
    questions: Vec<Question>,
}

struct Question {
    name: Name,
    lower: LowerName,
    record_type: RecordType,
    /// The query as a resolver sends it (EDNS, 1232-byte buffer).
    wire: Vec<u8>,
}

/// The IPv4 address of the `index`th pod of the cluster (10.0.0.0/8 holds 16M).
fn pod_ip(index: usize) -> String {
    format!(
        "10.{}.{}.{}",
        (index >> 16) & 0xFF,
        (index >> 8) & 0xFF,
        index & 0xFF
    )
}

/// One namespace's manifests: per Service, the Service, its StatefulSet, its EndpointSlice and
/// its Pods, as `kubectl get -o yaml` would give them (less the noise).
fn namespace_yaml(size: &Size, namespace: usize) -> String {
    let ns = format!("ns-{namespace}");
    let mut yaml = String::new();
    for service in 0..size.services_per_namespace {
        let svc = format!("svc-{service}");
        let sts = format!("web-{service}");
        let _ = write!(
            yaml,
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {svc}\n  namespace: {ns}\nspec:\n  clusterIP: None\n  selector:\n    app: {sts}\n  ports:\n  - name: web\n    port: 80\n    targetPort: web\n    protocol: TCP\n"
        );
        let _ = write!(
            yaml,
            "---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: {sts}\n  namespace: {ns}\nspec:\n  serviceName: {svc}\n  replicas: {PODS_PER_SERVICE}\n  selector:\n    matchLabels:\n      app: {sts}\n  template:\n    metadata:\n      labels:\n        app: {sts}\n    spec:\n      containers:\n      - name: main\n        image: nginx\n"
        );
        let first = (namespace * size.services_per_namespace + service) * PODS_PER_SERVICE;
        let _ = write!(
            yaml,
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {svc}-x7k2p\n  namespace: {ns}\n  labels:\n    kubernetes.io/service-name: {svc}\naddressType: IPv4\nendpoints:\n"
        );
        for pod in 0..PODS_PER_SERVICE {
            let ip = pod_ip(first + pod);
            let _ = write!(
                yaml,
                "- addresses: [\"{ip}\"]\n  conditions:\n    ready: true\n  hostname: {sts}-{pod}\n  targetRef:\n    kind: Pod\n    name: {sts}-{pod}\n    namespace: {ns}\n"
            );
        }
        yaml.push_str("ports:\n- name: web\n  port: 80\n  protocol: TCP\n");
        for pod in 0..PODS_PER_SERVICE {
            let ip = pod_ip(first + pod);
            let _ = write!(
                yaml,
                "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {sts}-{pod}\n  namespace: {ns}\n  labels:\n    app: {sts}\nspec:\n  hostname: {sts}-{pod}\n  subdomain: {svc}\n  containers:\n  - name: main\n    image: nginx\n    ports:\n    - name: web\n      containerPort: 80\nstatus:\n  phase: Running\n  conditions:\n  - type: Ready\n    status: \"True\"\n  podIP: {ip}\n  podIPs:\n  - ip: {ip}\n"
            );
        }
    }
    yaml
}

/// A small deterministic PRNG (xorshift64*), so every run asks the same names.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let value = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 16;
        usize::try_from(value % u64::try_from(bound).unwrap()).unwrap()
    }
}

fn question(name: &str, record_type: RecordType) -> Question {
    let name = Name::from_ascii(name).unwrap();
    let mut message = Message::new(0x5151, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name.clone(), record_type));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    message.set_edns(edns);
    Question {
        lower: LowerName::from(&name),
        name,
        record_type,
        wire: message.to_vec().unwrap(),
    }
}

/// The four kinds of question, each over `ROTATION` random Services of the cluster.
fn kinds(size: &Size) -> Vec<Kind> {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut picks = |make: &dyn Fn(usize, usize, usize) -> Question| -> Vec<Question> {
        (0..ROTATION)
            .map(|_| {
                make(
                    rng.below(size.namespaces),
                    rng.below(size.services_per_namespace),
                    rng.below(PODS_PER_SERVICE),
                )
            })
            .collect()
    };
    let pod = |ns: usize, svc: usize, pod: usize| -> String {
        format!("web-{svc}-{pod}.svc-{svc}.ns-{ns}.svc.cluster.local.")
    };
    vec![
        Kind {
            name: "pod_a",
            questions: picks(&|ns, svc, p| question(&pod(ns, svc, p), RecordType::A)),
        },
        Kind {
            name: "srv",
            questions: picks(&|ns, svc, _| {
                question(
                    &format!("_web._tcp.svc-{svc}.ns-{ns}.svc.cluster.local."),
                    RecordType::SRV,
                )
            }),
        },
        Kind {
            name: "nodata",
            questions: picks(&|ns, svc, p| question(&pod(ns, svc, p), RecordType::AAAA)),
        },
        Kind {
            name: "nxdomain",
            questions: picks(&|ns, svc, _| {
                question(&pod(ns, svc, PODS_PER_SERVICE + 4), RecordType::A)
            }),
        },
    ]
}

/// A field of /proc/self/status (`VmRSS`, `VmHWM`), e.g. `123456 kB`.
fn status(key: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map_or_else(|| "?".to_owned(), |v| v.trim().to_owned())
}

/// Resident memory now and at its peak.
fn memory() -> String {
    format!("VmRSS {} (peak VmHWM {})", status("VmRSS"), status("VmHWM"))
}

fn seconds(elapsed: Duration) -> String {
    format!("{:.3}s", elapsed.as_secs_f64())
}

/// Generates, parses and builds one cluster, printing what each step cost.
fn setup(size: &Size) -> Cluster {
    let pods = size.namespaces * size.services_per_namespace * PODS_PER_SERVICE;
    let started = Instant::now();
    let texts: Vec<String> = (0..size.namespaces)
        .map(|ns| namespace_yaml(size, ns))
        .collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    let generated = started.elapsed();

    let started = Instant::now();
    let mut loaded = feed::Loaded::default();
    for (ns, text) in texts.iter().enumerate() {
        file::parse_into(&mut loaded, &format!("ns-{ns}.yaml"), text);
    }
    drop(texts);
    let parsed = started.elapsed();
    let rss_parsed = status("VmRSS");
    let errors: Vec<String> = loaded
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .take(5)
        .map(ToString::to_string)
        .collect();
    assert!(
        errors.is_empty(),
        "generated manifests have errors: {errors:#?}"
    );

    let started = Instant::now();
    let mut state = ClusterState::new();
    for (object, origin) in loaded.objects {
        state.insert(object, origin);
    }
    let inserted = started.elapsed();
    let rss_inserted = status("VmRSS");

    let zone = ZoneConfig::default();
    let started = Instant::now();
    let snapshot = records::build(&state, &zone, 1).unwrap();
    let built = started.elapsed();
    eprintln!(
        "setup {label}: {pods} pods, {objects} objects, {mb:.1} MB of YAML generated in {generated}, \
         parsed in {parsed} (VmRSS then {rss_parsed}), inserted in {inserted} (VmRSS then \
         {rss_inserted}); records::build {built}: {names} names, {records} records; after \
         the build {memory}",
        label = size.label,
        objects = state.len(),
        mb = bytes as f64 / 1e6,
        generated = seconds(generated),
        parsed = seconds(parsed),
        inserted = seconds(inserted),
        built = seconds(built),
        names = snapshot.names.len(),
        records = snapshot.record_count(),
        memory = memory(),
    );

    let (writer, reader) = snapshot::channel();
    writer.publish(snapshot);
    let snapshot = reader.load().unwrap();
    let handler = Responder::new(reader, stsdns::app::served_zones(&zone));
    let cluster = Cluster {
        label: size.label,
        state,
        zone,
        snapshot,
        handler,
        built,
        _writer: writer,
        kinds: kinds(size),
    };
    check(&cluster);
    cluster
}

/// Each kind gets the answer it is named for, so the benches measure what they say.
fn check(cluster: &Cluster) {
    for kind in &cluster.kinds {
        for q in kind.questions.iter().take(64) {
            let outcome = cluster.snapshot.lookup(&q.lower, q.record_type);
            let records: usize = outcome.answers.iter().map(|s| s.records.len()).sum();
            let (code, count) = match kind.name {
                "pod_a" => (ResponseCode::NoError, 1),
                "srv" => (ResponseCode::NoError, PODS_PER_SERVICE),
                "nodata" => (ResponseCode::NoError, 0),
                _ => (ResponseCode::NXDomain, 0),
            };
            assert_eq!(
                (outcome.response_code, records),
                (code, count),
                "{} {} {}",
                kind.name,
                q.name,
                q.record_type
            );
            if kind.name == "srv" {
                let additionals: usize = outcome.answers.iter().map(|s| s.additionals.len()).sum();
                assert_eq!(additionals, PODS_PER_SERVICE, "{}", q.name);
            }
        }
    }
}

/// `lookup`, then the response as the server would shape it, encoded.
fn answer_encode(snapshot: &Snapshot, q: &Question) -> Vec<u8> {
    let outcome = snapshot.lookup(&q.lower, q.record_type);
    let mut message = Message::new(0x5151, MessageType::Response, OpCode::Query);
    message.metadata.authoritative = outcome.authoritative;
    message.metadata.response_code = outcome.response_code;
    message.add_query(Query::query(q.name.clone(), q.record_type));
    let mut additionals: Vec<Record> = Vec::new();
    for set in &outcome.answers {
        message.answers.extend(set.records.iter().cloned());
        for record in &set.additionals {
            if !additionals.contains(record) {
                additionals.push(record.clone());
            }
        }
    }
    message.authorities.extend(outcome.soa);
    message.additionals = additionals;
    message.to_vec().unwrap()
}

/// The query's wire bytes through the server's real responder (fast path, else the general
/// path), minus only the socket.
fn handle(handler: &Responder, q: &Question, out: &mut Vec<u8>) -> usize {
    assert!(handler.respond(&q.wire, Transport::Udp, out));
    out.len()
}

fn bench_build(c: &mut Criterion, clusters: &[Cluster]) {
    let mut group = c.benchmark_group("build");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for cluster in clusters {
        if cluster.built > SLOW_BUILD {
            eprintln!(
                "build/{}: skipped, one build took {} (setup line above); ten samples would take \
                 too long",
                cluster.label,
                seconds(cluster.built)
            );
            continue;
        }
        group.bench_function(cluster.label, |b| {
            b.iter_with_large_drop(|| records::build(&cluster.state, &cluster.zone, 2).unwrap());
        });
    }
    group.finish();
}

fn bench_queries(c: &mut Criterion, clusters: &[Cluster]) {
    let mut out = Vec::with_capacity(65_535);
    for bench in ["lookup", "answer_encode", "handler"] {
        let mut group = c.benchmark_group(bench);
        group
            .sample_size(50)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for cluster in clusters {
            for kind in &cluster.kinds {
                let id = BenchmarkId::new(kind.name, cluster.label);
                let questions = &kind.questions;
                let mut next = 0usize;
                let mut ask = || {
                    let q = &questions[next];
                    next = (next + 1) & (ROTATION - 1);
                    q
                };
                match bench {
                    "lookup" => group.bench_function(id, |b| {
                        b.iter(|| {
                            let q = ask();
                            cluster.snapshot.lookup(&q.lower, q.record_type)
                        });
                    }),
                    "answer_encode" => group.bench_function(id, |b| {
                        b.iter(|| answer_encode(&cluster.snapshot, ask()));
                    }),
                    _ => group.bench_function(id, |b| {
                        b.iter(|| handle(&cluster.handler, ask(), &mut out));
                    }),
                };
            }
            if bench == "lookup" {
                // The same name every time: all of it stays in cache, so what is left is the
                // work itself. Compare with `pod_a` to see what cache misses cost.
                let q = &cluster.kinds[0].questions[0];
                group.bench_function(BenchmarkId::new("pod_a_one_name", cluster.label), |b| {
                    b.iter(|| cluster.snapshot.lookup(&q.lower, q.record_type));
                });
            }
        }
        group.finish();
    }
}

fn main() {
    eprintln!("setup: {}", memory());
    let clusters: Vec<Cluster> = SIZES.iter().map(setup).collect();
    let mut criterion = Criterion::default().configure_from_args();
    bench_build(&mut criterion, &clusters);
    bench_queries(&mut criterion, &clusters);
    criterion.final_summary();
}
