//! Message size: UDP answers fit the client's buffer (512 without EDNS) and set TC when they do
//! not; TCP answers are complete; additionals are dropped, without TC, when only they do not fit.

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::harness::*;
use crate::srv::big_headless;

const SRV_NAME: &str = "_http._tcp.web.default.svc.cluster.local.";

async fn three_hundred() -> TestServer {
    TestServer::with_manifests(
        &big_headless("web", 300, &[("http", 80)]),
        Default::default(),
    )
    .await
}

/// The SRV records of a reply.
fn srv_count(reply: &Message) -> usize {
    reply
        .answers
        .iter()
        .filter(|r| r.record_type() == RecordType::SRV)
        .count()
}

#[tokio::test]
async fn udp_without_edns_is_truncated_to_512_bytes() {
    let server = three_hundred().await;
    let (reply, size) = exchange(
        server.addr,
        &query_message(SRV_NAME, RecordType::SRV, None),
        Transport::Udp,
    )
    .await;
    assert!(reply.metadata.truncation, "TC must be set: {reply}");
    assert!(size <= 512, "{size} bytes");
    assert!(srv_count(&reply) < 300);
}

#[tokio::test]
async fn udp_with_edns_1232_is_truncated_to_1232_bytes() {
    let server = three_hundred().await;
    let (reply, size) = exchange(
        server.addr,
        &query_message(SRV_NAME, RecordType::SRV, Some(1232)),
        Transport::Udp,
    )
    .await;
    assert!(reply.metadata.truncation, "TC must be set: {reply}");
    assert!(size <= 1232, "{size} bytes");
    assert!(size > 512, "the larger buffer is used: {size} bytes");
    assert!(srv_count(&reply) < 300);
}

