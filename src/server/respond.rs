//! From request bytes to response bytes: the fast path first, then the general path.
//!
//! The general path decodes the whole message with hickory-proto, decides the reply from the
//! snapshot, and encodes it with hickory-proto, fitting UDP replies to the client's buffer. Both
//! paths encode the question in lowercase and then copy the client's question bytes over it, so
//! they give the same bytes (the fast path's templates are made by this same encoding) and every
//! answer echoes the question's letter case.

use hickory_proto::op::{Edns, Header, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use tracing::trace;

use super::fast;
use crate::snapshot::{HEADER_LEN, SnapshotReader};

/// The EDNS version we speak.
const EDNS_VERSION: u8 = 0;
/// The smallest UDP payload every DNS client accepts (RFC 1035 section 4.2.1).
const MIN_UDP_PAYLOAD: u16 = 512;

/// The transport a request came over: UDP replies must fit the client's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP: replies are always complete.
    Tcp,
}

/// Answers requests from the current snapshot. Cheap to clone: one per worker.
#[derive(Debug, Clone)]
pub struct Responder {
    reader: SnapshotReader,
    /// The zones we are authoritative for, known before any snapshot so that queries outside
    /// them are REFUSED and queries inside get SERVFAIL until the first state has loaded.
    zones: Vec<LowerName>,
}

/// The most datagrams one UDP system call moves, and so the most requests of a batch. Under
/// dnsperf at full load (800 queries in flight, two workers) a receive averages about 29; 64
/// measured no better.
pub(super) const UDP_BATCH: usize = 32;

/// A fast-path lookup of a batch: the request's shape and its pre-encoded response.
type Found<'s> = Option<(fast::Shape, &'s [u8])>;

/// What we will send, before it is encoded.
struct Reply {
    response_code: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
    soa: Option<Record>,
    additionals: Vec<Record>,
}

impl Reply {
    fn error(response_code: ResponseCode) -> Self {
        Self {
            response_code,
            authoritative: false,
            answers: Vec::new(),
            soa: None,
            additionals: Vec::new(),
        }
    }
}

impl Responder {
    /// A responder for `zones` (cluster domains plus the reverse zones) reading from `reader`.
    pub fn new(reader: SnapshotReader, zones: Vec<LowerName>) -> Self {
        Self { reader, zones }
    }

    /// Writes the response to `request` into `out`; `false` when nothing must be sent (no
    /// header to answer to, or a response sent to us).
    pub fn respond(&self, request: &[u8], transport: Transport, out: &mut Vec<u8>) -> bool {
        let udp = transport == Transport::Udp;
        let answered = self
            .reader
            .with_current(|snapshot| snapshot.is_some_and(|s| fast::answer(s, request, udp, out)));
        if answered {
            return true;
        }
        self.general(request, transport, out)
    }

