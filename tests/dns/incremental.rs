//! Incremental publishing never goes stale: after every step of a random event sequence,
//! `ClusterState::apply` + `records::Builder::update(dirty)` give exactly the snapshot that
//! `records::build` gives from scratch on the same state: the same names, and at each name the
//! same record sets in the same order, with the same additionals.
//!
//! The sequences come from a fixed-seed PRNG over a deliberately small universe (two
//! namespaces, four Service names, six Pod names, four EndpointSlice names, a handful of
//! addresses), so objects collide often: Pods join and leave selectors, Services change kind,
//! slices move between Services, two objects share an address, relists from two feeds replace
//! each other's objects. A mismatch is shrunk to a minimal sequence before it is reported.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::Name;
use stsdns::config::{PodsMode, ZoneConfig};
use stsdns::feed::event::{Event, SourceEvent, SourceId};
use stsdns::model::{
    ClusterState, ContainerPort, Dirty, Endpoint, EndpointPort, EndpointSlice, Hostname, Kind,
    LabelSelector, Namespace, Object, ObjectKey, ObjectRef, Origin, Pod, Protocol, Service,
    ServiceKey, ServiceKind, ServiceName, ServicePort, StatefulSet, TargetPort,
};
use stsdns::records::{self, Builder};
use stsdns::snapshot::Snapshot;

/// Sequences per zone configuration (`STSDNS_INCREMENTAL_SEQUENCES` for a longer search), and
/// steps per sequence. Each step also builds from scratch, which is slow in a debug build.
const SEQUENCES: u64 = 8;
const STEPS: usize = 80;
const SERIAL: u32 = 7;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() >> 33) as usize % bound
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

const NAMESPACES: [&str; 2] = ["default", "db"];
const SERVICES: [&str; 4] = ["web", "api", "db", "ext"];
const PODS: [&str; 6] = ["web-0", "web-1", "web-2", "api-0", "db-0", "db-10"];
const SLICES: [&str; 4] = ["web-a", "web-b", "api-a", "orphan"];
const APPS: [&str; 3] = ["web", "api", "db"];
/// Few addresses, so Pods, slices and ClusterIPs share them (shared PTR names).
const ADDRESSES: [&str; 7] = [
    "10.1.0.1",
    "10.1.0.2",
    "10.1.1.3",
    "10.2.0.4",
    "10.43.0.10",
    "fd00::1",
    "fd00::2",
];
const SOURCES: [&str; 2] = ["one", "two"];

fn namespace(rng: &mut Rng) -> Namespace {
    Namespace::new(rng.pick(&NAMESPACES)).unwrap()
}

fn address(rng: &mut Rng) -> IpAddr {
    rng.pick(&ADDRESSES).parse().unwrap()
}

fn addresses(rng: &mut Rng, max: usize) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = (0..rng.below(max + 1)).map(|_| address(rng)).collect();
    ips.dedup();
    ips
}

fn origin(source: &str) -> Origin {
    Origin {
        source: Arc::from(source),
        line: None,
    }
}

fn protocol(rng: &mut Rng) -> Protocol {
    rng.pick(&[Protocol::Tcp, Protocol::Tcp, Protocol::Udp])
}

fn port_name(rng: &mut Rng) -> Option<String> {
    rng.pick(&[Some("web"), Some("metrics"), None])
        .map(str::to_owned)
}

fn selector(rng: &mut Rng) -> Option<BTreeMap<String, String>> {
    // Conversion never yields an empty selector (`{}` is `None`), so neither do we.
    match rng.below(4) {
        0 => None,
        1 => Some([("tier".to_owned(), "back".to_owned())].into()),
        2 => Some(
            [
                ("app".to_owned(), rng.pick(&APPS).to_owned()),
                ("tier".to_owned(), "back".to_owned()),
            ]
            .into(),
        ),
        _ => Some([("app".to_owned(), rng.pick(&APPS).to_owned())].into()),
    }
}