#[tokio::test]
async fn tcp_answers_all_300_srv_records_without_tc() {
    let server = three_hundred().await;
    for edns in [None, Some(512), Some(1232)] {
        let (reply, size) = exchange(
            server.addr,
            &query_message(SRV_NAME, RecordType::SRV, edns),
            Transport::Tcp,
        )
        .await;
        assert!(!reply.metadata.truncation, "{edns:?}");
        assert_eq!(srv_count(&reply), 300, "{edns:?}");
        assert!(size > 4096, "{size}");
        let mut targets: Vec<String> = reply.answers.iter().map(|r| r.data.to_string()).collect();
        targets.dedup();
        assert_eq!(targets.len(), 300);
        assert_eq!(additionals(&reply).len(), 300, "every target's A");
    }
    // And with hickory's client.
    let reply = server
        .tcp("web.default.svc.cluster.local.", RecordType::SRV)
        .await;
    assert_answer(&reply);
    assert!(!reply.metadata.truncation);
    assert_eq!(srv_count(&reply), 300);
    assert!(
        reply
            .answers
            .iter()
            .all(|r| r.data.to_string().starts_with("0 1 80 web-"))
    );
    let reply = server
        .tcp("web.default.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(reply.answers.len(), 300);
}

#[tokio::test]
async fn additionals_that_do_not_fit_are_dropped_without_tc() {
    // 7 SRV records (55 bytes each: SRV targets are not compressed) fit in 512 bytes; with
    // their 7 A records in the additional section the reply would be 595 bytes.
    let server =
        TestServer::with_manifests(&big_headless("web", 7, &[("http", 80)]), Default::default())
            .await;
    let (reply, size) = exchange(
        server.addr,
        &query_message(SRV_NAME, RecordType::SRV, None),
        Transport::Udp,
    )
    .await;
    assert!(
        !reply.metadata.truncation,
        "the answer is complete: {reply}"
    );
    assert!(size <= 512, "{size} bytes");
    assert_eq!(srv_count(&reply), 7);
    assert_eq!(additionals(&reply), Vec::<String>::new());

    // With room for them, they are there: the same reply is over 512 bytes.
    for (edns, transport) in [(Some(4096), Transport::Udp), (None, Transport::Tcp)] {
        let (reply, size) = exchange(
            server.addr,
            &query_message(SRV_NAME, RecordType::SRV, edns),
            transport,
        )
        .await;
        assert!(!reply.metadata.truncation, "{transport:?}");
        assert_eq!(srv_count(&reply), 7);
        assert_eq!(additionals(&reply).len(), 7, "{transport:?}");
        assert!(size > 512, "{size} bytes");
    }
}

#[tokio::test]
async fn tcp_answers_past_what_hickory_encodes_in_one_message() {
    // 600 SRV records (about 50 KB: hickory compresses the first 120 names of a message only)
    // fit one message; with their 600 A records in the additional section the reply would be
    // about 80 KB. hickory's encoder cuts such a message short itself and sets TC; the answer
    // is complete, so TC must stay clear.
    let server = TestServer::with_manifests(
        &big_headless("web", 600, &[("http", 80)]),
        Default::default(),
    )
    .await;
    for edns in [None, Some(1232)] {
        let (reply, size) = exchange(
            server.addr,
            &query_message(SRV_NAME, RecordType::SRV, edns),
            Transport::Tcp,
        )
        .await;
        assert!(
            !reply.metadata.truncation,
            "{edns:?}: complete answer, TC set"
        );
        assert_eq!(srv_count(&reply), 600, "{edns:?}");
        assert!(additionals(&reply).len() < 600, "{edns:?}: {size} bytes");
    }
    // Over UDP, as many answers as the client's buffer holds, with TC.
    let (reply, size) = exchange(
        server.addr,
        &query_message(SRV_NAME, RecordType::SRV, Some(1232)),
        Transport::Udp,
    )
    .await;
    assert!(reply.metadata.truncation && size <= 1232, "{size} bytes");
    assert!(srv_count(&reply) > 10, "{}", srv_count(&reply));
}

#[tokio::test]
async fn a_set_larger_than_any_message_is_cut_at_the_last_record_that_fits_with_tc() {
    // 2,000 A records at one name take about 90 KB: no message holds them all.
    let server = TestServer::with_manifests(
        &big_headless("web", 2000, &[("http", 80)]),
        Default::default(),
    )
    .await;
    let name = "web.default.svc.cluster.local.";
    let (reply, size) = exchange(
        server.addr,
        &query_message(name, RecordType::A, None),
        Transport::Tcp,
    )
    .await;
    assert!(reply.metadata.truncation, "not every record fits");
    let count = reply.answers.len();
    // Past the first 120 (compressed) names, each A record takes 45 bytes: one more would
    // not have fitted.
    assert!(
        size <= 65535 && size + 45 > 65535,
        "{size} bytes, {count} records"
    );
    let (reply, size) = exchange(
        server.addr,
        &query_message(name, RecordType::A, Some(1232)),
        Transport::Udp,
    )
    .await;
    assert!(reply.metadata.truncation && size <= 1232 && size + 16 > 1232 - 11);
    assert!(reply.answers.len() > 60, "{}", reply.answers.len());
    // The SRV set too: cut, and said to be.
    for edns in [None, Some(1232)] {
        let (reply, _) = exchange(
            server.addr,
            &query_message(name, RecordType::SRV, edns),
            Transport::Tcp,
        )
        .await;
        let count = srv_count(&reply);
        assert!(
            reply.metadata.truncation,
            "{edns:?}: {count} of 2000 SRV records, no TC"
        );
    }
}

#[tokio::test]
async fn udp_replies_never_exceed_the_advertised_buffer() {
    let server = three_hundred().await;
    for name in [SRV_NAME, "web.default.svc.cluster.local."] {
        for record_type in [RecordType::SRV, RecordType::A] {
            for edns in [None, Some(512), Some(1232), Some(4096)] {
                let (reply, size) = exchange(
                    server.addr,
                    &query_message(name, record_type, edns),
                    Transport::Udp,
                )
                .await;
                let limit = usize::from(edns.unwrap_or(512));
                assert!(size <= limit, "{name} {record_type} {edns:?}: {size} bytes");
                if name == SRV_NAME && record_type == RecordType::A {
                    continue;
                }
                // None of these answers fits in 4096 bytes.
                assert!(reply.metadata.truncation, "{name} {record_type} {edns:?}");
                // The buffer is used, not left mostly empty.
                assert!(
                    size > limit / 2,
                    "{name} {record_type} {edns:?}: {size} bytes"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_buffer_below_512_is_treated_as_512() {
    let server =
        TestServer::with_manifests(&big_headless("web", 7, &[("http", 80)]), Default::default())
            .await;
    let (reply, size) = exchange(
        server.addr,
        &query_message(SRV_NAME, RecordType::SRV, Some(100)),
        Transport::Udp,
    )
    .await;
    assert!(!reply.metadata.truncation, "{reply}");
    assert_eq!(srv_count(&reply), 7);
    assert!(size <= 512 && size > 100, "{size} bytes");
    assert_eq!(additionals(&reply), Vec::<String>::new());
}

/// Bytes left over after the message its header describes (a record cut off mid-way).
fn trailing_bytes(reply: &[u8]) -> usize {
    use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
    let mut decoder = BinDecoder::new(reply);
    Message::read(&mut decoder).expect("reply decodes");
    decoder.len()
}

#[tokio::test]
async fn truncated_udp_replies_end_at_their_last_complete_record() {
    let server = three_hundred().await;
    for name in [SRV_NAME, "web.default.svc.cluster.local."] {
        let record_type = if name == SRV_NAME {
            RecordType::SRV
        } else {
            RecordType::A
        };
        for edns in [None, Some(512), Some(1232), Some(4096)] {
            let query = query_message(name, record_type, edns)
                .to_vec()
                .expect("query encodes");
            let reply = exchange_bytes(server.addr, &query, Transport::Udp, TIMEOUT)
                .await
                .expect("the server replies");
            let message = Message::from_vec(&reply).expect("reply decodes");
            assert!(message.metadata.truncation, "{name} {edns:?}");
            assert_eq!(
                trailing_bytes(&reply),
                0,
                "{name} {edns:?}: {} bytes",
                reply.len()
            );
            // An EDNS query gets an OPT back, truncated or not (RFC 6891 section 7).
            assert_eq!(message.edns.is_some(), edns.is_some(), "{name} {edns:?}");
        }
    }
}
