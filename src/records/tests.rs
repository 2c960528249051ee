//! Table-driven tests of [`build`], in the style of CoreDNS's `parse_test.go`/`handler_test.go`:
//! a cluster state in (inline manifests), the expected records out as zone-file lines.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name, RecordType};

use super::{build, presentation, zone_text};
use crate::config::{PodsMode, ZoneConfig};
use crate::feed;
use crate::model::{
    ClusterState, Endpoint, EndpointPort, EndpointSlice, Namespace, Object, ObjectKey, Origin,
    Protocol, Service, ServiceKey, ServiceKind, ServiceName,
};
use crate::snapshot::Snapshot;

const SERIAL: u32 = 42;

/// A small cluster with every kind of name.
const CLUSTER: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-v4
  namespace: default
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints:
- {addresses: ["10.1.0.1"], hostname: web-0, conditions: {ready: true}}
- {addresses: ["10.1.0.2"], hostname: web-1}
- {addresses: ["10.1.0.3"], hostname: web-2, conditions: {ready: false}}
ports:
- {name: http, port: 80, protocol: TCP}
- {port: 9000, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-v6
  namespace: default
  labels: {kubernetes.io/service-name: web}
addressType: IPv6
endpoints:
- {addresses: ["fd00::1"], hostname: web-0}
- {addresses: ["fd00::2"]}
ports:
- {name: http, port: 80, protocol: TCP}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: default}
spec:
  clusterIP: 10.43.0.20
  clusterIPs: [10.43.0.20, "fd00:43::20"]
  ports:
  - {name: https, port: 443, targetPort: 8443}
  - {port: 8080}
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: default}
spec: {type: ExternalName, externalName: db.example.com}
---
apiVersion: v1
kind: Service
metadata: {name: mongo, namespace: db}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {role: mongo}
  ports: [{port: 27017, targetPort: 27017}]
---
apiVersion: v1
kind: Pod
metadata: {name: mongo-0, namespace: db, labels: {role: mongo}}
spec: {hostname: mongo-0, subdomain: mongo, containers: []}
status: {podIP: 10.2.0.10, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: mongo-1, namespace: db, labels: {role: mongo}}
spec: {hostname: mongo-1, subdomain: mongo, containers: []}
status: {podIP: 10.2.0.11, conditions: [{type: Ready, status: "False"}]}
---
apiVersion: v1
kind: Service
metadata: {name: nothing, namespace: default}
spec: {clusterIP: None, selector: {app: nobody}}
"#;

fn state(yaml: &str) -> ClusterState {
    let mut loaded = feed::Loaded::default();
    feed::file::parse_into(&mut loaded, "inline.yaml", yaml);
    assert!(
        loaded.problems.is_empty(),
        "fixture problems: {:#?}",
        loaded
            .problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );
    let mut state = ClusterState::new();
    for (object, origin) in loaded.objects {
        state.insert(object, origin);
    }
    state
}

fn snapshot(state: &ClusterState, config: &ZoneConfig) -> Snapshot {
    build(state, config, SERIAL).expect("records build")
}

/// What a lookup gives, as zone-file lines.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    code: ResponseCode,
    answers: Vec<String>,
    additionals: Vec<String>,
    soa: Option<String>,
}

fn lookup(snapshot: &Snapshot, name: &str, record_type: RecordType) -> Answer {
    let name = LowerName::from(Name::from_ascii(name).expect("valid name"));
    let outcome = snapshot.lookup(&name, record_type);
    let answers = outcome
        .answers
        .iter()
        .flat_map(|s| s.records.iter())
        .map(presentation)
        .collect();
    let mut additionals: Vec<String> = outcome
        .answers
        .iter()
        .flat_map(|s| s.additionals.iter())
        .map(presentation)
        .collect();
    additionals.sort();
    Answer {
        code: outcome.response_code,
        answers,
        additionals,
        soa: outcome.soa.as_ref().map(presentation),
    }
}

/// One row: the question, the rcode, the answer lines (in order) and additional lines (sorted).
struct Case {
    name: &'static str,
    record_type: RecordType,
    code: ResponseCode,
    answers: &'static [&'static str],
    additionals: &'static [&'static str],
}

const fn case(
    name: &'static str,
    record_type: RecordType,
    code: ResponseCode,
    answers: &'static [&'static str],
    additionals: &'static [&'static str],
) -> Case {
    Case {
        name,
        record_type,
        code,
        answers,
        additionals,
    }
}