fn service(rng: &mut Rng) -> Service {
    let kind = match rng.below(5) {
        0 => ServiceKind::ClusterIp(addresses(rng, 2)),
        1 => ServiceKind::ExternalName(
            rng.pick(&["db.example.com", "web.default.svc.cluster.local"])
                .to_owned(),
        ),
        _ => ServiceKind::Headless,
    };
    let ports = (0..rng.below(3))
        .map(|_| ServicePort {
            name: port_name(rng),
            protocol: protocol(rng),
            port: rng.pick(&[80, 443, 9000]),
            target_port: if rng.chance(50) {
                TargetPort::Named(rng.pick(&["web", "metrics", "missing"]).to_owned())
            } else {
                TargetPort::Number(rng.pick(&[80, 8080]))
            },
        })
        .collect();
    Service {
        key: ServiceKey {
            namespace: namespace(rng),
            name: ServiceName::new(rng.pick(&SERVICES)).unwrap(),
        },
        kind,
        ports,
        selector: selector(rng).map(Into::into),
        publish_not_ready_addresses: rng.chance(30),
    }
}

fn pod(rng: &mut Rng) -> Pod {
    let name = rng.pick(&PODS);
    let mut labels = BTreeMap::new();
    if rng.chance(80) {
        labels.insert("app".to_owned(), rng.pick(&APPS).to_owned());
    }
    if rng.chance(40) {
        labels.insert("tier".to_owned(), "back".to_owned());
    }
    Pod {
        key: ObjectKey {
            namespace: namespace(rng),
            name: Arc::from(name),
        },
        labels: labels.into(),
        hostname: rng.chance(70).then(|| Hostname::new(name).unwrap()),
        subdomain: rng.chance(70).then(|| rng.pick(&SERVICES).into()),
        ips: addresses(rng, 2).into(),
        ready: rng.chance(60),
        terminating: rng.chance(10),
        container_ports: (0..rng.below(3))
            .map(|_| ContainerPort {
                name: port_name(rng).map(Arc::from),
                protocol: protocol(rng),
                port: rng.pick(&[80, 8080, 9100]),
            })
            .collect(),
    }
}

fn slice(rng: &mut Rng) -> EndpointSlice {
    EndpointSlice {
        key: ObjectKey {
            namespace: namespace(rng),
            name: Arc::from(rng.pick(&SLICES)),
        },
        service: rng
            .chance(85)
            .then(|| ServiceName::new(rng.pick(&SERVICES)).unwrap()),
        ports: (0..rng.below(3))
            .map(|_| EndpointPort {
                name: port_name(rng),
                protocol: protocol(rng),
                port: rng.pick(&[80, 9000]),
            })
            .collect(),
        endpoints: (0..rng.below(4))
            .map(|_| Endpoint {
                addresses: addresses(rng, 2),
                ready: rng.chance(70),
                hostname: rng
                    .chance(60)
                    .then(|| Hostname::new(rng.pick(&PODS)).unwrap()),
                pod_name: None,
            })
            .collect(),
    }
}

fn statefulset(rng: &mut Rng) -> StatefulSet {
    StatefulSet {
        key: ObjectKey {
            namespace: namespace(rng),
            name: Arc::from(rng.pick(&APPS)),
        },
        service_name: Some(rng.pick(&SERVICES).to_owned()),
        replicas: 3,
        selector: Some(LabelSelector::default()),
        template_labels: BTreeMap::new(),
    }
}

fn object(rng: &mut Rng) -> Object {
    match rng.below(10) {
        0..=2 => Object::from(service(rng)),
        3..=6 => Object::from(pod(rng)),
        7 | 8 => Object::from(slice(rng)),
        _ => Object::from(statefulset(rng)),
    }
}

/// A reference to an object that may or may not exist.
fn reference(rng: &mut Rng) -> ObjectRef {
    let (kind, names): (Kind, &[&str]) = match rng.below(4) {
        0 => (Kind::Service, &SERVICES),
        1 => (Kind::EndpointSlice, &SLICES),
        2 => (Kind::StatefulSet, &APPS),
        _ => (Kind::Pod, &PODS),
    };
    ObjectRef {
        kind,
        key: ObjectKey {
            namespace: namespace(rng),
            name: Arc::from(rng.pick(names)),
        },
    }
}

