//! Real DNS software against stsdns: `dig` and `kdig` read its answers, and Knot DNS, loaded with
//! the zone text of `stsdns check --write-zones`, must answer every name of the example exactly
//! as stsdns does.
//!
//! These tests need Debian's `dnsutils` (dig), `knot-dnsutils` (kdig) and `knot` (knotd); CI
//! installs them in `.ci/run`. A missing binary fails the test with the package to install.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hickory_proto::op::Message;
use hickory_proto::rr::{RData, Record, RecordType};

use crate::cli::{Served, run, run_command, text};
use crate::harness::knot::{KnotServer, require};
use crate::harness::*;

/// What dig or kdig printed, cut into the parts the tests compare.
#[derive(Debug, Default)]
struct Printed {
    status: String,
    flags: BTreeSet<String>,
    answer: Vec<String>,
    authority: Vec<String>,
    additional: Vec<String>,
    /// Warnings about the reply itself (not dig's notes about .local or recursion).
    warnings: Vec<String>,
}

/// Parses dig's and kdig's default output (their headers differ in punctuation and case).
fn parse_printed(output: &str) -> Printed {
    let mut printed = Printed::default();
    let mut section: Option<&mut Vec<String>> = None;
    for line in output.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            printed.status = rest.split([',', ';']).next().unwrap_or_default().to_owned();
        }
        let lower = line.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix(";; flags: ") {
            printed.flags = rest
                .split(';')
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            continue;
        }
        if line.contains("WARNING")
            && !line.contains(".local is reserved for Multicast DNS")
            && !line.contains("recursion requested but not available")
        {
            printed.warnings.push(line.trim().to_owned());
        }
        if line.starts_with(";; ANSWER SECTION:") {
            section = Some(&mut printed.answer);
        } else if line.starts_with(";; AUTHORITY SECTION:") {
            section = Some(&mut printed.authority);
        } else if line.starts_with(";; ADDITIONAL SECTION:") {
            section = Some(&mut printed.additional);
        } else if line.trim().is_empty() || line.starts_with(';') {
            section = None;
        } else if let Some(records) = section.as_deref_mut() {
            records.push(line.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    printed
}

/// Runs dig or kdig against `server` and parses what it printed.
fn ask(program: &Path, server: SocketAddr, args: &[&str]) -> Printed {
    let mut command = Command::new(program);
    command
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string()])
        .args(args)
        .stdin(Stdio::null());
    let what = format!("{} {}", program.display(), args.join(" "));
    let output = run_command(command, &what);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{what}: {stdout}{stderr}");
    let mut printed = parse_printed(&stdout);
    printed.warnings.extend(
        stderr
            .lines()
            .filter(|l| l.contains("WARNING"))
            .map(str::to_owned),
    );
    printed
}

fn dig() -> PathBuf {
    require("dig", "dnsutils")
}

fn kdig() -> PathBuf {
    require("kdig", "knot-dnsutils")
}

/// The serial of a listening line.
fn serial(served: &Served) -> String {
    served
        .line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("serial="))
        .expect("serial in the listening line")
        .to_owned()
}

#[test]
fn dig_shows_the_peer_list_with_addresses_and_aa() {
    let served = Served::start(&[]);
    let printed = ask(
        &dig(),
        served.addr,
        &["SRV", "kubia.default.svc.cluster.local"],
    );
    assert_eq!(printed.status, "NOERROR");
    assert_eq!(
        printed.flags,
        ["qr", "aa", "rd"].map(String::from).into(),
        "authoritative, recursion not offered"
    );
    assert_eq!(
        printed.answer,
        [
            "kubia.default.svc.cluster.local. 5 IN SRV 0 50 80 kubia-0.kubia.default.svc.cluster.local.",
            "kubia.default.svc.cluster.local. 5 IN SRV 0 50 80 kubia-1.kubia.default.svc.cluster.local.",
        ]
    );
    assert_eq!(
        printed.additional,
        [
            "kubia-0.kubia.default.svc.cluster.local. 5 IN A 10.42.1.5",
            "kubia-1.kubia.default.svc.cluster.local. 5 IN A 10.42.1.6",
        ]
    );
    assert_eq!(printed.warnings, Vec::<String>::new());

    let printed = ask(
        &dig(),
        served.addr,
        &[
            "+norecurse",
            "SRV",
            "_http._tcp.svc-nginx.prod.svc.cluster.local",
        ],
    );
    assert_eq!(printed.flags, ["qr", "aa"].map(String::from).into());
    assert_eq!(
        printed.answer,
        [
            "_http._tcp.svc-nginx.prod.svc.cluster.local. 5 IN SRV 0 50 80 sts-nginx-0.svc-nginx.prod.svc.cluster.local.",
            "_http._tcp.svc-nginx.prod.svc.cluster.local. 5 IN SRV 0 50 80 sts-nginx-1.svc-nginx.prod.svc.cluster.local.",
        ]
    );
}

