//! Malformed packets over UDP and TCP: each is answered with the right error code or dropped,
//! and the server keeps answering.
//!
//! Every case is followed by a *fence*: a valid query (id [`FENCE_ID`]) for a name whose answer
//! we know. The fence proves the server still answers correctly after the case, and it bounds
//! every wait: no test sleeps or waits for silence.
//!
//! - Over TCP the server handles one connection's messages in order, so the replies on the
//!   connection are ordered too: "dropped" means the first reply is the fence's.
//! - Over UDP one socket's datagrams all go to the same worker thread (SO_REUSEPORT hashes by
//!   the client's address), which handles them in arrival order, so the check is exact. A case
//!   that must be answered is still waited for (bounded by [`TIMEOUT`]); for a case that must be
//!   dropped, anything that arrived up to the fence reply counts.
//!
//! Who decides what (`src/server/respond.rs`; the fast path declines all of these):
//!
//! | input | handled by | outcome |
//! |---|---|---|
//! | fewer than 12 bytes | `Responder::general` | dropped: no header, nothing to reply to |
//! | QR=1, whether the rest decodes or not | `Responder::general` | dropped (no replies to replies) |
//! | header, then bytes that do not decode | `Responder::general` | FORMERR, id echoed, no question |
//! | QDCOUNT 0 or >1 | `Responder::decide` | FORMERR (RFC 9619) |
//! | opcode other than QUERY | `Responder::decide` | NOTIMP (RFC 1035 4.1.1, RFC 8906 3.1.3) |
//! | class other than IN/ANY | `Responder::decide` | REFUSED: no zone of ours is in that class |
//! | EDNS version above 0 | `Responder::general` | BADVERS (RFC 6891 6.1.3) |
//! | two OPTs; an OPT cut short, not at the root, or outside the additional section | `Responder::general` (decoder) | FORMERR (RFC 6891 6.1.1) |
//! | bytes after the last counted record | `Responder::general` | ignored: answered as usual |
//!
//! The fast path parses the header, question and OPT itself; each case above is run on a name it
//! can answer where that matters (EDNS), so it must decline them all and leave the decision to
//! the general path. It once answered an OPT whose option overran the OPT's RDATA:
//! `opt_option_overrunning_its_rdata_gets_formerr_on_both_paths`.
//!
//! TCP connections are tasks on the test's thread (current-thread runtime); UDP is answered on
//! the server's `stsdns-udp-*` worker threads. [`PanicWatch`] counts panics on both and each
//! test asserts there were none.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Once;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

use crate::harness::*;

/// A name of the example cluster and its only address: the fence's question and answer.
const FENCE_NAME: &str = "sts-nginx-0.svc-nginx.prod.svc.cluster.local.";
const FENCE_ADDRESS: &str = "10.42.0.11";
/// The fence's message id; no case uses it.
const FENCE_ID: u16 = 0xFE0C;
/// The id of every case that has a header.
const CASE_ID: u16 = 0x0A0A;

// Header flag bits (RFC 1035 4.1.1), as the 16 bits after the id.
const QR: u16 = 0x8000;
const RD: u16 = 0x0100;

/// What the server must do with a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// No reply at all.
    Drop,
    /// One reply with this response code, the case's id and QR set.
    Reply(ResponseCode),
}

/// One malformed (or borderline) packet.
struct Case {
    what: String,
    bytes: Vec<u8>,
    expect: Expect,
}

impl Case {
    fn new(what: impl Into<String>, bytes: Vec<u8>, expect: Expect) -> Self {
        Self {
            what: what.into(),
            bytes,
            expect,
        }
    }
}

/// A 12-byte header: id, flags (QR, opcode, ...), then QD/AN/NS/AR counts.
fn header(flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(12);
    bytes.extend_from_slice(&CASE_ID.to_be_bytes());
    bytes.extend_from_slice(&flags.to_be_bytes());
    for count in counts {
        bytes.extend_from_slice(&count.to_be_bytes());
    }
    bytes
}

/// Flags of a query with `opcode` (4 bits) and RD.
fn opcode_flags(opcode: u8) -> u16 {
    (u16::from(opcode) << 11) | RD
}

