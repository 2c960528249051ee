//! The fast path against the general path: wherever the fast path answers from a pre-encoded
//! response, its bytes must be exactly what the general path encodes for the same request.
//!
//! Every name of the example cluster (and of a cluster with dual-stack, dashed and ExternalName
//! names), random names inside and outside the zones, every query type the server knows, in
//! lowercase and mixed case, without EDNS and with EDNS at several buffer sizes, over UDP and TCP
//! rules. The test also counts how often the fast path answered, so it cannot pass by declining.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use stsdns::config::{FeedSource, ZoneConfig};
use stsdns::server::{Responder, Transport, fast};
use stsdns::snapshot;

use crate::harness::*;

/// The query types asked of every name.
const TYPES: [RecordType; 12] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::SRV,
    RecordType::PTR,
    RecordType::CNAME,
    RecordType::TXT,
    RecordType::SOA,
    RecordType::NS,
    RecordType::MX,
    RecordType::ANY,
    RecordType::CAA,
    RecordType::HTTPS,
];

/// EDNS buffer sizes asked with (`None`: no OPT record).
const BUFFERS: [Option<u16>; 5] = [None, Some(512), Some(1232), Some(4096), Some(65_000)];

/// Alternates letter case, deterministically: `kubia` → `KuBiA`.
fn mixed_case(name: &str) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

fn request(name: &str, record_type: RecordType, buffer: Option<u16>, id: u16, rd: bool) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = rd;
    message.add_query(Query::query(
        Name::from_ascii(name).expect("valid name"),
        record_type,
    ));
    if let Some(size) = buffer {
        let mut edns = Edns::new();
        edns.set_max_payload(size);
        message.set_edns(edns);
    }
    message.to_vec().expect("query encodes")
}

/// Compares both paths on every request; returns how many the fast path answered.
fn compare(responder: &Responder, reader: &snapshot::SnapshotReader, names: &[String]) -> usize {
    let snapshot = reader.load().expect("published");
    let mut fast_answered = 0;
    let (mut fast_out, mut general_out) = (Vec::new(), Vec::new());
    let mut id = 0u16;
    for name in names {
        for spelled in [name.clone(), mixed_case(name)] {
            for record_type in TYPES {
                for buffer in BUFFERS {
                    for transport in [Transport::Udp, Transport::Tcp] {
                        id = id.wrapping_add(1);
                        let bytes =
                            request(&spelled, record_type, buffer, id, id.is_multiple_of(2));
                        let udp = transport == Transport::Udp;
                        if !fast::answer(&snapshot, &bytes, udp, &mut fast_out) {
                            continue;
                        }
                        fast_answered += 1;
                        assert!(responder.general(&bytes, transport, &mut general_out));
                        assert_eq!(
                            fast_out,
                            general_out,
                            "{spelled} {record_type} {buffer:?} {transport:?}: the fast path differs\n\
                             fast:    {:?}\ngeneral: {:?}",
                            Message::from_vec(&fast_out),
                            Message::from_vec(&general_out)
                        );
                        // And the response is what a client accepts: it decodes, it is an
                        // answer to this question, with the question's case.
                        let decoded = Message::from_vec(&fast_out).expect("decodes");
                        assert_eq!(decoded.metadata.id, id);
                        assert_eq!(decoded.queries[0].name.to_string(), spelled);
                        assert_eq!(decoded.answers[0].name.to_string(), spelled);
                    }
                }
            }
        }
    }
    fast_answered
}

fn names_of(reader: &snapshot::SnapshotReader) -> Vec<String> {
    let snapshot = reader.load().expect("published");
    let mut names: Vec<String> = stsdns::records::zone_text(&snapshot)
        .iter()
        .flat_map(|(_, text)| text.lines().map(str::to_owned).collect::<Vec<_>>())
        .filter(|line| !line.starts_with(';') && !line.starts_with('$'))
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    // Names that do not exist, inside and outside the zones, and empty non-terminals.
    names.extend(
        [
            "nope.default.svc.cluster.local.",
            "svc.cluster.local.",
            "default.svc.cluster.local.",
            "_tcp.kubia.default.svc.cluster.local.",
            "42.10.in-addr.arpa.",
            "example.com.",
            "x.y.z.kubia-0.kubia.default.svc.cluster.local.",
        ]
        .map(str::to_owned),
    );
    names
}

#[tokio::test]
async fn the_fast_path_gives_the_general_paths_bytes_for_the_example() {
    let loaded = stsdns::app::load(&[FeedSource::Embedded]).expect("the example loads");
    let server = TestServer::with_state(&loaded.state, ZoneConfig::default()).await;
    let responder = Responder::new(
        server.reader.clone(),
        stsdns::app::served_zones(&server.zone),
    );
    let names = names_of(&server.reader);
    assert!(names.len() > 40, "{}", names.len());
    let answered = compare(&responder, &server.reader, &names);
    // Every positive A/AAAA/SRV/PTR/TXT/SOA/NS answer of the example is pre-encoded.
    assert!(
        answered > 500,
        "the fast path answered only {answered} requests"
    );
}