#[test]
fn dig_shows_pod_addresses_reverse_names_and_the_version() {
    let served = Served::start(&[]);
    let dig = dig();
    let printed = ask(
        &dig,
        served.addr,
        &["A", "sts-nginx-0.svc-nginx.prod.svc.cluster.local"],
    );
    assert_eq!(printed.status, "NOERROR");
    assert!(printed.flags.contains("aa"), "{printed:?}");
    assert_eq!(
        printed.answer,
        ["sts-nginx-0.svc-nginx.prod.svc.cluster.local. 5 IN A 10.42.0.11"]
    );

    let printed = ask(&dig, served.addr, &["-x", "10.42.1.5"]);
    assert_eq!(
        printed.answer,
        ["5.1.42.10.in-addr.arpa. 5 IN PTR kubia-0.kubia.default.svc.cluster.local."]
    );

    let printed = ask(&dig, served.addr, &["TXT", "dns-version.cluster.local"]);
    assert_eq!(
        printed.answer,
        ["dns-version.cluster.local. 28800 IN TXT \"1.1.0\""]
    );

    let printed = ask(
        &dig,
        served.addr,
        &["A", "db-external.default.svc.cluster.local"],
    );
    assert_eq!(
        printed.answer,
        ["db-external.default.svc.cluster.local. 5 IN CNAME db.example.com."]
    );
}

#[test]
fn dig_shows_nxdomain_with_the_soa_for_the_pod_that_is_not_ready() {
    let served = Served::start(&[]);
    let serial = serial(&served);
    for program in [dig(), kdig()] {
        let printed = ask(
            &program,
            served.addr,
            &["A", "web-1.nginx.default.svc.cluster.local"],
        );
        assert_eq!(printed.status, "NXDOMAIN", "{}", program.display());
        assert!(printed.flags.contains("aa"), "{printed:?}");
        assert_eq!(printed.answer, Vec::<String>::new());
        assert_eq!(
            printed.authority,
            [format!(
                "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. {serial} 7200 1800 86400 5"
            )]
        );
    }
    // NODATA: the name exists, not with that type.
    let printed = ask(
        &kdig(),
        served.addr,
        &["AAAA", "web-0.nginx.default.svc.cluster.local"],
    );
    assert_eq!(printed.status, "NOERROR");
    assert_eq!(printed.answer, Vec::<String>::new());
    assert_eq!(printed.authority.len(), 1, "{printed:?}");
}

/// A headless Service with 60 ready pods: 60 A records do not fit 512 bytes.
fn sixty_peers() -> tempfile::TempDir {
    let mut yaml =
        manifests::headless_service("big", "peers", "peers", &[("peer", 7000, "7000")], false);
    for i in 0..60 {
        yaml.push_str(&manifests::pod(
            "big",
            &format!("peers-{i}"),
            "peers",
            "peers",
            &[&format!("10.44.0.{}", i + 1)],
            true,
        ));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("peers.yaml"), yaml).expect("write");
    dir
}