/// `name` (absolute, dotted) in uncompressed wire form.
fn wire_name(name: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    for label in name.trim_end_matches('.').split('.') {
        bytes.push(u8::try_from(label.len()).expect("test labels are short"));
        bytes.extend_from_slice(label.as_bytes());
    }
    bytes.push(0);
    bytes
}

/// A question section entry: `name` in wire form, then type and class.
fn question(name: &[u8], record_type: u16, class: u16) -> Vec<u8> {
    let mut bytes = name.to_vec();
    bytes.extend_from_slice(&record_type.to_be_bytes());
    bytes.extend_from_slice(&class.to_be_bytes());
    bytes
}

/// A well-formed query for the fence name with the given flags, class and question count.
fn query_with(flags: u16, class: u16) -> Vec<u8> {
    let mut bytes = header(flags, [1, 0, 0, 0]);
    bytes.extend(question(
        &wire_name(FENCE_NAME),
        u16::from(RecordType::A),
        class,
    ));
    bytes
}

const CLASS_IN: u16 = 1;

/// Labels of the given lengths (letters), then `cluster.local.`: for names near 255 octets.
fn long_name(label_lengths: &[usize]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for &length in label_lengths {
        bytes.push(u8::try_from(length).expect("label length fits a byte"));
        bytes.extend(std::iter::repeat_n(b'x', length));
    }
    bytes.extend(wire_name("cluster.local."));
    bytes
}