const NOERROR: ResponseCode = ResponseCode::NoError;
const NXDOMAIN: ResponseCode = ResponseCode::NXDomain;
const NONE: &[&str] = &[];

const CASES: &[Case] = &[
    // The apex.
    case(
        "cluster.local.",
        RecordType::SOA,
        NOERROR,
        &[
            "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 42 7200 1800 86400 5",
        ],
        NONE,
    ),
    case(
        "cluster.local.",
        RecordType::NS,
        NOERROR,
        &["cluster.local. 5 IN NS ns.dns.cluster.local."],
        NONE,
    ),
    case(
        "dns-version.cluster.local.",
        RecordType::TXT,
        NOERROR,
        &["dns-version.cluster.local. 28800 IN TXT \"1.1.0\""],
        NONE,
    ),
    // Empty non-terminals and names outside the grammar.
    case("svc.cluster.local.", RecordType::A, NOERROR, NONE, NONE),
    case(
        "default.svc.cluster.local.",
        RecordType::A,
        NOERROR,
        NONE,
        NONE,
    ),
    case("db.svc.cluster.local.", RecordType::A, NOERROR, NONE, NONE),
    case("pod.cluster.local.", RecordType::A, NOERROR, NONE, NONE),
    case(
        "other.svc.cluster.local.",
        RecordType::A,
        NXDOMAIN,
        NONE,
        NONE,
    ),
    case(
        "web.default.foo.cluster.local.",
        RecordType::A,
        NXDOMAIN,
        NONE,
        NONE,
    ),
    case(
        "x.web-0.web.default.svc.cluster.local.",
        RecordType::A,
        NXDOMAIN,
        NONE,
        NONE,
    ),
    // Headless: across slices, de-duplicated, ready only, by family.
    case(
        "web.default.svc.cluster.local.",
        RecordType::A,
        NOERROR,
        &[
            "web.default.svc.cluster.local. 5 IN A 10.1.0.1",
            "web.default.svc.cluster.local. 5 IN A 10.1.0.2",
        ],
        NONE,
    ),
    case(
        "web.default.svc.cluster.local.",
        RecordType::AAAA,
        NOERROR,
        &[
            "web.default.svc.cluster.local. 5 IN AAAA fd00::2",
            "web.default.svc.cluster.local. 5 IN AAAA fd00::1",
        ],
        NONE,
    ),
    case(
        "web-0.web.default.svc.cluster.local.",
        RecordType::AAAA,
        NOERROR,
        &["web-0.web.default.svc.cluster.local. 5 IN AAAA fd00::1"],
        NONE,
    ),
    case(
        "web-1.web.default.svc.cluster.local.",
        RecordType::AAAA,
        NOERROR,
        NONE,
        NONE,
    ),
    case(
        "web-2.web.default.svc.cluster.local.",
        RecordType::A,
        NXDOMAIN,
        NONE,
        NONE,
    ),
    case(
        "fd00--2.web.default.svc.cluster.local.",
        RecordType::AAAA,
        NOERROR,
        &["fd00--2.web.default.svc.cluster.local. 5 IN AAAA fd00::2"],
        NONE,
    ),
    // SRV: 4 candidates for http (web-0 twice), 6 for the bare name (unnamed 9000 included).
    case(
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
        NOERROR,
        &[
            "_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 25 80 fd00--2.web.default.svc.cluster.local.",
            "_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 25 80 web-0.web.default.svc.cluster.local.",
            "_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 25 80 web-1.web.default.svc.cluster.local.",
        ],
        &[
            "fd00--2.web.default.svc.cluster.local. 5 IN AAAA fd00::2",
            "web-0.web.default.svc.cluster.local. 5 IN A 10.1.0.1",
            "web-0.web.default.svc.cluster.local. 5 IN AAAA fd00::1",
            "web-1.web.default.svc.cluster.local. 5 IN A 10.1.0.2",
        ],
    ),
    case(
        "web.default.svc.cluster.local.",
        RecordType::SRV,
        NOERROR,
        &[
            "web.default.svc.cluster.local. 5 IN SRV 0 16 80 fd00--2.web.default.svc.cluster.local.",
            "web.default.svc.cluster.local. 5 IN SRV 0 16 80 web-0.web.default.svc.cluster.local.",
            "web.default.svc.cluster.local. 5 IN SRV 0 16 9000 web-0.web.default.svc.cluster.local.",
            "web.default.svc.cluster.local. 5 IN SRV 0 16 80 web-1.web.default.svc.cluster.local.",
            "web.default.svc.cluster.local. 5 IN SRV 0 16 9000 web-1.web.default.svc.cluster.local.",
        ],
        &[
            "fd00--2.web.default.svc.cluster.local. 5 IN AAAA fd00::2",
            "web-0.web.default.svc.cluster.local. 5 IN A 10.1.0.1",
            "web-0.web.default.svc.cluster.local. 5 IN AAAA fd00::1",
            "web-1.web.default.svc.cluster.local. 5 IN A 10.1.0.2",
        ],
    ),
    case(
        "_tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
        NOERROR,
        NONE,
        NONE,
    ),
    case(
        "_http._udp.web.default.svc.cluster.local.",
        RecordType::SRV,
        NXDOMAIN,
        NONE,
        NONE,
    ),
    // Derived from Pods, publishNotReadyAddresses, unnamed port.
    case(
        "mongo.db.svc.cluster.local.",
        RecordType::SRV,
        NOERROR,
        &[
            "mongo.db.svc.cluster.local. 5 IN SRV 0 50 27017 mongo-0.mongo.db.svc.cluster.local.",
            "mongo.db.svc.cluster.local. 5 IN SRV 0 50 27017 mongo-1.mongo.db.svc.cluster.local.",
        ],
        &[
            "mongo-0.mongo.db.svc.cluster.local. 5 IN A 10.2.0.10",
            "mongo-1.mongo.db.svc.cluster.local. 5 IN A 10.2.0.11",
        ],
    ),
    case(
        "nothing.default.svc.cluster.local.",
        RecordType::A,
        NXDOMAIN,
        NONE,
        NONE,
    ),
    // ClusterIP.
    case(
        "api.default.svc.cluster.local.",
        RecordType::AAAA,
        NOERROR,
        &["api.default.svc.cluster.local. 5 IN AAAA fd00:43::20"],
        NONE,
    ),
    case(
        "_https._tcp.api.default.svc.cluster.local.",
        RecordType::SRV,
        NOERROR,
        &[
            "_https._tcp.api.default.svc.cluster.local. 5 IN SRV 0 100 443 api.default.svc.cluster.local.",
        ],
        &[
            "api.default.svc.cluster.local. 5 IN A 10.43.0.20",
            "api.default.svc.cluster.local. 5 IN AAAA fd00:43::20",
        ],
    ),
    // ExternalName.
    case(
        "ext.default.svc.cluster.local.",
        RecordType::A,
        NOERROR,
        &["ext.default.svc.cluster.local. 5 IN CNAME db.example.com."],
        NONE,
    ),
    // Reverse.
    case(
        "1.0.1.10.in-addr.arpa.",
        RecordType::PTR,
        NOERROR,
        &["1.0.1.10.in-addr.arpa. 5 IN PTR web-0.web.default.svc.cluster.local."],
        NONE,
    ),
    case(
        "20.0.43.10.in-addr.arpa.",
        RecordType::PTR,
        NOERROR,
        &["20.0.43.10.in-addr.arpa. 5 IN PTR api.default.svc.cluster.local."],
        NONE,
    ),
    case(
        "3.0.1.10.in-addr.arpa.",
        RecordType::PTR,
        NXDOMAIN,
        NONE,
        NONE,
    ),
    case("1.10.in-addr.arpa.", RecordType::PTR, NOERROR, NONE, NONE),
];