#[test]
fn kdig_gets_tc_over_udp_and_everything_over_tcp() {
    let dir = sixty_peers();
    let feed = dir.path().join("peers.yaml").display().to_string();
    let served = Served::start(&["--feed", &feed]);
    let kdig = kdig();
    let name = "peers.big.svc.cluster.local";

    // No EDNS: 512 bytes, so TC.
    let printed = ask(&kdig, served.addr, &["+notcp", "A", name]);
    assert_eq!(printed.status, "NOERROR");
    assert!(printed.flags.contains("tc"), "{printed:?}");
    assert!(printed.answer.len() < 60, "{}", printed.answer.len());

    // TCP: all of it, no TC.
    let printed = ask(&kdig, served.addr, &["+tcp", "A", name]);
    assert!(!printed.flags.contains("tc"), "{printed:?}");
    assert_eq!(printed.answer.len(), 60);
    assert_eq!(printed.warnings, Vec::<String>::new());

    // A 4096-byte EDNS buffer holds all 60 over UDP.
    let printed = ask(&kdig, served.addr, &["+notcp", "+bufsize=4096", "A", name]);
    assert!(!printed.flags.contains("tc"), "{printed:?}");
    assert_eq!(printed.answer.len(), 60);

    // The peer list as SRV (60 targets, each with its A record) only fits TCP; dig retries
    // there by itself on TC.
    let printed = ask(&dig(), served.addr, &["SRV", name]);
    assert!(!printed.flags.contains("tc"), "{printed:?}");
    assert_eq!(printed.answer.len(), 60);
    assert!(
        printed
            .answer
            .iter()
            .all(|r| r.starts_with("peers.big.svc.cluster.local. 5 IN SRV 0 1 7000 peers-"))
    );
}

/// A truncated reply is a valid message: the records that fit and nothing after them. With
/// hickory-proto 0.26.3, a record that does not fit is rolled back in the encoder's offset but
/// its bytes stay in the buffer, and hickory-server sends the whole buffer
/// (hickory-dns/hickory-dns#3917 fixes it upstream): kdig said "malformed reply packet
/// (trailing data)" and dig "Message has 23 extra bytes at end" for the 512-byte reply below,
/// until the server sized the answer itself.
#[test]
fn truncated_udp_replies_carry_no_partial_record() {
    let dir = sixty_peers();
    let feed = dir.path().join("peers.yaml").display().to_string();
    let served = Served::start(&["--feed", &feed]);
    for (program, args) in [
        (kdig(), &["+notcp", "A", "peers.big.svc.cluster.local"][..]),
        (
            dig(),
            &["+ignore", "+noedns", "A", "peers.big.svc.cluster.local"][..],
        ),
    ] {
        let printed = ask(&program, served.addr, args);
        assert!(printed.flags.contains("tc"), "{printed:?}");
        assert_eq!(
            printed.warnings,
            Vec::<String>::new(),
            "{} {args:?}",
            program.display()
        );
    }
}

/// The owner names of zone text and the types each has.
fn owners(zone_text: &str) -> BTreeMap<String, BTreeSet<RecordType>> {
    let mut owners: BTreeMap<String, BTreeSet<RecordType>> = BTreeMap::new();
    for line in zone_text.lines() {
        if line.starts_with(';') || line.starts_with('$') || line.trim().is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(
            words.len() >= 5 && words[2] == "IN",
            "unexpected zone line {line:?}"
        );
        let record_type: RecordType = words[3].parse().expect("a record type");
        owners
            .entry(words[0].to_ascii_lowercase())
            .or_default()
            .insert(record_type);
    }
    owners
}

/// The names between each owner and its zone's apex: empty non-terminals unless they own
/// records themselves.
fn ancestors(owner: &str, zone: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut name = owner;
    while let Some((_, parent)) = name.split_once('.') {
        if parent.len() < zone.len() {
            break;
        }
        names.push(parent.to_owned());
        name = parent;
    }
    names
}

/// A record as one comparable line; the SOA serial (the time of each run) left out.
fn comparable(record: &Record) -> String {
    let data = match &record.data {
        RData::SOA(soa) => format!(
            "{} {} SERIAL {} {} {} {}",
            soa.mname, soa.rname, soa.refresh, soa.retry, soa.expire, soa.minimum
        ),
        other => other.to_string(),
    };
    format!(
        "{} {} {} {}",
        record.name,
        record.ttl,
        record.record_type(),
        data
    )
}

fn section(records: &[Record]) -> Vec<String> {
    let mut lines: Vec<String> = records
        .iter()
        .filter(|r| r.record_type() != RecordType::OPT)
        .map(comparable)
        .collect();
    lines.sort();
    lines
}