/// The cases sent over both transports.
fn cases() -> Vec<Case> {
    use Expect::{Drop, Reply};
    use ResponseCode::{FormErr, NXDomain, NoError, NotImp, Refused};

    let valid = query_with(RD, CLASS_IN);
    let fence_name = wire_name(FENCE_NAME);
    let nonexistent = wire_name(NONEXISTENT);
    let mut cases = Vec::new();

    // Too short to hold a header: nothing to echo the id into, so nothing to reply.
    for length in 1..12 {
        cases.push(Case::new(
            format!("truncated header ({length} bytes)"),
            valid[..length].to_vec(),
            Drop,
        ));
    }

    // A header whose counts promise more than the message holds.
    cases.push(Case::new(
        "QDCOUNT=1 and no question",
        header(RD, [1, 0, 0, 0]),
        Reply(FormErr),
    ));
    cases.push(Case::new(
        "question name cut mid-label",
        valid[..12 + 5].to_vec(),
        Reply(FormErr),
    ));
    cases.push(Case::new(
        "question without type and class",
        valid[..12 + fence_name.len()].to_vec(),
        Reply(FormErr),
    ));
    let mut qd_huge = valid.clone();
    qd_huge[4..6].copy_from_slice(&u16::MAX.to_be_bytes());
    cases.push(Case::new(
        "QDCOUNT=65535, one question",
        qd_huge,
        Reply(FormErr),
    ));
    for (section, offset) in [("ANCOUNT", 6), ("NSCOUNT", 8), ("ARCOUNT", 10)] {
        let mut huge = valid.clone();
        huge[offset..offset + 2].copy_from_slice(&u16::MAX.to_be_bytes());
        cases.push(Case::new(
            format!("{section}=65535, no records"),
            huge,
            Reply(FormErr),
        ));
    }

    // Compression pointers (RFC 1035 4.1.4) that would loop: hickory only follows pointers
    // to earlier bytes, so none can.
    let mut to_itself = header(RD, [1, 0, 0, 0]);
    to_itself.extend(question(&[0xC0, 12], 1, CLASS_IN));
    cases.push(Case::new(
        "name is a pointer to itself",
        to_itself,
        Reply(FormErr),
    ));
    let mut to_each_other = header(RD, [1, 0, 0, 0]);
    // Offset 12 points to 14, offset 14 points back to 12.
    to_each_other.extend([0xC0, 14, 0xC0, 12]);
    to_each_other.extend([0, 1, 0, 1]);
    cases.push(Case::new(
        "two pointers to each other",
        to_each_other,
        Reply(FormErr),
    ));
    let mut through_label = header(RD, [1, 0, 0, 0]);
    // The label `a`, then a pointer back to that label: a.a.a.... forever.
    through_label.extend(question(&[1, b'a', 0xC0, 12], 1, CLASS_IN));
    cases.push(Case::new(
        "pointer back to the label before it",
        through_label,
        Reply(FormErr),
    ));

    // Labels: a length byte is 0..=63; 0x40 and 0x80 prefixes are not lengths.
    for (what, length_byte) in [
        ("label length 64 (0x40 prefix)", 0x40u8),
        ("label length byte 0x80 (reserved prefix)", 0x80),
    ] {
        let mut name = vec![length_byte];
        name.extend(std::iter::repeat_n(b'x', 64));
        name.push(0);
        let mut bytes = header(RD, [1, 0, 0, 0]);
        bytes.extend(question(&name, 1, CLASS_IN));
        cases.push(Case::new(what, bytes, Reply(FormErr)));
    }

    // Names: 255 octets is the limit (RFC 1035 2.3.4). At 255 the name is fine (and in our
    // zone, so NXDOMAIN); at 256 it is malformed.
    let at_limit = long_name(&[63, 63, 63, 47]);
    assert_eq!(at_limit.len(), 255);
    let mut bytes = header(RD, [1, 0, 0, 0]);
    bytes.extend(question(&at_limit, 1, CLASS_IN));
    cases.push(Case::new("name of 255 octets", bytes, Reply(NXDomain)));
    let over_limit = long_name(&[63, 63, 63, 48]);
    assert_eq!(over_limit.len(), 256);
    let mut bytes = header(RD, [1, 0, 0, 0]);
    bytes.extend(question(&over_limit, 1, CLASS_IN));
    cases.push(Case::new("name of 256 octets", bytes, Reply(FormErr)));
    let mut bytes = header(RD, [1, 0, 0, 0]);
    bytes.extend(question(&long_name(&[63; 5]), 1, CLASS_IN));
    cases.push(Case::new("name of 335 octets", bytes, Reply(FormErr)));

    // Question counts the server will not answer (RFC 9619: exactly one question).
    cases.push(Case::new(
        "QDCOUNT=0",
        header(RD, [0, 0, 0, 0]),
        Reply(FormErr),
    ));
    let mut two = header(RD, [2, 0, 0, 0]);
    two.extend(question(&fence_name, 1, CLASS_IN));
    two.extend(question(&fence_name, 28, CLASS_IN));
    cases.push(Case::new("two questions", two, Reply(FormErr)));

    // A response sent to the server: well formed, it is dropped (no replies to replies, so
    // two servers cannot bounce errors at each other).
    cases.push(Case::new(
        "a response (QR=1) as a query",
        query_with(QR | RD, CLASS_IN),
        Drop,
    ));
    // Malformed and QR=1: still a response, so still dropped: the QR bit is in the header,
    // which decodes, and nothing is ever sent back to a response.
    cases.push(Case::new(
        "a response (QR=1) with QDCOUNT=1 and no question",
        header(QR | RD, [1, 0, 0, 0]),
        Drop,
    ));

    // Opcodes: only QUERY is served. IQUERY (1, obsolete), STATUS (2), NOTIFY (4), UPDATE (5),
    // DSO (6) and the unassigned 3 and 15 get NOTIMP (RFC 1035 4.1.1, RFC 1996, RFC 2136,
    // RFC 8490 5.1, RFC 8906 3.1.3).
    for opcode in [1u8, 2, 3, 4, 5, 6, 15] {
        cases.push(Case::new(
            format!("opcode {opcode}"),
            query_with(opcode_flags(opcode), CLASS_IN),
            Reply(NotImp),
        ));
    }

    // Classes: our zones are IN. CHAOS, HESIOD, NONE (254, meaningful only in UPDATE) and an
    // unassigned class are not ours: REFUSED, as for a name outside our zones.
    for class in [3u16, 4, 254, 0x1234] {
        cases.push(Case::new(
            format!("class {class}"),
            query_with(RD, class),
            Reply(Refused),
        ));
    }

    // Borderline but valid: an unknown type at a name that exists is NODATA (RFC 8906 3.1.2).
    let mut bytes = header(RD, [1, 0, 0, 0]);
    bytes.extend(question(&fence_name, 0xFF00, CLASS_IN));
    cases.push(Case::new("unknown type 65280", bytes, Reply(NoError)));

    // Bytes after the last counted record: hickory-proto's decoder stops at the counts and
    // ignores the rest, so the query is answered (the fast path declines, the general path
    // answers). No RFC says otherwise; BIND would answer FORMERR.
    let mut bytes = query_with(RD, CLASS_IN);
    bytes.extend([1, 2, 3, 4, 5]);
    cases.push(Case::new(
        "five bytes after the question",
        bytes,
        Reply(NoError),
    ));

    // EDNS (RFC 6891). The fast path takes only one well-formed OPT of version 0 that ends the
    // message; it declines all of these, and the general path decides.
    for (what, name) in [("answerable", &fence_name), ("nonexistent", &nonexistent)] {
        let edns_query = |arcount: u16, nscount: u16, records: &[Vec<u8>]| {
            let mut bytes = header(RD, [1, 0, nscount, arcount]);
            bytes.extend(question(name, 1, CLASS_IN));
            for record in records {
                bytes.extend(record);
            }
            bytes
        };
        // A version above ours: BADVERS (6.1.3), an extended code (16) carried in our OPT.
        cases.push(Case::new(
            format!("EDNS version 1, {what} name"),
            edns_query(1, 0, &[opt(1, &[], 0)]),
            Reply(ResponseCode::BADVERS),
        ));
        // More than one OPT: FORMERR, a MUST (6.1.1).
        cases.push(Case::new(
            format!("two OPT records, {what} name"),
            edns_query(2, 0, &[opt(0, &[], 0), opt(0, &[], 0)]),
            Reply(FormErr),
        ));
        cases.push(Case::new(
            format!("OPT cut after 6 bytes, {what} name"),
            edns_query(1, 0, &[opt(0, &[], 0)[..6].to_vec()]),
            Reply(FormErr),
        ));
        cases.push(Case::new(
            format!("OPT RDLENGTH 20 past the end, {what} name"),
            edns_query(1, 0, &[opt(0, &[], 20)]),
            Reply(FormErr),
        ));
        // The OPT owner must be the root (6.1.2).
        let mut not_root = opt(0, &[], 0);
        not_root.splice(0..1, [1, b'x', 0]);
        cases.push(Case::new(
            format!("OPT owned by x., {what} name"),
            edns_query(1, 0, &[not_root]),
            Reply(FormErr),
        ));
        // OPT belongs in the additional section only.
        cases.push(Case::new(
            format!("OPT in the authority section, {what} name"),
            edns_query(0, 1, &[opt(0, &[], 0)]),
            Reply(FormErr),
        ));
    }
    // An option whose length runs past the OPT's RDATA, on a name the fast path cannot answer:
    // the general path decodes the options and answers FORMERR. (On an answerable name, see
    // `opt_option_overrunning_its_rdata_gets_formerr_on_both_paths`.)
    let mut bytes = header(RD, [1, 0, 0, 1]);
    bytes.extend(question(&nonexistent, 1, CLASS_IN));
    bytes.extend(opt(0, &OVERRUNNING_OPTION, 6));
    cases.push(Case::new(
        "OPT option overrunning its RDATA, nonexistent name",
        bytes,
        Reply(FormErr),
    ));

    cases
}

