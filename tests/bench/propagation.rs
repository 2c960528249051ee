//! Propagation: how long from an event entering the feed to the first UDP answer that shows it,
//! and what one publish costs, at 1k and at 100k pods.
//!
//! The cluster: 10 namespaces of headless Services, each selecting a StatefulSet-style set of 3
//! Pods (`web-<s>-<i>`, hostname and subdomain set), endpoints derived from the Pods. An event is
//! one Pod's Ready flip (a Pod MODIFIED), so the Pod's host name appears (NOERROR, one A) or
//! disappears (NXDOMAIN).
//!
//! For each size:
//!
//! 1. **publish**: `app::Reconciler::apply` of the one flip, timed (apply to the state, rebuild
//!    the touched Service, snapshot, `ArcSwap` store), over [`EVENTS`] random Pods; and
//!    `records::build` of the whole state from scratch, for comparison.
//! 2. **channel**: the flip is sent into the reconciler's mpsc channel (`Reconciler::run`, as
//!    `app::serve` wires it), while a client on another thread asks the Pod's name over loopback
//!    UDP (one query in flight); the latency is from just before the send to the first answer
//!    that shows the change.
//! 3. **stream**: the same, but the event is a watch-event JSON line appended to a file that the
//!    stream feed follows (`feed::stream::follow_path`): it includes the file notification, the
//!    reads, the JSON parse and the conversion.
//!
//! Each path is measured with the client polling in a tight loop and with a short sleep between
//! polls: on a 2-core machine a tight loop keeps a core busy (the client and the server's UDP
//! worker ping-pong), which delays the stream feed's thread hops; the sleep shows the latency
//! of a server that is not being hammered. The resolution is one poll (a loopback round trip,
//! or the sleep). A control (fixed CPU work as long as a median publish, timed as often) shows
//! how much of the tails the machine itself adds.
//!
//! Goals (issue 3): p99 propagation under 1 ms; a publish at 100k pods no more than 3x one at
//! 1k. Run `tests/bench/propagation.sh` (see tests/bench/README.md). Environment:
//! - `PROPAGATION_EVENTS`: flips per measurement (default 500);
//! - `PROPAGATION_SIZES`: `1k`, `3k`, `10k`, `30k`, `100k` (default `1k,100k`);
//! - `PROPAGATION_POLL_GAPS_US`: sleeps between polls, in µs (default `0,50`; 0 is a tight loop);
//! - `PROPAGATION_ONLY=publish`: only the publish and build timings (for a profiler).

#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::io::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use stsdns::app::{self, Reconciler, SerialStore};
use stsdns::config::{ServeConfig, ZoneConfig};
use stsdns::feed;
use stsdns::feed::event::{Event, EventSender, SourceEvent, SourceId};
use stsdns::model::{Hostname, Object, Pod, Service};
use stsdns::records;
use tokio_util::sync::CancellationToken;

mod cluster;
use cluster::{SIZES, Size, XorShift, cluster, first_list, origin};

/// Events timed per size and path, unless `PROPAGATION_EVENTS` says otherwise.
const EVENTS: usize = 500;
/// A change not answered within this is counted as missed (and the run goes on).
const GIVE_UP: Duration = Duration::from_secs(2);
/// Each UDP query waits at most this for its reply before it is sent again.
const REPLY_WAIT: Duration = Duration::from_millis(200);

/// One Pod of the generated cluster and what it takes to ask for it.
struct PodInfo {
    object: Pod,
    /// The query for its host name, id 0.
    query: Vec<u8>,
}

/// The cluster's Services and Pods, each Pod with the query for its host name.
fn cluster_with_queries(size: &Size) -> (Vec<Service>, Vec<PodInfo>) {
    let (services, pods) = cluster(size);
    let pods = pods
        .into_iter()
        .map(|(object, host)| PodInfo {
            query: query(&host),
            object,
        })
        .collect();
    (services, pods)
}

fn query(name: &str) -> Vec<u8> {
    let mut message = Message::new(0, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    message.to_vec().unwrap()
}

/// A Pod MODIFIED watch event, as the API server sends it, on one line.
fn watch_line(pod: &Pod) -> String {
    let ip = pod.ips[0].to_string();
    let event = serde_json::json!({
        "type": "MODIFIED",
        "object": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": &*pod.key.name,
                "namespace": pod.key.namespace.as_str(),
                "labels": pod
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<std::collections::BTreeMap<_, _>>(),
            },
            "spec": {
                "hostname": pod.hostname.as_ref().map(Hostname::as_str),
                "subdomain": pod.subdomain.as_deref(),
                "containers": [{"name": "main", "image": "nginx",
                    "ports": [{"name": "web", "containerPort": 80, "protocol": "TCP"}]}],
            },
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": if pod.ready { "True" } else { "False" }}],
                "podIP": ip,
                "podIPs": [{"ip": ip}],
            },
        },
    });
    format!("{event}\n")
}