/// One reply reduced to what must agree: rcode, AA, and each section as sorted records.
///
/// The additional section is compared as a set: Knot 3.2 adds a target's address once per SRV
/// record naming it (kube-dns SRV: the A of kube-dns twice, for ports 53 and 9153), where
/// stsdns adds it once (RFC 2181 §5.5: duplicate records in a section serve no purpose).
///
/// Only the answer owners must echo the question's letter case. Other names compare without
/// case (DNS names are case-insensitive): a name compressed against the question takes the
/// question's case in stsdns, while Knot writes it as the zone has it.
fn summary(reply: &Message) -> String {
    let lower = |lines: Vec<String>| -> Vec<String> {
        let mut lines: Vec<String> = lines.iter().map(|l| l.to_ascii_lowercase()).collect();
        lines.sort();
        lines.dedup();
        lines
    };
    let answers: Vec<String> = section(&reply.answers)
        .iter()
        .map(|line| match line.split_once(' ') {
            Some((owner, rest)) => format!("{owner} {}", rest.to_ascii_lowercase()),
            None => line.clone(),
        })
        .collect();
    format!(
        "{} aa={} answer={:?} authority={:?} additional={:?}",
        reply.metadata.response_code,
        reply.metadata.authoritative,
        answers,
        lower(section(&reply.authorities)),
        lower(section(&reply.additionals)),
    )
}

/// Names stsdns knows that are not in its zone text, so Knot cannot: `pod.<zone>` is an empty
/// non-terminal by contract (DESIGN §2), whether or not --pods synthesizes names under it.
const SYNTHESIZED: &[(&str, &str)] = &[(
    "pod.cluster.local.",
    "pod.<zone> is an empty non-terminal in stsdns (DESIGN §2); the zone text has nothing under it, so Knot says NXDOMAIN",
)];

/// How a comparison went.
struct Compared {
    names: usize,
    questions: usize,
    documented: Vec<String>,
}

/// Loads Knot with the zone text of `stsdns check [FEED] --write-zones`, serves the same feed
/// with stsdns, and asks both every owner name of the zone text, each empty non-terminal above
/// them, `nope.<zone>` and `absent`: for every type the name has and the usual others, over UDP
/// and TCP, plus a few questions in mixed case. Panics listing every difference that is not
/// documented in [`SYNTHESIZED`].
async fn compare_with_knot(feed: Option<&str>, absent: &[&str]) -> Compared {
    let dir = tempfile::tempdir().expect("tempdir");
    let zones_dir = dir.path().join("zones");
    let zones_arg = zones_dir.display().to_string();
    let mut check = vec!["check", "--write-zones", &zones_arg];
    check.extend(feed);
    let output = run(&check);
    let (_, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");

    let zones = ["cluster.local.", "in-addr.arpa.", "ip6.arpa."].map(String::from);
    let mut names: BTreeMap<String, BTreeSet<RecordType>> = BTreeMap::new();
    for zone in &zones {
        let text = std::fs::read_to_string(zones_dir.join(format!("{zone}zone")))
            .expect("zone file written");
        for (owner, types) in owners(&text) {
            for ancestor in ancestors(&owner, zone) {
                names.entry(ancestor).or_default();
            }
            names.entry(owner).or_default().extend(types);
        }
        names.entry(format!("nope.{zone}")).or_default();
    }
    for name in absent {
        names.entry((*name).to_owned()).or_default();
    }

    let knot = KnotServer::start(dir.path(), &zones).await;
    let served = match feed {
        Some(feed) => Served::start(&["--feed", feed]),
        None => Served::start(&[]),
    };

    let always = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::SRV,
        RecordType::PTR,
        RecordType::TXT,
        RecordType::CNAME,
        RecordType::NS,
        RecordType::SOA,
        RecordType::MX,
    ];
    let mut questions: Vec<(String, RecordType, Transport)> = Vec::new();
    for (name, types) in &names {
        let mut asked: BTreeSet<RecordType> = types.clone();
        asked.extend(always);
        for record_type in asked {
            for transport in TRANSPORTS {
                questions.push((name.clone(), record_type, transport));
            }
        }
    }
    // The question's letter case is echoed by both: ask a few owners in mixed case.
    for (name, types) in names.iter().filter(|(_, t)| !t.is_empty()).step_by(7) {
        let mixed: String = name
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        let record_type = *types.iter().next().expect("not empty");
        questions.push((mixed, record_type, Transport::Udp));
    }

    let mut differences = Vec::new();
    let mut documented = Vec::new();
    for (name, record_type, transport) in &questions {
        let from_knot = summary(&query(knot.addr, name, *record_type, *transport).await);
        let from_stsdns = summary(&query(served.addr, name, *record_type, *transport).await);
        if from_knot == from_stsdns {
            continue;
        }
        let difference = format!(
            "{name} {record_type} {transport:?}\n  knot:   {from_knot}\n  stsdns: {from_stsdns}"
        );
        match SYNTHESIZED
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some((_, why)) => documented.push(format!("{difference}\n  ({why})")),
            None => differences.push(difference),
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} replies differ between Knot and stsdns:\n{}\nknotd log:\n{}",
        differences.len(),
        questions.len(),
        differences.join("\n"),
        knot.log()
    );
    Compared {
        names: names.len(),
        questions: questions.len(),
        documented,
    }
}