/// A name in our zone that does not exist: the fast path never answers it.
const NONEXISTENT: &str = "nope.prod.svc.cluster.local.";

/// One EDNS option, code 10 (COOKIE), claiming 8 bytes of data but carrying 2.
const OVERRUNNING_OPTION: [u8; 6] = [0, 10, 0, 8, 1, 2];

/// An OPT record (RFC 6891 6.1.2): root owner, type 41, 1232-byte payload, extended rcode 0,
/// `version`, no flags, then RDLENGTH `rdlength` and `rdata` (which may disagree, on purpose).
fn opt(version: u8, rdata: &[u8], rdlength: u16) -> Vec<u8> {
    let mut bytes = vec![0, 0, 41];
    bytes.extend(1232u16.to_be_bytes());
    bytes.extend([0, version, 0, 0]);
    bytes.extend(rdlength.to_be_bytes());
    bytes.extend_from_slice(rdata);
    bytes
}

/// The fence query, as bytes.
fn fence() -> Vec<u8> {
    let mut message = query_message(FENCE_NAME, RecordType::A, None);
    message.metadata.id = FENCE_ID;
    message.to_vec().expect("the fence encodes")
}

/// Asserts the fence got its full, correct answer.
fn assert_fence(reply: &Message, context: &str) {
    assert_eq!(reply.metadata.id, FENCE_ID, "{context}: {reply}");
    assert_answer(reply);
    let addresses: Vec<String> = reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(addresses, [FENCE_ADDRESS], "{context}: {reply}");
}