/// A fixed amount of CPU work (a xorshift chain), the control for timing noise: its spread is
/// the machine's (preemption, frequency changes), not ours.
fn busy(rounds: u64) -> u64 {
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    for _ in 0..rounds {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
    }
    std::hint::black_box(x)
}

/// Times [`busy`] `samples` times, sized to take about `target` each.
fn control(target: Duration, samples: usize) -> Vec<Duration> {
    let mut rounds = 1_000u64;
    loop {
        let started = Instant::now();
        busy(rounds);
        let took = started.elapsed();
        if took >= target / 2 {
            rounds = (rounds as f64 * target.as_secs_f64() / took.as_secs_f64()) as u64;
            break;
        }
        rounds *= 2;
    }
    let mut times: Vec<Duration> = (0..samples)
        .map(|_| {
            let started = Instant::now();
            busy(rounds);
            started.elapsed()
        })
        .collect();
    times.sort();
    times
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn mean(values: &[Duration]) -> Duration {
    values.iter().sum::<Duration>() / u32::try_from(values.len().max(1)).unwrap()
}

fn show(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

/// Latencies of one path, sorted, and how many changes were never seen.
struct Latencies {
    /// The path and the polling, for the table.
    label: String,
    sorted: Vec<Duration>,
    missed: usize,
    queries: u64,
}

/// How an event enters the feed.
enum Inject {
    /// Sent into the reconciler's channel.
    Channel(EventSender),
    /// Appended to the followed watch-stream file.
    Stream(std::fs::File),
}

/// Flips `events` random Pods one after another; for each, injects the change and polls the
/// Pod's name until the answer shows it. Runs on a plain thread (blocking socket), so the client
/// does not share the runtime's workers with the server and the reconciler.
fn measure(
    server: SocketAddr,
    pods: &mut [PodInfo],
    ready: &mut [bool],
    inject: &mut Inject,
    events: usize,
    seed: u64,
    gap: Duration,
) -> Latencies {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(server).unwrap();
    socket.set_read_timeout(Some(REPLY_WAIT)).unwrap();
    let mut rng = XorShift(seed);
    let mut sorted = Vec::with_capacity(events);
    let mut missed = 0;
    let mut queries = 0u64;
    let mut id: u16 = 0;
    let mut buf = [0u8; 1500];
    for _ in 0..events {
        let index = rng.below(pods.len());
        ready[index] = !ready[index];
        let want_ready = ready[index];
        let mut pod = pods[index].object.clone();
        pod.ready = want_ready;
        let query = &mut pods[index].query;
        let started = Instant::now();
        match inject {
            Inject::Channel(tx) => tx
                .blocking_send(SourceEvent {
                    source: SourceId::new("bulk"),
                    event: Event::Apply(Object::from(pod), origin()),
                })
                .unwrap(),
            Inject::Stream(file) => file.write_all(watch_line(&pod).as_bytes()).unwrap(),
        }
        let seen = loop {
            if started.elapsed() > GIVE_UP {
                break false;
            }
            if id != 0 && gap > Duration::ZERO {
                std::thread::sleep(gap);
            }
            id = id.wrapping_add(1);
            query[..2].copy_from_slice(&id.to_be_bytes());
            socket.send(query).unwrap();
            queries += 1;
            // Read until our id comes back (a late reply to an earlier query is skipped).
            let reply = loop {
                match socket.recv(&mut buf) {
                    Ok(n) if n >= 12 && buf[..2] == id.to_be_bytes() => break Some(n),
                    Ok(_) => continue,
                    Err(_) => break None,
                }
            };
            let Some(_) = reply else { continue };
            let rcode = buf[3] & 0x0F;
            let answers = u16::from_be_bytes([buf[6], buf[7]]);
            let shows = if want_ready {
                rcode == 0 && answers > 0
            } else {
                rcode == 3
            };
            if shows {
                break true;
            }
        };
        if seen {
            sorted.push(started.elapsed());
        } else {
            missed += 1;
        }
    }
    sorted.sort();
    Latencies {
        label: String::new(),
        sorted,
        missed,
        queries,
    }
}

struct Row {
    size: &'static str,
    pods: usize,
    objects: usize,
    initial: Duration,
    publish: Vec<Duration>,
    /// The same number of timings of fixed CPU work as long as a median publish.
    control: Vec<Duration>,
    build: Vec<Duration>,
    /// Each path at each polling.
    paths: Vec<Latencies>,
}

/// How the client polls, for the table.
fn polling(gap: Duration) -> String {
    if gap.is_zero() {
        "tight poll".to_owned()
    } else {
        format!("poll + sleep {} µs", gap.as_micros())
    }
}

fn run(size: &Size, events: usize, gaps: &[Duration], runtime: &tokio::runtime::Runtime) -> Row {
    let started = Instant::now();
    let (services, mut pods) = cluster_with_queries(size);
    let generated = started.elapsed();
    let zone = ZoneConfig::default();
    let shutdown = CancellationToken::new();
    let config = ServeConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        feeds: Vec::new(),
        zone: zone.clone(),
        serial_file: None,
        threads: 1,
    };
    let running = runtime
        .block_on(app::start(&config, shutdown.clone()))
        .unwrap();
    let server = running.addresses[0];
    let bulk = SourceId::new("bulk");
    let serials = runtime.block_on(SerialStore::open(None)).unwrap();
    let mut reconciler = Reconciler::new(zone.clone(), running.writer, vec![bulk.clone()], serials);

    // The first full list, published once.
    let send = |event| SourceEvent {
        source: bulk.clone(),
        event,
    };
    let list = first_list(&bulk, &services, pods.iter().map(|p| &p.object));
    let started = Instant::now();
    runtime.block_on(reconciler.apply(list)).unwrap().unwrap();
    let initial = started.elapsed();
    let objects = reconciler.state().len();
    eprintln!(
        "setup {}: {} pods, {} objects generated in {}, first publish {}",
        size.label,
        pods.len(),
        objects,
        show(generated),
        show(initial)
    );

    // 1. One flip through Reconciler::apply, and a build from scratch.
    let mut ready = vec![true; pods.len()];
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut publish = Vec::with_capacity(events);
    for _ in 0..events {
        let index = rng.below(pods.len());
        ready[index] = !ready[index];
        let mut pod = pods[index].object.clone();
        pod.ready = ready[index];
        let batch = vec![send(Event::Apply(Object::from(pod), origin()))];
        let started = Instant::now();
        let serial = runtime.block_on(reconciler.apply(batch)).unwrap();
        publish.push(started.elapsed());
        assert!(serial.is_some(), "a Ready flip publishes");
    }
    publish.sort();
    let control = control(percentile(&publish, 50), events);
    let builds = if pods.len() > 10_000 { 3 } else { 30 };
    let mut build = Vec::new();
    for _ in 0..builds {
        let started = Instant::now();
        let snapshot = records::build(reconciler.state(), &zone, 1).unwrap();
        build.push(started.elapsed());
        drop(snapshot);
    }
    build.sort();
    eprintln!("setup {}: publish and build timed", size.label);
    if std::env::var("PROPAGATION_ONLY").is_ok_and(|v| v == "publish") {
        shutdown.cancel();
        return Row {
            size: size.label,
            pods: pods.len(),
            objects,
            initial,
            publish,
            control,
            build,
            paths: Vec::new(),
        };
    }

    // 2. and 3. The reconciler runs as in `serve`; the stream feed follows a file.
    let (tx, rx) = tokio::sync::mpsc::channel(4096);
    let reconciling = runtime.spawn(reconciler.run(rx, shutdown.clone()));
    let mut inject = Inject::Channel(tx.clone());
    let mut paths = Vec::new();
    for (i, gap) in gaps.iter().enumerate() {
        let mut l = measure(
            server,
            &mut pods,
            &mut ready,
            &mut inject,
            events,
            0x51 + i as u64,
            *gap,
        );
        l.label = format!("channel (mpsc → reconciler), {}", polling(*gap));
        paths.push(l);
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pods.jsonl");
    std::fs::write(&path, b"").unwrap();
    let stream_source = SourceId::new(format!("stream:{}", path.display()));
    let follow = {
        let tx = tx.clone();
        let path = path.clone();
        runtime.spawn(async move { feed::stream::follow_path(&path, stream_source, tx).await })
    };
    // The stream's initial list (empty, at its first end of file) is applied before timing.
    let mut probe = running.reader.clone();
    let before = probe.load().unwrap().serial;
    let _ = runtime.block_on(async {
        tokio::time::timeout(Duration::from_millis(500), probe.changed_from(before)).await
    });
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    let mut inject = Inject::Stream(file);
    for (i, gap) in gaps.iter().enumerate() {
        let mut l = measure(
            server,
            &mut pods,
            &mut ready,
            &mut inject,
            events,
            0x61 + i as u64,
            *gap,
        );
        l.label = format!("stream (append → follow → parse), {}", polling(*gap));
        paths.push(l);
    }

    follow.abort();
    shutdown.cancel();
    drop(inject);
    drop(tx);
    let _ = runtime.block_on(reconciling);
    let _ = runtime.block_on(running.task);
    Row {
        size: size.label,
        pods: pods.len(),
        objects,
        initial,
        publish,
        control,
        build,
        paths,
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    format!("{cpus} CPUs, {model}")
}

fn main() {
    let events = std::env::var("PROPAGATION_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(EVENTS);
    let wanted = std::env::var("PROPAGATION_SIZES").unwrap_or_else(|_| "1k,100k".to_owned());
    // Arguments (`cargo bench` passes `--bench`) are ignored; sizes come from the environment.
    let sizes: Vec<&Size> = SIZES
        .iter()
        .filter(|s| wanted.split(',').any(|w| w.trim() == s.label))
        .collect();
    let gaps: Vec<Duration> = std::env::var("PROPAGATION_POLL_GAPS_US")
        .unwrap_or_else(|_| "0,50".to_owned())
        .split(',')
        .filter_map(|g| g.trim().parse().ok())
        .map(Duration::from_micros)
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rows: Vec<Row> = sizes
        .iter()
        .map(|s| run(s, events, &gaps, &runtime))
        .collect();

    println!();
    println!("machine: {}", machine());
    println!("events per path: {events} Pod Ready flips (random Pods)");
    println!();
    println!("propagation: event into the feed → first UDP answer showing it (loopback)");
    println!();
    println!(
        "| pods | path, polling | p50 | p90 | p99 | max | missed | queries/event | p99 < 1 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        for l in &row.paths {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {:.1} | {} |",
                row.size,
                l.label,
                show(percentile(&l.sorted, 50)),
                show(percentile(&l.sorted, 90)),
                show(percentile(&l.sorted, 99)),
                show(l.sorted.last().copied().unwrap_or_default()),
                l.missed,
                l.queries as f64 / events.max(1) as f64,
                if percentile(&l.sorted, 99) < Duration::from_millis(1) {
                    "yes"
                } else {
                    "no"
                },
            );
        }
    }
    println!();
    println!("publish cost: Reconciler::apply of one Pod Ready flip (CPU, one thread)");
    println!();
    println!(
        "| pods | objects | apply p50 | apply mean | apply p99 | control p50 / p99 | records::build (from scratch) p50 | first publish |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in &rows {
        println!(
            "| {} ({}) | {} | {} | {} | {} | {} / {} | {} | {} |",
            row.size,
            row.pods,
            row.objects,
            show(percentile(&row.publish, 50)),
            show(mean(&row.publish)),
            show(percentile(&row.publish, 99)),
            show(percentile(&row.control, 50)),
            show(percentile(&row.control, 99)),
            show(percentile(&row.build, 50)),
            show(row.initial),
        );
    }
    println!();
    println!(
        "control: fixed CPU work as long as the median publish, timed as often; a control p99 far \
         above its p50 means the machine (other processes, preemption) sets the tails."
    );
    println!();
    let worst_p99 = rows
        .iter()
        .flat_map(|r| &r.paths)
        .filter(|l| !l.sorted.is_empty())
        .map(|l| percentile(&l.sorted, 99))
        .max();
    if let Some(worst_p99) = worst_p99 {
        println!(
            "goal p99 < 1 ms (every path, size and polling): worst p99 {} → {}",
            show(worst_p99),
            if worst_p99 < Duration::from_millis(1) {
                "met"
            } else {
                "NOT met"
            }
        );
    }
    if let (Some(small), Some(big)) = (
        rows.iter().find(|r| r.size == "1k"),
        rows.iter().find(|r| r.size == "100k"),
    ) {
        let ratio = |f: fn(&[Duration]) -> Duration| {
            f(&big.publish).as_secs_f64() / f(&small.publish).as_secs_f64()
        };
        let p50 = ratio(|v| percentile(v, 50));
        let avg = ratio(mean);
        println!(
            "goal 100k publish ≤ 3x 1k: p50 ratio {p50:.2}x, mean ratio {avg:.2}x → {}",
            if p50 <= 3.0 { "met" } else { "NOT met" }
        );
    }
}