/// One batch of events: what the reconciler drains before it publishes once.
type Step = Vec<SourceEvent>;

fn event(source: &str, event: Event) -> SourceEvent {
    SourceEvent {
        source: SourceId::new(source),
        event,
    }
}

/// A random step over `state` (read only to pick existing objects for relists).
fn step(rng: &mut Rng, state: &ClusterState) -> Step {
    let source = rng.pick(&SOURCES);
    let single = |rng: &mut Rng| match rng.below(10) {
        0..=5 => event(source, Event::Apply(object(rng), origin(source))),
        6..=8 => event(source, Event::Delete(reference(rng), origin(source))),
        _ => {
            // The same object with its readiness flipped: the commonest change of all.
            match state.pods().nth(rng.below(state.pods().count().max(1))) {
                Some(pod) => {
                    let mut pod = pod.clone();
                    pod.ready = !pod.ready;
                    event(source, Event::Apply(Object::from(pod), origin(source)))
                }
                None => event(source, Event::Apply(object(rng), origin(source))),
            }
        }
    };
    match rng.below(10) {
        // A relist: some existing objects (some changed), some new ones; the rest of this
        // source's objects go at InitDone.
        0 => {
            let mut events = vec![event(source, Event::Init)];
            let existing: Vec<Object> = state
                .services()
                .cloned()
                .map(Object::from)
                .chain(state.pods().cloned().map(Object::from))
                .chain(state.endpoint_slices().cloned().map(Object::from))
                .collect();
            for object in existing {
                if rng.chance(60) {
                    events.push(event(source, Event::InitApply(object, origin(source))));
                }
            }
            for _ in 0..rng.below(4) {
                events.push(event(source, Event::InitApply(object(rng), origin(source))));
            }
            events.push(event(source, Event::InitDone));
            events
        }
        // Several changes drained together and published once.
        1 | 2 => (0..2 + rng.below(4)).map(|_| single(rng)).collect(),
        _ => vec![single(rng)],
    }
}

/// The differences between the incremental and the from-scratch snapshot, or `None`.
fn difference(incremental: &Snapshot, scratch: &Snapshot) -> Option<String> {
    let mut report = String::new();
    let names: BTreeSet<&stsdns::snapshot::NameKey> = incremental
        .names
        .keys()
        .chain(scratch.names.keys())
        .collect();
    for name in names {
        let a = incremental.names.get(name);
        let b = scratch.names.get(name);
        if a != b {
            let show = |node: Option<&stsdns::snapshot::Node>| match node {
                None => " (absent)".to_owned(),
                Some(node) => describe_node(name, node),
            };
            let _ = write!(
                report,
                "\n{}\n incremental:{}\n from scratch:{}",
                key_name(name),
                show(a),
                show(b)
            );
        }
    }
    if incremental.records != scratch.records {
        let _ = write!(
            report,
            "\nrecord count: incremental {} from scratch {}",
            incremental.records, scratch.records
        );
    }
    if incremental.objects != scratch.objects {
        let _ = write!(report, "\nobject count differs");
    }
    (!report.is_empty()).then_some(report)
}

/// An index key (wire-form labels) as a dotted name, for reports.
fn key_name(key: &[u8]) -> String {
    use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
    Name::read(&mut BinDecoder::new(key)).map_or_else(|_| format!("{key:?}"), |n| n.to_string())
}

fn describe_node(key: &[u8], node: &stsdns::snapshot::Node) -> String {
    let mut text = String::new();
    for set in &node.sets(key) {
        let _ = write!(text, "\n  {}:", set.record_type);
        for record in &set.records {
            let _ = write!(text, "\n    {record}");
        }
        for record in &set.additionals {
            let _ = write!(text, "\n    + {record}");
        }
    }
    if node.is_empty() {
        text.push_str(" (empty non-terminal)");
    }
    text
}