#[tokio::test]
async fn the_fast_path_gives_the_general_paths_bytes_for_dual_stack_and_big_sets() {
    let mut yaml = manifests::headless_service("dual", "web", "web", &[("http", 80, "80")], false);
    yaml.push_str(&manifests::endpoint_slice(
        "dual",
        "web-v4",
        "web",
        "IPv4",
        &[
            ("10.1.0.1", "web-0", true),
            ("10.1.0.2", "", true),
            ("10.1.0.3", "web-2", false),
        ],
        &[("http", 80)],
    ));
    yaml.push_str(&manifests::endpoint_slice(
        "dual",
        "web-v6",
        "web",
        "IPv6",
        &[("fd00::1", "web-0", true), ("fd00::2", "", true)],
        &[("http", 80)],
    ));
    // 60 peers: the SRV answer does not fit 512 bytes, so the fast path must decline there.
    yaml.push_str(&manifests::headless_service(
        "big",
        "peers",
        "peers",
        &[("", 7000, "7000")],
        false,
    ));
    for i in 0..60 {
        yaml.push_str(&manifests::pod(
            "big",
            &format!("peers-{i}"),
            "peers",
            "peers",
            &[&format!("10.2.0.{}", i + 1)],
            true,
        ));
    }
    let server = TestServer::with_manifests(&yaml, ZoneConfig::default()).await;
    let responder = Responder::new(
        server.reader.clone(),
        stsdns::app::served_zones(&server.zone),
    );
    let names = names_of(&server.reader);
    let answered = compare(&responder, &server.reader, &names);
    assert!(
        answered > 500,
        "the fast path answered only {answered} requests"
    );
}

#[tokio::test]
async fn the_fast_path_declines_what_it_cannot_answer_exactly() {
    let server = TestServer::example().await;
    let snapshot = server.reader.load().expect("published");
    let mut out = Vec::new();
    let name = "kubia.default.svc.cluster.local.";
    // A negative answer, ANY, and an answer too big for a 512-byte UDP reply.
    for (name, record_type) in [
        ("nope.default.svc.cluster.local.", RecordType::A),
        (name, RecordType::MX),
        (name, RecordType::ANY),
    ] {
        assert!(!fast::answer(
            &snapshot,
            &request(name, record_type, None, 1, true),
            true,
            &mut out
        ));
        assert!(out.is_empty());
    }
    // EDNS version 1 (BADVERS is the general path's), trailing bytes, and a response.
    let mut message = Message::new(7, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(
        Name::from_ascii(name).expect("valid"),
        RecordType::SRV,
    ));
    let mut edns = Edns::new();
    edns.set_version(1);
    message.set_edns(edns);
    assert!(!fast::answer(
        &snapshot,
        &message.to_vec().expect("encodes"),
        true,
        &mut out
    ));
    let mut trailing = request(name, RecordType::SRV, None, 1, true);
    trailing.push(0);
    assert!(!fast::answer(&snapshot, &trailing, true, &mut out));
    let mut response = request(name, RecordType::SRV, None, 1, true);
    response[2] |= 0x80;
    assert!(!fast::answer(&snapshot, &response, true, &mut out));
    // And the plain question is answered.
    assert!(fast::answer(
        &snapshot,
        &request(name, RecordType::SRV, None, 1, true),
        true,
        &mut out
    ));
}

#[tokio::test]
async fn a_udp_batch_answers_each_request_as_one_at_a_time() {
    let server = TestServer::example().await;
    let responder = Responder::new(
        server.reader.clone(),
        stsdns::app::served_zones(&server.zone),
    );
    let names = names_of(&server.reader);
    let mut requests: Vec<Vec<u8>> = Vec::new();
    let mut id = 0u16;
    for name in &names {
        for record_type in TYPES {
            for buffer in [None, Some(1232)] {
                id = id.wrapping_add(1);
                requests.push(request(name, record_type, buffer, id, true));
            }
        }
    }
    // Among them, what the fast path declines: too short to answer, trailing bytes, a response.
    let mut trailing = request(&names[0], RecordType::A, None, 1, true);
    trailing.push(0);
    let mut response = request(&names[0], RecordType::A, None, 2, true);
    response[2] |= 0x80;
    for (at, odd) in [vec![0u8; 5], trailing, response].into_iter().enumerate() {
        requests.insert(at * 37 + 5, odd);
    }

    let (mut one, mut answered_one) = (Vec::new(), 0);
    let mut answered_in_batches = 0;
    // Batches of every size up to 32 (a receive takes at most 32), slots spread out as the
    // worker's are when some datagrams of a receive are not answered.
    let mut rest = &requests[..];
    let mut size = 1;
    while !rest.is_empty() {
        let (batch, later) = rest.split_at(size.min(rest.len()));
        rest = later;
        size = size % 32 + 1;
        let slots: Vec<(usize, &[u8])> = batch
            .iter()
            .enumerate()
            .map(|(i, bytes)| (i * 2 % 64, bytes.as_slice()))
            .collect();
        let mut outs = vec![Vec::new(); 64];
        let mut sent = Vec::new();
        responder.respond_udp_batch(&slots, &mut outs, |slot| sent.push(slot));
        for &(slot, bytes) in &slots {
            let answered = responder.respond(bytes, Transport::Udp, &mut one);
            answered_one += usize::from(answered);
            assert_eq!(
                sent.contains(&slot),
                answered,
                "{:?}",
                Message::from_vec(bytes)
            );
            if answered {
                answered_in_batches += 1;
                assert_eq!(outs[slot], one, "{:?}", Message::from_vec(bytes));
            }
        }
    }
    assert_eq!(answered_in_batches, answered_one);
    // Everything but the 5-byte request and the response is answered.
    assert_eq!(answered_one, requests.len() - 2);
}