/// Asserts the replies to one case (fence excluded) are what the case expects.
fn assert_replies(case: &Case, transport: Transport, replies: &[Message]) {
    let context = format!("{} over {transport:?}", case.what);
    match case.expect {
        Expect::Drop => assert!(
            replies.is_empty(),
            "{context}: expected no reply, got {replies:#?}"
        ),
        Expect::Reply(code) => {
            let [reply] = replies else {
                panic!("{context}: expected one {code} reply, got {replies:#?}");
            };
            // By number: 16 is both BADVERS and BADSIG, and hickory decodes it as BADSIG.
            assert_eq!(
                u16::from(reply.metadata.response_code),
                u16::from(code),
                "{context}: expected {code}: {reply}"
            );
            assert_eq!(reply.metadata.id, CASE_ID, "{context}: id echoed");
            assert_eq!(
                reply.metadata.message_type,
                MessageType::Response,
                "{context}: {reply}"
            );
        }
    }
}

/// Decodes a reply; every reply the server sends must decode.
fn decode(bytes: &[u8], context: &str) -> Message {
    Message::from_vec(bytes)
        .unwrap_or_else(|err| panic!("{context}: reply does not decode ({err}): {bytes:02x?}"))
}

/// Sends `packets` over UDP from one socket, then the fence; returns every other reply that
/// arrived up to the fence reply (and `at_least` of them, waiting for late ones), checking the
/// fence.
async fn udp_batch(
    addr: SocketAddr,
    packets: &[Vec<u8>],
    at_least: usize,
    context: &str,
) -> Vec<Message> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket.connect(addr).await.expect("connect");
    for packet in packets {
        socket.send(packet).await.expect("send");
    }
    socket.send(&fence()).await.expect("send the fence");
    let mut buf = vec![0u8; 65535];
    let mut replies = Vec::new();
    let mut fenced = false;
    while !fenced || replies.len() < at_least {
        let received = timeout(TIMEOUT, socket.recv(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{context}: no reply within {TIMEOUT:?} (fence answered: {fenced}, \
                     other replies: {})",
                    replies.len()
                )
            })
            .expect("recv");
        let reply = decode(&buf[..received], context);
        if reply.metadata.id == FENCE_ID && !fenced {
            assert_fence(&reply, context);
            fenced = true;
        } else {
            replies.push(reply);
        }
    }
    // Whatever else has already arrived.
    while let Ok(received) = socket.try_recv(&mut buf) {
        replies.push(decode(&buf[..received], context));
    }
    replies
}

/// One DNS message with its two-byte length prefix (RFC 1035 4.2.2).
fn framed(bytes: &[u8]) -> Vec<u8> {
    let length = u16::try_from(bytes.len()).expect("message fits TCP framing");
    let mut out = length.to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// Reads one framed reply, or `None` when the server closes the connection first.
async fn read_frame(stream: &mut TcpStream, context: &str) -> Option<Vec<u8>> {
    let mut length = [0u8; 2];
    let read = timeout(TIMEOUT, stream.read_exact(&mut length))
        .await
        .unwrap_or_else(|_| panic!("{context}: neither a reply nor a close within {TIMEOUT:?}"));
    if read.is_err() {
        return None;
    }
    let mut bytes = vec![0u8; usize::from(u16::from_be_bytes(length))];
    timeout(TIMEOUT, stream.read_exact(&mut bytes))
        .await
        .unwrap_or_else(|_| panic!("{context}: reply body not sent within {TIMEOUT:?}"))
        .unwrap_or_else(|err| panic!("{context}: connection closed mid-reply: {err}"));
    Some(bytes)
}

/// Sends `packets` framed on one TCP connection, then the fence; returns the replies before
/// the fence's (replies on a connection come in request order), checking the fence.
async fn tcp_batch(addr: SocketAddr, packets: &[Vec<u8>], context: &str) -> Vec<Message> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut out = Vec::new();
    for packet in packets {
        out.extend(framed(packet));
    }
    out.extend(framed(&fence()));
    stream.write_all(&out).await.expect("write");
    let mut replies = Vec::new();
    // At most one reply per packet, then the fence's: the loop is bounded.
    for _ in 0..=packets.len() {
        let Some(bytes) = read_frame(&mut stream, context).await else {
            panic!(
                "{context}: the server closed the connection before answering the fence \
                 (after {} replies)",
                replies.len()
            );
        };
        let reply = decode(&bytes, context);
        if reply.metadata.id == FENCE_ID
            && reply.queries.first().map(|q| q.name().to_string()) == Some(FENCE_NAME.into())
        {
            assert_fence(&reply, context);
            return replies;
        }
        replies.push(reply);
    }
    panic!("{context}: more replies than packets, and no fence reply");
}