#[test]
fn every_name_form_of_the_cluster() {
    let snapshot = snapshot(&state(CLUSTER), &ZoneConfig::default());
    let mut failures = Vec::new();
    for case in CASES {
        let got = lookup(&snapshot, case.name, case.record_type);
        let negative = case.answers.is_empty();
        let want = Answer {
            code: case.code,
            answers: case.answers.iter().map(|s| (*s).to_owned()).collect(),
            additionals: case.additionals.iter().map(|s| (*s).to_owned()).collect(),
            soa: got.soa.clone().filter(|_| negative),
        };
        if got != want || (negative && got.soa.is_none()) {
            failures.push(format!(
                "{} {}:\n  want {want:?}\n  got  {got:?}",
                case.name, case.record_type
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn negative_answers_carry_the_enclosing_zone_soa_with_the_negative_ttl() {
    let config = ZoneConfig {
        ttl: 0,
        negative_ttl: 30,
        ..ZoneConfig::default()
    };
    let snapshot = snapshot(&state(CLUSTER), &config);
    for (name, soa) in [
        (
            "nope.default.svc.cluster.local.",
            "cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 42 7200 1800 86400 30",
        ),
        (
            "9.9.9.9.in-addr.arpa.",
            "in-addr.arpa. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 42 7200 1800 86400 30",
        ),
        (
            "1.ip6.arpa.",
            "ip6.arpa. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 42 7200 1800 86400 30",
        ),
    ] {
        let got = lookup(&snapshot, name, RecordType::A);
        assert_eq!(got.code, NXDOMAIN, "{name}");
        assert_eq!(got.soa.as_deref(), Some(soa), "{name}");
    }
    // TTL 0 is honoured in positive answers.
    let got = lookup(
        &snapshot,
        "web-0.web.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(
        got.answers,
        ["web-0.web.default.svc.cluster.local. 0 IN A 10.1.0.1"]
    );
}

#[test]
fn outside_every_zone_is_refused() {
    let snapshot = snapshot(&state(CLUSTER), &ZoneConfig::default());
    let got = lookup(&snapshot, "example.com.", RecordType::A);
    assert_eq!(got.code, ResponseCode::Refused);
    assert_eq!(got.soa, None);
}

#[test]
fn several_zones_serve_the_same_names_and_reverse_names_point_into_the_first() {
    let config = ZoneConfig {
        zones: vec![
            Name::from_ascii("cluster.local.").expect("valid"),
            Name::from_ascii("corp.example.").expect("valid"),
        ],
        ..ZoneConfig::default()
    };
    let snapshot = snapshot(&state(CLUSTER), &config);
    for zone in ["cluster.local.", "corp.example."] {
        let got = lookup(
            &snapshot,
            &format!("web-1.web.default.svc.{zone}"),
            RecordType::A,
        );
        assert_eq!(
            got.answers,
            [format!("web-1.web.default.svc.{zone} 5 IN A 10.1.0.2")]
        );
        let got = lookup(&snapshot, zone, RecordType::SOA);
        assert_eq!(
            got.answers,
            [format!(
                "{zone} 5 IN SOA ns.dns.{zone} hostmaster.{zone} 42 7200 1800 86400 5"
            )]
        );
    }
    for (name, target) in [
        (
            "2.0.1.10.in-addr.arpa.",
            "web-1.web.default.svc.cluster.local.",
        ),
        ("20.0.43.10.in-addr.arpa.", "api.default.svc.cluster.local."),
    ] {
        let got = lookup(&snapshot, name, RecordType::PTR);
        assert_eq!(got.answers, [format!("{name} 5 IN PTR {target}")]);
    }
}

#[test]
fn pod_names_follow_the_pods_mode() {
    let cluster = state(CLUSTER);
    let name = "10-2-0-11.db.pod.cluster.local.";
    let disabled = snapshot(&cluster, &ZoneConfig::default());
    assert_eq!(lookup(&disabled, name, RecordType::A).code, NXDOMAIN);
    assert_eq!(
        lookup(&disabled, "db.pod.cluster.local.", RecordType::A).code,
        NXDOMAIN
    );

    let verified = snapshot(
        &cluster,
        &ZoneConfig {
            pods: PodsMode::Verified,
            ..ZoneConfig::default()
        },
    );
    assert_eq!(
        lookup(&verified, name, RecordType::A).answers,
        ["10-2-0-11.db.pod.cluster.local. 5 IN A 10.2.0.11"]
    );
    assert_eq!(
        lookup(&verified, "10-2-0-99.db.pod.cluster.local.", RecordType::A).code,
        NXDOMAIN
    );
    assert_eq!(
        lookup(
            &verified,
            "10-2-0-11.default.pod.cluster.local.",
            RecordType::A
        )
        .code,
        NXDOMAIN
    );

    let insecure = snapshot(
        &cluster,
        &ZoneConfig {
            pods: PodsMode::Insecure,
            ..ZoneConfig::default()
        },
    );
    let got = lookup(&insecure, "10-2-0-99.db.pod.cluster.local.", RecordType::A);
    assert_eq!(
        got.answers,
        ["10-2-0-99.db.pod.cluster.local. 5 IN A 10.2.0.99"]
    );
    let got = lookup(
        &insecure,
        "10-2-0-99.db.pod.cluster.local.",
        RecordType::AAAA,
    );
    assert_eq!((got.code, got.answers.len()), (NOERROR, 0));
    assert!(got.soa.is_some());
    assert_eq!(
        lookup(
            &insecure,
            "10-2-0-99.nosuch.pod.cluster.local.",
            RecordType::A
        )
        .code,
        NXDOMAIN
    );
}

/// A headless Service `web` in `default` with one slice of `count` ready endpoints.
fn headless_with(count: usize) -> ClusterState {
    let origin = Origin {
        source: Arc::from("model"),
        line: None,
    };
    let namespace = Namespace::new("default").expect("valid");
    let mut state = ClusterState::new();
    state.insert(
        Object::from(Service {
            key: ServiceKey {
                namespace: namespace.clone(),
                name: ServiceName::new("web").expect("valid"),
            },
            kind: ServiceKind::Headless,
            ports: Vec::new(),
            selector: None,
            publish_not_ready_addresses: false,
        }),
        origin.clone(),
    );
    let endpoints = (0..count)
        .map(|i| Endpoint {
            addresses: vec![IpAddr::from([10, 3, (i / 250) as u8, (i % 250) as u8 + 1])],
            ready: true,
            hostname: Some(crate::model::Hostname::new(&format!("web-{i}")).expect("valid")),
            pod_name: None,
        })
        .collect();
    state.insert(
        Object::from(EndpointSlice {
            key: ObjectKey {
                namespace,
                name: Arc::from("web-a"),
            },
            service: Some(ServiceName::new("web").expect("valid")),
            ports: vec![EndpointPort {
                name: Some("http".into()),
                protocol: Protocol::Tcp,
                port: 80,
            }],
            endpoints,
        }),
        origin,
    );
    state
}

#[test]
fn weights_are_max_1_floor_100_over_n() {
    for (count, weight) in [
        (1, 100),
        (2, 50),
        (3, 33),
        (7, 14),
        (100, 1),
        (101, 1),
        (150, 1),
    ] {
        let snapshot = snapshot(&headless_with(count), &ZoneConfig::default());
        let got = lookup(
            &snapshot,
            "_http._tcp.web.default.svc.cluster.local.",
            RecordType::SRV,
        );
        assert_eq!(got.answers.len(), count);
        assert_eq!(got.additionals.len(), count);
        let prefix = format!("_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 {weight} 80 ");
        assert!(
            got.answers.iter().all(|a| a.starts_with(&prefix)),
            "{count}: {:?}",
            &got.answers[..2.min(count)]
        );
    }
}

#[test]
fn a_set_too_big_for_one_message_keeps_every_record() {
    // 2,000 addresses: hickory compresses the first 120 names of a message only, so the A set
    // takes about 90 KB, more than a DNS message holds. hickory's encoder then truncates it
    // (and sets TC) rather than failing; the snapshot must still hold every record.
    let snapshot = snapshot(&headless_with(2000), &ZoneConfig::default());
    let a = lookup(&snapshot, "web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(a.answers.len(), 2000);
    let srv = lookup(&snapshot, "web.default.svc.cluster.local.", RecordType::SRV);
    assert_eq!((srv.answers.len(), srv.additionals.len()), (2000, 2000));
    let text = &zone_text(&snapshot)[2].1;
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("web.default.svc.cluster.local. 5 IN A "))
            .count(),
        2000
    );
    // Pod A and PTR (2,000 each), the Service's A and two SRV sets, the apex's SOA, NS and
    // TXT, and the reverse zones' SOA and NS.
    assert_eq!(snapshot.record_count(), 5 * 2000 + 3 + 4);
}

#[test]
fn peers_come_in_ordinal_order() {
    let snapshot = snapshot(&headless_with(12), &ZoneConfig::default());
    let got = lookup(&snapshot, "web.default.svc.cluster.local.", RecordType::SRV);
    let targets: Vec<&str> = got
        .answers
        .iter()
        .map(|a| a.rsplit(' ').next().expect("a target"))
        .map(|t| t.split('.').next().expect("a label"))
        .collect();
    let expected: Vec<String> = (0..12).map(|i| format!("web-{i}")).collect();
    assert_eq!(targets, expected);
}

#[test]
fn zone_text_lists_every_record_soa_first() {
    let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: None, ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-a, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: ["10.1.0.1"], hostname: web-0}]
ports: [{name: http, port: 80, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: default}
spec: {clusterIP: 10.43.0.20, ports: [{name: https, port: 443}]}
"#;
    let snapshot = snapshot(&state(yaml), &ZoneConfig::default());
    let zones = zone_text(&snapshot);
    let origins: Vec<String> = zones.iter().map(|(o, _)| o.to_string()).collect();
    // Origins in canonical order: arpa. sorts before local.
    assert_eq!(origins, ["in-addr.arpa.", "ip6.arpa.", "cluster.local."]);
    assert_eq!(
        zones[2].1,
        "; zone cluster.local. serial 42
$ORIGIN cluster.local.
cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 42 7200 1800 86400 5
cluster.local. 5 IN NS ns.dns.cluster.local.
dns-version.cluster.local. 28800 IN TXT \"1.1.0\"
api.default.svc.cluster.local. 5 IN A 10.43.0.20
api.default.svc.cluster.local. 5 IN SRV 0 100 443 api.default.svc.cluster.local.
_https._tcp.api.default.svc.cluster.local. 5 IN SRV 0 100 443 api.default.svc.cluster.local.
web.default.svc.cluster.local. 5 IN A 10.1.0.1
web.default.svc.cluster.local. 5 IN SRV 0 100 80 web-0.web.default.svc.cluster.local.
_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 80 web-0.web.default.svc.cluster.local.
web-0.web.default.svc.cluster.local. 5 IN A 10.1.0.1
"
    );
    assert_eq!(
        zones[0].1,
        "; zone in-addr.arpa. serial 42
$ORIGIN in-addr.arpa.
in-addr.arpa. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 42 7200 1800 86400 5
in-addr.arpa. 5 IN NS ns.dns.cluster.local.
1.0.1.10.in-addr.arpa. 5 IN PTR web-0.web.default.svc.cluster.local.
20.0.43.10.in-addr.arpa. 5 IN PTR api.default.svc.cluster.local.
"
    );
}

#[test]
fn distinct_keeps_the_first_of_each_record_in_order_short_or_long() {
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{RData, Record};
    let a = |name: &str, i: u8| {
        Record::from_rdata(
            Name::from_ascii(name).expect("valid"),
            5,
            RData::A(A::new(10, 0, 0, i)),
        )
    };
    // Below and above the size from which duplicates are looked up by hash.
    for count in [3u8, 40] {
        let mut records = super::Distinct::default();
        let mut additionals = super::Distinct::default();
        for i in 0..count {
            records.insert(a("web.default.svc.cluster.local.", i), true);
            additionals.insert(
                a(&format!("web-{i}.web.default.svc.cluster.local."), i),
                false,
            );
        }
        // The same records again, backwards, in other letter case and with another TTL:
        // duplicates as `Record`'s `==` sees them (RFC 2136), so the first copies stay.
        for i in (0..count).rev() {
            let mut again = a("WEB.default.svc.cluster.local.", i);
            again.ttl = 30;
            records.insert(again, true);
            additionals.insert(
                a(&format!("Web-{i}.web.default.svc.cluster.local."), i),
                false,
            );
        }
        // The same address at another name is another additional.
        additionals.insert(a("other.default.svc.cluster.local.", 0), false);
        let expected: Vec<Record> = (0..count)
            .map(|i| a("web.default.svc.cluster.local.", i))
            .collect();
        assert_eq!(records.list, expected, "{count}");
        assert!(records.list.iter().all(|r| r.ttl == 5), "{count}");
        assert_eq!(additionals.list.len(), usize::from(count) + 1, "{count}");
        assert_eq!(
            additionals.list[usize::from(count)].name,
            Name::from_ascii("other.default.svc.cluster.local.").expect("valid")
        );
    }
}

/// `xn--a` is a valid DNS-1123 label (Kubernetes accepts it), but not valid punycode: hickory's
/// IDNA mapping of `&str` labels rejected it, and the whole build failed with it.
#[test]
fn names_that_look_like_punycode_are_served_as_they_are() {
    let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: xn--a, namespace: xn--b}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: xn--b, labels: {app: web}}
spec: {hostname: xn--c, subdomain: xn--a, containers: []}
status: {podIP: 10.9.0.1, conditions: [{type: Ready, status: "True"}]}
"#;
    let snapshot = snapshot(&state(yaml), &ZoneConfig::default());
    for (name, record_type, answer) in [
        (
            "xn--c.xn--a.xn--b.svc.cluster.local.",
            RecordType::A,
            "xn--c.xn--a.xn--b.svc.cluster.local. 5 IN A 10.9.0.1",
        ),
        (
            "1.0.9.10.in-addr.arpa.",
            RecordType::PTR,
            "1.0.9.10.in-addr.arpa. 5 IN PTR xn--c.xn--a.xn--b.svc.cluster.local.",
        ),
    ] {
        let got = lookup(&snapshot, name, record_type);
        assert_eq!(got.code, ResponseCode::NoError, "{name}");
        assert_eq!(got.answers, [answer], "{name}");
    }
}

/// A set whose response does not fit one DNS message (64 KiB) is kept as records, whole. It was
/// kept as hickory encodes it, truncated (for these 2,000 SRV records: 753, and none of their
/// additional records), which the general path then decoded and served as the whole set.
#[test]
fn a_set_too_big_for_one_message_is_kept_whole() {
    let snapshot = snapshot(&headless_with(2000), &ZoneConfig::default());
    for name in [
        "web.default.svc.cluster.local.",
        "_http._tcp.web.default.svc.cluster.local.",
    ] {
        let got = lookup(&snapshot, name, RecordType::SRV);
        assert_eq!(got.answers.len(), 2000, "{name}");
        assert_eq!(got.additionals.len(), 2000, "{name}");
    }
    // Kept as records, so the fast path declines it; a set that fits is encoded.
    let node = |name: &str| {
        snapshot
            .names
            .get(&crate::snapshot::name_key(
                &Name::from_ascii(name).expect("valid"),
            ))
            .cloned()
            .expect("a name of the Service")
    };
    assert!(
        node("web.default.svc.cluster.local.")
            .wire(RecordType::SRV)
            .is_none()
    );
    assert!(
        node("web-7.web.default.svc.cluster.local.")
            .wire(RecordType::A)
            .is_some()
    );
}

/// A set is encoded as `Message::to_vec` encodes the general path's response: checked on sets
/// past hickory's limit of 120 compressed names per message, encoded one after another on one
/// thread (so nothing an encoder keeps may leak from one answer into the next). A set too big
/// for a message comes back as it went in.
#[test]
fn answers_are_encoded_as_a_message_would_be() {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::{A, SRV};
    use hickory_proto::rr::{RData, Record};

    use crate::snapshot::{RecordSet, encode_answer};

    let owner = Name::from_ascii("Peers.default.svc.cluster.local.").expect("valid");
    for count in [1u16, 3, 60, 119, 121, 200, 2000] {
        let target = |i: u16| {
            Name::from_ascii(format!("peers-{i}.peers.default.svc.cluster.local.")).expect("valid")
        };
        let set = RecordSet {
            record_type: RecordType::SRV,
            records: (0..count)
                .map(|i| {
                    Record::from_rdata(
                        owner.clone(),
                        5,
                        RData::SRV(SRV::new(0, 1, 7000, target(i))),
                    )
                })
                .collect(),
            additionals: (0..count)
                .map(|i| {
                    let [hi, lo] = i.to_be_bytes();
                    Record::from_rdata(target(i), 5, RData::A(A::new(10, 9, hi, lo)))
                })
                .collect(),
        };
        let mut message = Message::new(0, MessageType::Response, OpCode::Query);
        message.metadata.authoritative = true;
        message.add_query(Query::query(owner.to_lowercase(), RecordType::SRV));
        message.answers = set.records.clone();
        message.additionals = set.additionals.clone();
        let expected = message.to_vec().expect("hickory encodes it");
        if Message::from_vec(&expected)
            .expect("decodes")
            .metadata
            .truncation
        {
            // (Not `assert_eq!`: it would print thousands of records.)
            let back = encode_answer(&owner, set.clone());
            assert!(back.as_ref().err() == Some(&set), "{count} records");
        } else {
            let encoded = encode_answer(&owner, set).expect("fits");
            assert!(encoded[..] == expected[..], "{count} records: bytes differ");
        }
    }
}