    /// Answers a batch of UDP requests, each `(slot, request)` into `outs[slot]`, and calls
    /// `answered` with the slot of each answer to send. The fast-path lookups of the whole batch
    /// are made first, step by step ([`Index::get_batch`](crate::snapshot::Index::get_batch)),
    /// then each answer is touched, and only then are the answers written: in a large cluster
    /// every step of a lookup misses the cache, and taken across the batch those misses overlap
    /// instead of each waiting behind the one before.
    pub fn respond_udp_batch(
        &self,
        requests: &[(usize, &[u8])],
        outs: &mut [Vec<u8>],
        mut answered: impl FnMut(usize),
    ) {
        self.reader.with_current(|snapshot| {
            let questions: smallvec::SmallVec<[Option<(fast::Key, fast::Shape)>; UDP_BATCH]> =
                requests
                    .iter()
                    .map(|(_, request)| fast::question(request))
                    .collect();
            let keys: smallvec::SmallVec<[Option<&[u8]>; UDP_BATCH]> = questions
                .iter()
                .map(|question| question.as_ref().map(|(key, _)| key.as_bytes()))
                .collect();
            let nodes = match snapshot {
                Some(snapshot) => snapshot.names.get_batch::<UDP_BATCH>(&keys),
                None => smallvec::smallvec![None; keys.len()],
            };
            let found: smallvec::SmallVec<[Found<'_>; UDP_BATCH]> = questions
                .iter()
                .zip(nodes)
                .map(|(question, node)| {
                    let (_, shape) = question.as_ref()?;
                    let template = fast::template(node?, shape)?;
                    std::hint::black_box(template.first());
                    Some((*shape, template))
                })
                .collect();
            for (&(slot, request), found) in requests.iter().zip(found) {
                let Some(out) = outs.get_mut(slot) else {
                    continue;
                };
                let fast = found.is_some_and(|(shape, template)| {
                    fast::write(request, &shape, template, true, out)
                });
                if fast || self.general(request, Transport::Udp, out) {
                    answered(slot);
                }
            }
        });
    }

    /// The general path: any request, any answer.
    pub fn general(&self, request: &[u8], transport: Transport, out: &mut Vec<u8>) -> bool {
        out.clear();
        let Ok(header) = Header::read(&mut BinDecoder::new(request)) else {
            // Fewer than twelve bytes: nothing to answer to.
            return false;
        };
        let message = match Message::from_vec(request) {
            Ok(message) => message,
            Err(_) => {
                // The header decodes but the rest does not: FORMERR, id echoed, no question.
                if header.metadata.message_type == MessageType::Response {
                    return false;
                }
                let mut reply = Message::new(
                    header.metadata.id,
                    MessageType::Response,
                    header.metadata.op_code,
                );
                reply.metadata.response_code = ResponseCode::FormErr;
                return encode_into(&reply, out);
            }
        };
        if message.metadata.message_type == MessageType::Response {
            // No replies to replies: that way lies a reflection loop.
            return false;
        }

        let response_edns = message.edns.as_ref().map(|edns| {
            let mut ours = Edns::new();
            ours.set_version(EDNS_VERSION);
            // Answers fit the client's buffer; 512 is the floor (RFC 6891 section 6.2.5).
            ours.set_max_payload(edns.max_payload().max(MIN_UDP_PAYLOAD));
            ours
        });
        let reply = if message
            .edns
            .as_ref()
            .is_some_and(|e| e.version() > EDNS_VERSION)
        {
            Reply::error(ResponseCode::BADVERS)
        } else {
            self.decide(&message)
        };

        let mut metadata = Metadata::new(
            message.metadata.id,
            MessageType::Response,
            message.metadata.op_code,
        );
        metadata.recursion_desired = message.metadata.recursion_desired;
        metadata.authoritative = reply.authoritative;
        metadata.response_code = reply.response_code;
        // The question in lowercase; the client's bytes are copied over it once encoded.
        let queries: Vec<_> = message
            .queries
            .iter()
            .map(|q| {
                let mut q = q.clone();
                q.name = q.name.to_lowercase();
                q
            })
            .collect();
        let build = |answers: &[Record], additionals: &[Record], truncated: bool| {
            let mut response = Message::new(
                message.metadata.id,
                MessageType::Response,
                message.metadata.op_code,
            );
            response.metadata = metadata;
            response.metadata.truncation = truncated;
            response.queries = queries.clone();
            response.answers = answers.to_vec();
            response.authorities = reply.soa.iter().cloned().collect();
            response.additionals = additionals.to_vec();
            response.edns = response_edns.clone();
            response
        };
        let limit = match (transport, &response_edns) {
            (Transport::Tcp, _) => usize::from(u16::MAX),
            (Transport::Udp, Some(edns)) => usize::from(edns.max_payload()),
            (Transport::Udp, None) => usize::from(MIN_UDP_PAYLOAD),
        };
        // hickory's encoder cuts a message over 65535 bytes short itself, setting TC: that is
        // no fit either (the answer may be complete without its additionals).
        let encode = |response: &Message| {
            let bytes = response.to_vec().ok()?;
            let cut = truncated(&bytes) && !response.metadata.truncation;
            (bytes.len() <= limit && !cut).then_some(bytes)
        };

        let mut bytes = encode(&build(&reply.answers, &reply.additionals, false));
        if bytes.is_none() {
            // When only the additional records do not fit, they are left out and TC stays
            // clear (RFC 2181 section 9): the answer is complete.
            bytes = encode(&build(&reply.answers, &[], false));
        }
        if bytes.is_none() {
            // As many answers as fit, with the authority and OPT records, and TC: the largest
            // count that fits, found by halving (a set of thousands is not encoded thousands
            // of times). With TC set, a count hickory cut short is also a count that does not
            // fit: it is told by the answers it kept.
            let fitting = |count: usize| {
                encode(&build(&reply.answers[..count], &[], true))
                    .filter(|b| usize::from(u16::from_be_bytes([b[6], b[7]])) == count)
            };
            let (mut fits, mut too_many) = (0, reply.answers.len());
            // The encoding of `fits` answers, once one above 0 has been tried.
            let mut best = None;
            while too_many - fits > 1 {
                let middle = fits + (too_many - fits) / 2;
                match fitting(middle) {
                    Some(trial) => (fits, best) = (middle, Some(trial)),
                    None => too_many = middle,
                }
            }
            bytes = best.or_else(|| fitting(0));
        }
        let Some(bytes) = bytes else {
            let mut failed = Message::new(
                message.metadata.id,
                MessageType::Response,
                message.metadata.op_code,
            );
            failed.metadata.response_code = ResponseCode::ServFail;
            return encode_into(&failed, out);
        };
        out.extend_from_slice(&bytes);
        patch_question(out, request, message.queries.len());
        true
    }

    /// Decides the reply to one decoded request.
    fn decide(&self, message: &Message) -> Reply {
        if message.metadata.op_code != OpCode::Query {
            return Reply::error(ResponseCode::NotImp);
        }
        let [query] = message.queries.as_slice() else {
            // Zero or several questions: no server answers those (RFC 9619).
            return Reply::error(ResponseCode::FormErr);
        };
        let name = LowerName::from(&query.name);
        if !self.zones.iter().any(|z| z.zone_of(&name)) {
            return Reply::error(ResponseCode::Refused);
        }
        if !matches!(query.query_class, DNSClass::IN | DNSClass::ANY) {
            return Reply::error(ResponseCode::Refused);
        }
        let query_type = query.query_type;
        if matches!(query_type, RecordType::AXFR | RecordType::IXFR) {
            // Zone transfer is not offered (as in CoreDNS without `transfer`).
            return Reply::error(ResponseCode::Refused);
        }
        let Some(snapshot) = self.reader.load() else {
            // Never NXDOMAIN before the first state: resolvers would cache the lie.
            return Reply::error(ResponseCode::ServFail);
        };
        let outcome = snapshot.lookup(&name, query_type);
        trace!(%name, %query_type, code = %outcome.response_code, "answered");

        let mut answers = Vec::new();
        let mut additionals: Vec<Record> = Vec::new();
        for set in &outcome.answers {
            answers.extend(set.records.iter().cloned());
            for record in &set.additionals {
                if !additionals.contains(record) {
                    additionals.push(record.clone());
                }
            }
        }
        Reply {
            response_code: outcome.response_code,
            authoritative: outcome.authoritative,
            answers,
            soa: outcome.soa,
            additionals,
        }
    }
}

/// Whether an encoded message has TC set.
fn truncated(wire: &[u8]) -> bool {
    wire.get(2).is_some_and(|flags| flags & 0x02 != 0)
}

/// Encodes `message` into `out`; `false` if it cannot be encoded.
fn encode_into(message: &Message, out: &mut Vec<u8>) -> bool {
    match message.to_vec() {
        Ok(bytes) => {
            out.extend_from_slice(&bytes);
            true
        }
        Err(_) => false,
    }
}

/// Copies the client's question bytes over the lowercase question of an encoded response, so
/// the question — and every owner name compressed to it — reads in the client's letter case.
/// The two have the same length: they differ only in case.
fn patch_question(out: &mut [u8], request: &[u8], questions: usize) {
    let Some(end) = questions_end(request, questions) else {
        return;
    };
    if out.len() >= end && out.get(4..6) == request.get(4..6) {
        out[HEADER_LEN..end].copy_from_slice(&request[HEADER_LEN..end]);
    }
}

/// Where the question section of a (decodable) request ends.
fn questions_end(request: &[u8], questions: usize) -> Option<usize> {
    let mut at = HEADER_LEN;
    for _ in 0..questions {
        loop {
            let len = usize::from(*request.get(at)?);
            if len & 0xC0 == 0xC0 {
                // A compressed question cannot be copied byte for byte.
                return None;
            }
            at += 1 + len;
            if len == 0 {
                break;
            }
        }
        at += 4;
    }
    (at <= request.len()).then_some(at)
}