/// Asserts, with hickory's own client over both transports, that the server answers.
async fn assert_still_serving(server: &TestServer) {
    for transport in TRANSPORTS {
        let reply = query(server.addr, FENCE_NAME, RecordType::A, transport).await;
        assert_answer(&reply);
        assert_eq!(rdata(&reply), [FENCE_ADDRESS], "{transport:?}");
    }
}

thread_local! {
    /// Panics seen on this thread since the hook was installed.
    static PANICS: Cell<usize> = const { Cell::new(0) };
}

/// Panics seen on the server's UDP worker threads (of any test's server).
static WORKER_PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts panics on the current thread, where the current-thread runtime of `#[tokio::test]`
/// runs the server's TCP tasks, and on the server's UDP worker threads.
struct PanicWatch {
    before: usize,
    workers_before: usize,
}

impl PanicWatch {
    fn start() -> Self {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let _ = PANICS.try_with(|count| count.set(count.get() + 1));
                let worker = std::thread::current()
                    .name()
                    .is_some_and(|name| name.starts_with("stsdns-udp"));
                if worker {
                    WORKER_PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                previous(info);
            }));
        });
        Self {
            before: PANICS.with(Cell::get),
            workers_before: WORKER_PANICS.load(std::sync::atomic::Ordering::SeqCst),
        }
    }

    fn assert_none(&self) {
        let panics = PANICS.with(Cell::get) - self.before
            + (WORKER_PANICS.load(std::sync::atomic::Ordering::SeqCst) - self.workers_before);
        assert_eq!(
            panics, 0,
            "the server panicked {panics} time(s) handling these packets (see stderr)"
        );
    }
}

#[tokio::test]
async fn malformed_packets_over_udp_get_formerr_or_are_dropped() {
    let watch = PanicWatch::start();
    let server = TestServer::example().await;
    // An empty datagram: no header, dropped.
    let replies = udp_batch(server.addr, &[Vec::new()], 0, "zero-length datagram").await;
    assert!(replies.is_empty(), "zero-length datagram: {replies:#?}");
    for case in cases() {
        let at_least = usize::from(case.expect != Expect::Drop);
        let replies = udp_batch(
            server.addr,
            std::slice::from_ref(&case.bytes),
            at_least,
            &case.what,
        )
        .await;
        assert_replies(&case, Transport::Udp, &replies);
    }
    assert_still_serving(&server).await;
    watch.assert_none();
}

#[tokio::test]
async fn malformed_packets_over_tcp_get_formerr_or_are_dropped() {
    let watch = PanicWatch::start();
    let server = TestServer::example().await;
    for case in cases() {
        let context = format!("{} over TCP", case.what);
        let replies = tcp_batch(server.addr, std::slice::from_ref(&case.bytes), &context).await;
        assert_replies(&case, Transport::Tcp, &replies);
    }
    // All of them on one connection: one reply per case that has one, in order.
    let all = cases();
    let packets: Vec<Vec<u8>> = all.iter().map(|c| c.bytes.clone()).collect();
    let replies = tcp_batch(server.addr, &packets, "every case on one connection").await;
    // By number: 16 is both BADVERS and BADSIG, and hickory decodes it as BADSIG.
    let expected: Vec<u16> = all
        .iter()
        .filter_map(|c| match c.expect {
            Expect::Reply(code) => Some(u16::from(code)),
            Expect::Drop => None,
        })
        .collect();
    let got: Vec<u16> = replies
        .iter()
        .map(|r| u16::from(r.metadata.response_code))
        .collect();
    assert_eq!(got, expected, "every case on one connection");
    assert_still_serving(&server).await;
    watch.assert_none();
}

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(bound).expect("small bound"))
            .expect("below a usize bound")
    }

    fn bytes(&mut self, length: usize) -> Vec<u8> {
        (0..length).map(|_| self.next().to_be_bytes()[0]).collect()
    }
}

