//! No torn answers: while a feed changes the state about 1,000 times a second, about 20,000
//! UDP queries a second each get an answer that is exactly one published state, never a mix.
//!
//! The states are made recognisable from any answer. Headless Service `web` always has
//! [`SLOTS`] Pods `web-0` … `web-7`; the Pod of slot `s` carries a *version* `v ≡ s (mod
//! SLOTS)` in its address `10.1.<v >> 8>.<v & 255>`. The initial list has versions `1..=SLOTS`,
//! and change `k` re-applies the Pod of slot `k mod SLOTS` with version `k + SLOTS` (one `Apply`,
//! so every state in between is a whole state). So state `k` is exactly versions
//! `k+1 ..= k+SLOTS`: the Service's A set, the addresses of its SRV peers, and each host's
//! address all name the one state they come from, and a mix of two states shows as a set that
//! is not such a run.
//!
//! The changes go through the real pipeline (an mpsc channel into `app::Reconciler::run`, the
//! snapshot writer of `app::start`, the server's UDP socket). Each answer must also be *current*:
//! its state lies between the state published when the query was sent and the one published
//! when the answer came back (read from the same in-process snapshot the server reads).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{LowerName, Name, RData, RecordType};
use stsdns::app::{self, Reconciler, SerialStore};
use stsdns::config::{ServeConfig, ZoneConfig};
use stsdns::feed::event::{Event, SourceEvent, SourceId};
use stsdns::model::{
    ContainerPort, Hostname, Namespace, Object, ObjectKey, Origin, Pod, Protocol, Service,
    ServiceKey, ServiceKind, ServiceName, ServicePort, TargetPort,
};
use stsdns::snapshot::SnapshotReader;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::harness::{TIMEOUT, init_tracing};

/// Pods of the Service, each in its own slot.
const SLOTS: u64 = 8;
/// State changes, one every [`CHANGE_EVERY`]: 3 s of changes at 1,000 a second.
const CHANGES: u64 = 3000;
const CHANGE_EVERY: Duration = Duration::from_millis(1);
/// The query rate the querier holds itself to (it goes slower if the machine does).
const QUERY_RATE: f64 = 20_000.0;
/// Queries in flight at once: enough to keep the rate over a loopback round trip.
const WINDOW: usize = 8;
/// The querier stops sending this long after the last change is sent.
const TAIL: Duration = Duration::from_millis(100);
/// An answer not back within this is counted lost (UDP), not failed.
const LOST_AFTER: Duration = Duration::from_secs(2);

const SERVICE: &str = "web.default.svc.cluster.local.";
const SRV: &str = "_web._tcp.web.default.svc.cluster.local.";

fn address(version: u64) -> Ipv4Addr {
    let version = u16::try_from(version).expect("versions fit in two octets");
    let [high, low] = version.to_be_bytes();
    Ipv4Addr::new(10, 1, high, low)
}

fn version(ip: Ipv4Addr) -> Result<u64, String> {
    match ip.octets() {
        [10, 1, high, low] => Ok(u64::from(u16::from_be_bytes([high, low]))),
        _ => Err(format!("{ip} is not a versioned address")),
    }
}

fn namespace() -> Namespace {
    Namespace::new("default").expect("valid")
}

fn service() -> Object {
    Object::from(Service {
        key: ServiceKey {
            namespace: namespace(),
            name: ServiceName::new("web").expect("valid"),
        },
        kind: ServiceKind::Headless,
        ports: vec![ServicePort {
            name: Some("web".to_owned()),
            protocol: Protocol::Tcp,
            port: 80,
            target_port: TargetPort::Named("web".to_owned()),
        }],
        selector: Some([("app".to_owned(), "web".to_owned())].into()),
        publish_not_ready_addresses: false,
    })
}

/// The Pod of slot `version % SLOTS` at `version`.
fn pod(version: u64) -> Object {
    let name = format!("web-{}", version % SLOTS);
    Object::from(Pod {
        key: ObjectKey {
            namespace: namespace(),
            name: Arc::from(name.as_str()),
        },
        labels: [("app".to_owned(), "web".to_owned())].into(),
        hostname: Some(Hostname::new(&name).expect("valid")),
        subdomain: Some("web".into()),
        ips: [IpAddr::V4(address(version))].into(),
        ready: true,
        terminating: false,
        container_ports: [ContainerPort {
            name: Some("web".into()),
            protocol: Protocol::Tcp,
            port: 80,
        }]
        .into(),
    })
}

fn origin() -> Origin {
    Origin {
        source: Arc::from("consistency"),
        line: None,
    }
}

/// The state an address set names: `k` when the set is exactly versions `k+1 ..= k+SLOTS`,
/// listed in slot (ordinal) order.
fn state_of(versions: &[u64]) -> Result<u64, String> {
    let mut sorted = versions.to_vec();
    sorted.sort_unstable();
    let first = *sorted.first().ok_or("no addresses")?;
    let expected: Vec<u64> = (first..first + SLOTS).collect();
    if sorted != expected {
        return Err(format!("versions {versions:?} are not one state"));
    }
    for (slot, v) in versions.iter().enumerate() {
        if v % SLOTS != slot as u64 {
            return Err(format!("versions {versions:?} are not in ordinal order"));
        }
    }
    Ok(first - 1)
}