/// Replays `steps` as the reconciler does (rebuild once, then `update` per step); returns the
/// first step after which the incremental snapshot differs from a build from scratch.
fn replay(steps: &[Step], zone: &ZoneConfig) -> Option<(usize, String)> {
    let mut state = ClusterState::new();
    let mut builder = Builder::new(zone.clone());
    builder.rebuild(&state).unwrap();
    for (index, step) in steps.iter().enumerate() {
        let mut dirty = Dirty::default();
        for event in step.clone() {
            dirty.merge(state.apply(&event.source, event.event).dirty);
        }
        builder.update(&state, &dirty).unwrap();
        let incremental = builder.snapshot(&state, SERIAL, state.len()).unwrap();
        let scratch = records::build(&state, zone, SERIAL).unwrap();
        if let Some(report) = difference(&incremental, &scratch) {
            return Some((index, report));
        }
    }
    None
}

/// Removes steps (and events within steps) while the mismatch persists.
fn shrink(mut steps: Vec<Step>, zone: &ZoneConfig) -> Vec<Step> {
    loop {
        let mut smaller = false;
        let mut i = 0;
        while i < steps.len() {
            let mut candidate = steps.clone();
            candidate.remove(i);
            if replay(&candidate, zone).is_some() {
                steps = candidate;
                smaller = true;
            } else {
                i += 1;
            }
        }
        for i in 0..steps.len() {
            let mut j = 0;
            while steps[i].len() > 1 && j < steps[i].len() {
                let mut candidate = steps.clone();
                candidate[i].remove(j);
                if replay(&candidate, zone).is_some() {
                    steps = candidate;
                    smaller = true;
                } else {
                    j += 1;
                }
            }
        }
        if !smaller {
            return steps;
        }
    }
}

fn show_event(event: &SourceEvent) -> String {
    let what = match &event.event {
        Event::Init => "Init".to_owned(),
        Event::InitDone => "InitDone".to_owned(),
        Event::InitApply(object, _) => format!("InitApply {object:?}"),
        Event::Apply(object, _) => format!("Apply {object:?}"),
        Event::Delete(reference, _) => format!("Delete {reference}"),
        Event::Problem(problem) => format!("Problem {problem}"),
    };
    format!("[{}] {what}", event.source)
}

fn zones() -> Vec<(&'static str, ZoneConfig)> {
    let two = vec![
        Name::from_ascii("cluster.local.").unwrap(),
        Name::from_ascii("example.org.").unwrap(),
    ];
    vec![
        ("default", ZoneConfig::default()),
        (
            "pods verified, two zones",
            ZoneConfig {
                zones: two.clone(),
                pods: PodsMode::Verified,
                ..ZoneConfig::default()
            },
        ),
        (
            "pods insecure",
            ZoneConfig {
                pods: PodsMode::Insecure,
                ..ZoneConfig::default()
            },
        ),
    ]
}

#[test]
fn incremental_updates_match_a_build_from_scratch() {
    let sequences = std::env::var("STSDNS_INCREMENTAL_SEQUENCES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(SEQUENCES);
    for (label, zone) in zones() {
        for seed in 0..sequences {
            let mut rng = Rng::new(seed + 1);
            let mut state = ClusterState::new();
            let mut steps = Vec::new();
            for _ in 0..STEPS {
                let step = step(&mut rng, &state);
                for event in step.clone() {
                    state.apply(&event.source, event.event);
                }
                steps.push(step);
            }
            if let Some((at, _)) = replay(&steps, &zone) {
                steps.truncate(at + 1);
                let minimal = shrink(steps, &zone);
                let (_, report) = replay(&minimal, &zone).expect("still fails");
                let mut sequence = String::new();
                for (i, step) in minimal.iter().enumerate() {
                    let _ = writeln!(sequence, "step {i}:");
                    for event in step {
                        let _ = writeln!(sequence, "  {}", show_event(event));
                    }
                }
                panic!(
                    "zone config {label:?}, seed {seed}: the incremental snapshot differs from \
                     a build from scratch after this minimal sequence:\n{sequence}\
                     differences:{report}"
                );
            }
        }
    }
}