/// Random packets of three kinds, 100 each: pure noise; a plausible query header (QR=0,
/// QUERY, one question) before noise; and a valid query with a few bytes changed.
fn random_packets(min_length: usize) -> Vec<Vec<u8>> {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let valid = fence();
    let mut packets = Vec::new();
    for _ in 0..100 {
        let length = min_length + rng.below(513 - min_length);
        packets.push(rng.bytes(length));
    }
    for _ in 0..100 {
        let mut packet = header(RD, [1, 0, 0, 0]);
        packet[0..2].copy_from_slice(&rng.bytes(2));
        let length = rng.below(300);
        packet.extend(rng.bytes(length));
        packets.push(packet);
    }
    for _ in 0..100 {
        let mut packet = valid.clone();
        for _ in 0..=rng.below(4) {
            let at = 2 + rng.below(packet.len() - 2);
            packet[at] = rng.bytes(1)[0];
        }
        packets.push(packet);
    }
    // No packet may pass for the fence.
    for packet in &mut packets {
        if packet.len() >= 2 && packet[0..2] == FENCE_ID.to_be_bytes() {
            packet[0..2].copy_from_slice(&CASE_ID.to_be_bytes());
        }
    }
    packets
}

/// Response codes a random packet may get. SERVFAIL is not among them: the state is loaded,
/// so SERVFAIL would mean the server failed.
fn assert_plausible(reply: &Message, context: &str) {
    assert_eq!(
        reply.metadata.message_type,
        MessageType::Response,
        "{context}: {reply}"
    );
    assert!(
        matches!(
            reply.metadata.response_code,
            ResponseCode::NoError
                | ResponseCode::FormErr
                | ResponseCode::NXDomain
                | ResponseCode::NotImp
                | ResponseCode::Refused
                | ResponseCode::BADVERS
        ),
        "{context}: unexpected {}: {reply}",
        reply.metadata.response_code
    );
    if reply.metadata.op_code != OpCode::Query {
        assert_ne!(
            reply.metadata.response_code,
            ResponseCode::NoError,
            "{context}: answered an opcode it does not serve: {reply}"
        );
    }
}

#[tokio::test]
async fn random_bytes_never_stop_the_server() {
    let watch = PanicWatch::start();
    let server = TestServer::example().await;
    // Batches of 50 with a fence after each: the server still answers between batches, and
    // the socket buffers never overflow.
    for (batch, packets) in random_packets(0).chunks(50).enumerate() {
        let context = format!("random batch {batch} over UDP");
        for reply in udp_batch(server.addr, packets, 0, &context).await {
            assert_plausible(&reply, &context);
        }
    }
    // Over TCP a zero-length frame ends the connection (see below), so lengths start at 1.
    for (batch, packets) in random_packets(1).chunks(50).enumerate() {
        let context = format!("random batch {batch} over TCP");
        let replies = tcp_batch(server.addr, packets, &context).await;
        assert!(replies.len() <= packets.len(), "{context}");
        for reply in replies {
            assert_plausible(&reply, &context);
        }
    }
    assert_still_serving(&server).await;
    watch.assert_none();
}

/// Reads until the server closes the connection; returns what it sent before closing. A
/// reset counts as a close: a server that closes with our unread bytes in its buffer resets.
async fn read_to_close(stream: &mut TcpStream, context: &str) -> Vec<u8> {
    let mut received = Vec::new();
    let result = timeout(TIMEOUT, stream.read_to_end(&mut received))
        .await
        .unwrap_or_else(|_| panic!("{context}: connection still open after {TIMEOUT:?}"));
    match result {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(err) => panic!("{context}: {err}"),
    }
    received
}

#[tokio::test]
async fn tcp_length_prefix_longer_than_the_data_then_close() {
    let watch = PanicWatch::start();
    let server = TestServer::example().await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let valid = fence();
    // Claims 512 bytes, sends a whole query's worth fewer, then closes its side.
    let mut out = 512u16.to_be_bytes().to_vec();
    out.extend_from_slice(&valid);
    stream.write_all(&out).await.expect("write");
    stream.shutdown().await.expect("half-close");
    let received = read_to_close(&mut stream, "short frame then close").await;
    assert!(
        received.is_empty(),
        "no reply to a cut frame: {received:02x?}"
    );
    assert_still_serving(&server).await;
    watch.assert_none();
}