/// The state published now, read from the snapshot the server answers from.
fn published_state(reader: &SnapshotReader, service: &LowerName) -> u64 {
    let snapshot = reader.load().expect("published");
    let outcome = snapshot.lookup(service, RecordType::A);
    let versions: Vec<u64> = outcome
        .answers
        .iter()
        .flat_map(|set| set.records.iter())
        .map(|r| match &r.data {
            RData::A(a) => version(a.0).expect("versioned"),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    state_of(&versions).expect("the published snapshot is one state")
}

/// The questions asked in rotation.
#[derive(Debug, Clone, Copy)]
enum Ask {
    /// The Service's A set: all slots.
    ServiceA,
    /// The SRV peer list, with each peer's address in the additional section.
    Srv,
    /// One host's A record.
    Host(u64),
}

fn query_bytes(ask: Ask) -> Vec<u8> {
    let (name, record_type) = match ask {
        Ask::ServiceA => (SERVICE.to_owned(), RecordType::A),
        Ask::Srv => (SRV.to_owned(), RecordType::SRV),
        Ask::Host(slot) => (format!("web-{slot}.{SERVICE}"), RecordType::A),
    };
    let mut message = Message::new(0, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(
        Name::from_ascii(&name).expect("valid"),
        record_type,
    ));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    message.set_edns(edns);
    message.to_vec().expect("encodes")
}

fn a_versions(records: &[hickory_proto::rr::Record]) -> Result<Vec<u64>, String> {
    records
        .iter()
        .filter(|r| r.record_type() == RecordType::A)
        .map(|r| match &r.data {
            RData::A(a) => version(a.0),
            _ => unreachable!("filtered"),
        })
        .collect()
}

/// The states an answer is consistent with: `(low, high)` inclusive.
fn answer_states(ask: Ask, message: &Message) -> Result<(u64, u64), String> {
    if message.metadata.response_code != ResponseCode::NoError || !message.metadata.authoritative {
        return Err(format!("not an authoritative NOERROR: {message}"));
    }
    match ask {
        Ask::ServiceA => {
            let k = state_of(&a_versions(&message.answers)?)?;
            Ok((k, k))
        }
        Ask::Srv => {
            let mut targets = Vec::new();
            for record in &message.answers {
                match &record.data {
                    RData::SRV(srv) if srv.port == 80 => targets.push(srv.target.to_string()),
                    other => return Err(format!("unexpected answer {other:?}")),
                }
            }
            let expected: Vec<String> = (0..SLOTS).map(|s| format!("web-{s}.{SERVICE}")).collect();
            if targets != expected {
                return Err(format!("SRV targets {targets:?}"));
            }
            // The additionals come in target order: one address per peer.
            let k = state_of(&a_versions(&message.additionals)?)?;
            Ok((k, k))
        }
        Ask::Host(slot) => {
            let versions = a_versions(&message.answers)?;
            let [v] = versions[..] else {
                return Err(format!("host answer {versions:?}"));
            };
            if v % SLOTS != slot || v == 0 {
                return Err(format!("web-{slot} answered version {v}"));
            }
            // Slot `s` holds `v` in states `v - SLOTS ..= v - 1` (never below state 0).
            Ok((v.saturating_sub(SLOTS), v - 1))
        }
    }
}

#[derive(Debug, Default)]
struct Tally {
    sent: u64,
    checked: u64,
    lost: u64,
    elapsed: Duration,
}

/// Asks in rotation at up to [`QUERY_RATE`] until `stop`, checking each answer.
async fn querier(addr: std::net::SocketAddr, reader: SnapshotReader, stop: Instant) -> Tally {
    let service = LowerName::from(Name::from_ascii(SERVICE).expect("valid"));
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket.connect(addr).await.expect("connect");
    let asks: Vec<(Ask, Vec<u8>)> = [Ask::ServiceA, Ask::Srv]
        .into_iter()
        .chain((0..SLOTS).map(Ask::Host))
        .map(|ask| (ask, query_bytes(ask)))
        .collect();
    // id → (what was asked, the state published before it was sent, when).
    let mut in_flight: HashMap<u16, (Ask, u64, Instant)> = HashMap::new();
    let mut tally = Tally::default();
    let mut buf = vec![0u8; 4096];
    let mut packet = Vec::new();
    // The newest state known to be published: a lower bound for every answer asked after it.
    let mut latest = published_state(&reader, &service);
    let started = Instant::now();
    loop {
        let now = Instant::now();
        let allowed = (now - started).as_secs_f64() * QUERY_RATE;
        while now < stop && in_flight.len() < WINDOW && (tally.sent as f64) < allowed {
            let id = tally.sent as u16;
            let (ask, bytes) = &asks[(tally.sent % asks.len() as u64) as usize];
            packet.clear();
            packet.extend_from_slice(bytes);
            packet[..2].copy_from_slice(&id.to_be_bytes());
            socket.send(&packet).await.expect("send");
            // `latest` was read before this send, so the answer cannot be of an older state.
            in_flight.insert(id, (*ask, latest, Instant::now()));
            tally.sent += 1;
        }
        if in_flight.is_empty() {
            if now >= stop {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        let received = tokio::time::timeout(Duration::from_millis(1), socket.recv(&mut buf)).await;
        let Ok(received) = received else {
            let before = in_flight.len();
            in_flight.retain(|_, (_, _, sent)| sent.elapsed() < LOST_AFTER);
            tally.lost += (before - in_flight.len()) as u64;
            continue;
        };
        let length = received.expect("recv");
        let message = Message::from_vec(&buf[..length]).expect("the answer decodes");
        let high = published_state(&reader, &service);
        latest = high;
        let Some((ask, low, _)) = in_flight.remove(&message.metadata.id) else {
            continue;
        };
        match answer_states(ask, &message) {
            Ok((from, to)) if from <= high && to >= low => tally.checked += 1,
            Ok((from, to)) => panic!(
                "{ask:?}: the answer is of states {from}..={to}, but states {low}..={high} \
                 were published while it was asked:\n{message}"
            ),
            Err(torn) => panic!("{ask:?}: torn answer: {torn}\n{message}"),
        }
    }
    tally.elapsed = started.elapsed();
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_never_torn_while_the_state_changes() {
    init_tracing();
    let zone = ZoneConfig::default();
    let config = ServeConfig {
        listen: vec!["127.0.0.1:0".parse().expect("valid address")],
        feeds: Vec::new(),
        zone: zone.clone(),
        serial_file: None,
        threads: 2,
    };
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let running = app::start(&config, shutdown.clone())
        .await
        .expect("server starts");
    let source = SourceId::new("consistency");
    let serials = SerialStore::open(None).await.expect("no serial file");
    let reconciler = Reconciler::new(zone, running.writer, vec![source.clone()], serials);
    let source = source.clone();
    let (tx, rx) = tokio::sync::mpsc::channel(4096);
    let reconciling = tokio::spawn(reconciler.run(rx, shutdown.clone()));

    let send = move |event| SourceEvent {
        source: source.clone(),
        event,
    };
    let mut list = vec![
        send(Event::Init),
        send(Event::InitApply(service(), origin())),
    ];
    list.extend((1..=SLOTS).map(|v| send(Event::InitApply(pod(v), origin()))));
    list.push(send(Event::InitDone));
    for event in list {
        tx.send(event).await.expect("reconciler listens");
    }
    let mut reader = running.reader.clone();
    tokio::time::timeout(TIMEOUT, reader.ready())
        .await
        .expect("the first state is published in time");
    let first_serial = reader.load().expect("ready").serial;

    let start = Instant::now();
    let stop = start + CHANGE_EVERY * u32::try_from(CHANGES).expect("small") + TAIL;
    let querying = tokio::spawn(querier(running.addresses[0], running.reader.clone(), stop));
    let changes = tokio::spawn({
        let tx = tx.clone();
        let send = send.clone();
        async move {
            for k in 1..=CHANGES {
                let at = start + CHANGE_EVERY * u32::try_from(k).expect("small");
                tokio::time::sleep_until(at.into()).await;
                tx.send(send(Event::Apply(pod(k + SLOTS), origin())))
                    .await
                    .expect("reconciler listens");
            }
            start.elapsed()
        }
    });
    let changing = tokio::time::timeout(TIMEOUT, changes)
        .await
        .expect("changes sent in time")
        .expect("change task");
    let tally = tokio::time::timeout(TIMEOUT, querying)
        .await
        .expect("queries done in time")
        .expect("query task");
    // Every change lands: the last state is the last one sent.
    let service_name = LowerName::from(Name::from_ascii(SERVICE).expect("valid"));
    let deadline = Instant::now() + TIMEOUT;
    while published_state(&running.reader, &service_name) != CHANGES {
        assert!(Instant::now() < deadline, "the last change is published");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let publishes = reader
        .load()
        .expect("ready")
        .serial
        .wrapping_sub(first_serial);
    shutdown.cancel();
    reconciling
        .await
        .expect("reconciler task")
        .expect("reconciler ran");

    let seconds = tally.elapsed.as_secs_f64();
    eprintln!(
        "consistency: {} changes in {:.2} s ({:.0}/s), {} publishes; {} queries in {:.2} s \
         ({:.0}/s), {} answers checked, {} lost",
        CHANGES,
        changing.as_secs_f64(),
        CHANGES as f64 / changing.as_secs_f64(),
        publishes,
        tally.sent,
        seconds,
        tally.sent as f64 / seconds,
        tally.checked,
        tally.lost,
    );
    // Rates depend on the machine (and on the tests running beside this one), so only what
    // makes the check meaningful is asserted: many answers, many states, few losses.
    assert!(tally.checked >= 1000, "too few answers checked: {tally:?}");
    assert!(publishes >= 100, "too few publishes: {publishes}");
    assert!(
        tally.lost * 100 <= tally.sent,
        "more than 1% of queries lost: {tally:?}"
    );
}