/// Every name of the example zone, asked of Knot (loaded with `check --write-zones`) and of
/// stsdns: the replies agree, but for `pod.cluster.local` (see [`SYNTHESIZED`]).
#[tokio::test]
async fn knot_loaded_with_the_zone_text_answers_every_name_like_stsdns() {
    let compared = compare_with_knot(
        None,
        &[
            "ns.dns.cluster.local.",
            "nope.svc.cluster.local.",
            "nope.default.svc.cluster.local.",
            "web-1.nginx.default.svc.cluster.local.",
            "x.kubia-0.kubia.default.svc.cluster.local.",
            "_http._udp.kubia.default.svc.cluster.local.",
            "_dns._tcp.kube-dns.kube-system.svc.cluster.local.",
            "21.3.42.10.in-addr.arpa.",
            "1.1.1.1.in-addr.arpa.",
            "pod.cluster.local.",
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa.",
        ],
    )
    .await;
    eprintln!(
        "compared {} questions over {} names; documented differences:\n{}",
        compared.questions,
        compared.names,
        compared.documented.join("\n")
    );
    assert!(compared.names >= 60, "{} names", compared.names);
    // pod.cluster.local, for each of the 9 types over UDP and TCP.
    assert_eq!(compared.documented.len(), 18, "{:#?}", compared.documented);
}

/// What the example lacks: IPv6 and dual-stack addresses (ip6.arpa), endpoints without a
/// hostname (dashed names), a not-ready endpoint in a slice, an unnamed port, and an
/// ExternalName pointing inside the zone (the CNAME is followed in the same answer).
const DUAL_STACK: &str = r#"apiVersion: v1
kind: Service
metadata: {name: web, namespace: dual}
spec:
  clusterIP: 10.43.50.1
  clusterIPs: [10.43.50.1, "fd00:43::50:1"]
  ipFamilies: [IPv4, IPv6]
  ports:
  - {name: http, port: 80, protocol: TCP, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata: {name: alias, namespace: dual}
spec: {type: ExternalName, externalName: web.dual.svc.cluster.local}
---
apiVersion: v1
kind: Service
metadata: {name: cache, namespace: dual}
spec:
  clusterIP: None
  ports:
  - {name: redis, port: 6379}
  - {port: 16379}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: cache-v6
  namespace: dual
  labels: {kubernetes.io/service-name: cache}
addressType: IPv6
endpoints:
- addresses: ["fd00:42::1:5"]
  conditions: {ready: true}
- addresses: ["fd00:42::1:6"]
  conditions: {ready: false}
- addresses: ["fd00:42::1:7"]
  hostname: cache-2
ports:
- {name: redis, port: 6379, protocol: TCP}
- {port: 16379, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: cache-v4
  namespace: dual
  labels: {kubernetes.io/service-name: cache}
addressType: IPv4
endpoints:
- addresses: ["10.42.9.5"]
- addresses: ["10.42.9.7"]
  hostname: cache-2
ports:
- {name: redis, port: 6379, protocol: TCP}
- {port: 16379, protocol: TCP}
"#;

#[tokio::test]
async fn knot_agrees_on_dual_stack_dashed_names_and_cname_chains() {
    let dir = tempfile::tempdir().expect("tempdir");
    let feed = dir.path().join("dual.yaml");
    std::fs::write(&feed, DUAL_STACK).expect("write");
    let feed = feed.display().to_string();
    let compared = compare_with_knot(
        Some(&feed),
        &[
            "fd00-42--1-6.cache.dual.svc.cluster.local.",
            "_redis._udp.cache.dual.svc.cluster.local.",
            "pod.cluster.local.",
        ],
    )
    .await;
    assert!(compared.names >= 30, "{} names", compared.names);
    assert_eq!(compared.documented.len(), 18, "{:#?}", compared.documented);
}