#[tokio::test]
async fn tcp_connection_stuck_mid_frame_does_not_stall_others() {
    let watch = PanicWatch::start();
    let server = TestServer::example().await;
    let mut stuck = TcpStream::connect(server.addr).await.expect("connect");
    stuck
        .write_all(&[0x02, 0x00, 0xAB, 0xCD])
        .await
        .expect("write");
    // The stuck connection stays open (until the server's idle timeout) while others are
    // served.
    assert_still_serving(&server).await;
    let replies = tcp_batch(server.addr, &[], "a second connection").await;
    assert!(replies.is_empty());
    drop(stuck);
    watch.assert_none();
}

#[tokio::test]
async fn tcp_zero_length_frame_closes_the_connection() {
    let watch = PanicWatch::start();
    let server = TestServer::example().await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    // A zero length, then a valid query on the same connection. hickory reads the empty body
    // as end of stream and closes the connection without replying: a zero-length message is no
    // DNS message (it has no header), and RFC 7766 lets a server close a connection on input
    // it cannot frame. The valid query is never read; a client retries on a new connection.
    let mut out = vec![0, 0];
    out.extend(framed(&fence()));
    stream.write_all(&out).await.expect("write");
    let received = read_to_close(&mut stream, "zero-length frame").await;
    assert!(
        received.is_empty(),
        "no reply after a zero-length frame: {received:02x?}"
    );
    // A new connection is served.
    let replies = tcp_batch(server.addr, &[], "new connection after a zero-length frame").await;
    assert!(replies.is_empty());
    assert_still_serving(&server).await;
    watch.assert_none();
}

#[tokio::test]
async fn tcp_garbage_then_a_valid_query_on_a_new_connection() {
    let watch = PanicWatch::start();
    let server = TestServer::example().await;
    // Not DNS at all: an HTTP request. "GE" reads as a length of 18245, which never comes.
    let mut garbage = TcpStream::connect(server.addr).await.expect("connect");
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: stsdns\r\n\r\n")
        .await
        .expect("write");
    garbage.shutdown().await.expect("half-close");
    let received = read_to_close(&mut garbage, "HTTP on the DNS port").await;
    assert!(received.is_empty(), "no reply to garbage: {received:02x?}");
    // Random bytes with a length prefix that matches them: the frame is whole, the content
    // is not DNS; the connection lives on and the fence on it is answered.
    let mut rng = XorShift(0xBAD_F00D);
    let noise = rng.bytes(40);
    let replies = tcp_batch(server.addr, &[noise], "framed garbage").await;
    for reply in &replies {
        assert_plausible(reply, "framed garbage");
    }
    let replies = tcp_batch(server.addr, &[], "a new connection after garbage").await;
    assert!(replies.is_empty());
    assert_still_serving(&server).await;
    watch.assert_none();
}

/// An OPT option that overruns its RDATA gets FORMERR whether or not the name has a
/// pre-encoded answer: the fast path walks the options and declines such a packet (it used to
/// check only that the OPT record ended the message, and answered NOERROR).
#[tokio::test]
async fn opt_option_overrunning_its_rdata_gets_formerr_on_both_paths() {
    let server = TestServer::example().await;
    for name in [NONEXISTENT, FENCE_NAME] {
        let mut bytes = header(RD, [1, 0, 0, 1]);
        bytes.extend(question(&wire_name(name), 1, CLASS_IN));
        bytes.extend(opt(0, &OVERRUNNING_OPTION, 6));
        let case = Case::new(
            format!("OPT option overrunning its RDATA, {name}"),
            bytes,
            Expect::Reply(ResponseCode::FormErr),
        );
        for transport in TRANSPORTS {
            let replies = match transport {
                Transport::Udp => {
                    udp_batch(
                        server.addr,
                        std::slice::from_ref(&case.bytes),
                        1,
                        &case.what,
                    )
                    .await
                }
                Transport::Tcp => {
                    tcp_batch(server.addr, std::slice::from_ref(&case.bytes), &case.what).await
                }
            };
            assert_replies(&case, transport, &replies);
        }
    }
}
