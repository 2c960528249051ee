//! The DNS front end: UDP and TCP on bound sockets, answers from the current snapshot.
//!
//! hickory's [`Server`] owns the transports (and drops or FORMERRs malformed packets before we
//! see them); [`ClusterHandler`] is our [`RequestHandler`]. We implement the request handler
//! rather than mounting a `ZoneHandler` in hickory's `Catalog` because three rules of the
//! contract need the whole message: the answer echoes the question's letter case, additional
//! records are dropped (not truncated with TC) when only they do not fit, and in-zone queries
//! get SERVFAIL until the first snapshot is published. This module never imports `feed` or
//! `model`: it sees only snapshots.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Edns, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, Name, Record, RecordType};
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::Server;
use hickory_server::net::NetError;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tracing::{error, trace};

use crate::snapshot::SnapshotReader;

/// How long an idle TCP connection is kept open.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Responses queued per TCP connection before the connection applies back-pressure.
const TCP_RESPONSE_BUFFER: usize = 32;
/// The EDNS version we speak.
const EDNS_VERSION: u8 = 0;

/// Answers queries from the current snapshot.
#[derive(Debug, Clone)]
pub struct ClusterHandler {
    reader: SnapshotReader,
    /// The zones we are authoritative for, known before any snapshot so that queries outside
    /// them are REFUSED and queries inside get SERVFAIL until the first state has loaded.
    zones: Vec<LowerName>,
}

impl ClusterHandler {
    /// A handler for `zones` (cluster domains plus the reverse zones) reading from `reader`.
    pub fn new(reader: SnapshotReader, zones: Vec<LowerName>) -> Self {
        Self { reader, zones }
    }
}

/// Serves UDP and TCP on the given bound sockets until `shutdown` is cancelled.
pub async fn run(
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
    handler: ClusterHandler,
    shutdown: CancellationToken,
) -> Result<(), NetError> {
    let mut server = Server::new(handler);
    for socket in udp {
        server.register_socket(socket);
    }
    for listener in tcp {
        server.register_listener(listener, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
    }
    tokio::select! {
        result = server.block_until_done() => result,
        _ = shutdown.cancelled() => server.shutdown_gracefully().await,
    }
}

/// Binds UDP and TCP on each address. With port 0 the OS picks the UDP port and TCP takes the
/// same one, so one address serves both; if that TCP port is taken, another pair is tried.
pub async fn bind(addresses: &[SocketAddr]) -> std::io::Result<(Vec<UdpSocket>, Vec<TcpListener>)> {
    /// Attempts at finding a port free for both UDP and TCP when the port is 0.
    const PORT_ATTEMPTS: usize = 16;
    let mut udp = Vec::new();
    let mut tcp = Vec::new();
    for address in addresses {
        let mut attempt = 0;
        let (socket, listener) = loop {
            attempt += 1;
            let socket = UdpSocket::bind(address).await?;
            let bound = socket.local_addr()?;
            match TcpListener::bind(bound).await {
                Ok(listener) => break (socket, listener),
                Err(err) if address.port() == 0 && attempt < PORT_ATTEMPTS => {
                    trace!(%bound, %err, "TCP port taken, trying another");
                }
                Err(err) => return Err(err),
            }
        };
        udp.push(socket);
        tcp.push(listener);
    }
    Ok((udp, tcp))
}

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

#[async_trait::async_trait]
impl RequestHandler for ClusterHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let mut response_edns = None;
        if let Some(edns) = &request.edns {
            let mut ours = Edns::new();
            ours.set_version(EDNS_VERSION);
            // Answers fit the client's buffer; 512 is the floor (RFC 6891 section 6.2.5).
            ours.set_max_payload(edns.max_payload().max(512));
            response_edns = Some(ours);
        }
        let reply = if request
            .edns
            .as_ref()
            .is_some_and(|e| e.version() > EDNS_VERSION)
        {
            Reply::error(ResponseCode::BADVERS)
        } else {
            self.answer(request)
        };
        if let Some(edns) = &mut response_edns {
            edns.set_rcode_high(reply.response_code.high());
        }
        let fit = fit_udp(request, &reply, response_edns.as_ref());
        let mut metadata = hickory_proto::op::Metadata::response_from_request(&request.metadata);
        metadata.response_code = reply.response_code;
        metadata.authoritative = reply.authoritative;
        metadata.recursion_available = false;
        metadata.truncation = fit.truncated;
        let builder = MessageResponseBuilder::new(&request.queries, response_edns.as_ref());
        let additionals: &[Record] = if fit.additionals {
            &reply.additionals
        } else {
            &[]
        };
        let response = builder.build(
            metadata,
            reply.answers[..fit.answers].iter(),
            [],
            reply.soa.iter(),
            additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(err) => {
                error!(%err, "failed to send a response");
                let mut metadata =
                    hickory_proto::op::Metadata::response_from_request(&request.metadata);
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(hickory_proto::op::Header {
                    metadata,
                    counts: Default::default(),
                })
            }
        }
    }
}

impl ClusterHandler {
    /// Decides the reply to one request.
    fn answer(&self, request: &Request) -> Reply {
        if request.metadata.message_type != MessageType::Query {
            return Reply::error(ResponseCode::FormErr);
        }
        if request.metadata.op_code != OpCode::Query {
            return Reply::error(ResponseCode::NotImp);
        }
        let [query] = request.queries.queries() else {
            // Zero or several questions: no server answers those (RFC 9619).
            return Reply::error(ResponseCode::FormErr);
        };
        let name = query.name();
        if !self.zones.iter().any(|z| z.zone_of(name)) {
            return Reply::error(ResponseCode::Refused);
        }
        if !matches!(query.query_class(), DNSClass::IN | DNSClass::ANY) {
            return Reply::error(ResponseCode::Refused);
        }
        let query_type = query.query_type();
        if matches!(query_type, RecordType::AXFR | RecordType::IXFR) {
            // Zone transfer is not offered (as in CoreDNS without `transfer`).
            return Reply::error(ResponseCode::Refused);
        }
        let Some(snapshot) = self.reader.load() else {
            // Never NXDOMAIN before the first state: resolvers would cache the lie.
            return Reply::error(ResponseCode::ServFail);
        };
        let outcome = snapshot.lookup(name, query_type);
        trace!(%name, %query_type, code = %outcome.response_code, "answered");

        let original = query.original().name();
        let mut answers = Vec::new();
        let mut additionals: Vec<Record> = Vec::new();
        for set in &outcome.answers {
            for record in &set.records {
                answers.push(with_question_case(record, name, original));
            }
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

/// The record with its owner name in the question's letter case, when it is the question's name.
fn with_question_case(record: &Record, lower: &LowerName, original: &Name) -> Record {
    let mut record = record.clone();
    if LowerName::from(&record.name) == *lower {
        record.name = original.clone();
    }
    record
}

/// What of a reply goes out.
struct Fit {
    /// How many of the answers are sent.
    answers: usize,
    /// Whether the additional records are sent.
    additionals: bool,
    /// Whether TC is set because answers were left out.
    truncated: bool,
}

/// Decides what of `reply` fits the client's UDP buffer (512 bytes without EDNS), so that the
/// message hickory encodes is never cut: hickory-proto 0.26.3 rolls a record that does not fit
/// back out of the count (`BinEncoder::emit_iter`) but leaves its bytes in the buffer, and
/// hickory-server sends the whole buffer, which dig and kdig reject as malformed.
///
/// When only the additional records do not fit, they are left out and TC stays clear (RFC 2181
/// section 9): the answer is complete. When the answers do not fit, as many as fit are sent,
/// with the authority and OPT records, and TC is set. TCP replies are always complete.
fn fit_udp(request: &Request, reply: &Reply, edns: Option<&Edns>) -> Fit {
    let all = Fit {
        answers: reply.answers.len(),
        additionals: !reply.additionals.is_empty(),
        truncated: false,
    };
    if request.protocol() != hickory_server::net::xfer::Protocol::Udp
        || (reply.answers.is_empty() && reply.additionals.is_empty())
    {
        return all;
    }
    // The response's EDNS carries the client's buffer, at least 512; hickory encodes to it.
    let limit = edns.map_or(512, Edns::max_payload);
    // Encodes a trial reply; returns how many answers it held and whether anything was cut.
    let trial = |answers: usize, additionals: bool| -> (usize, bool) {
        let mut bytes = Vec::with_capacity(usize::from(limit));
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(limit);
        let mut metadata = hickory_proto::op::Metadata::response_from_request(&request.metadata);
        metadata.response_code = reply.response_code;
        let extra: &[Record] = if additionals { &reply.additionals } else { &[] };
        let message = MessageResponseBuilder::new(&request.queries, edns).build(
            metadata,
            reply.answers[..answers].iter(),
            [],
            reply.soa.iter(),
            extra.iter(),
        );
        match message.destructive_emit(&mut encoder) {
            Ok(info) => (usize::from(info.counts().answers), info.truncation),
            Err(_) => (0, true),
        }
    };
    let (held, cut) = trial(all.answers, all.additionals);
    if !cut {
        return all;
    }
    if all.additionals && !trial(all.answers, false).1 {
        return Fit {
            additionals: false,
            ..all
        };
    }
    // The answers that were emitted before the first cut, less any whose room the authority
    // and OPT records need.
    let mut answers = held.min(all.answers);
    while answers > 0 && trial(answers, false).1 {
        answers -= 1;
    }
    Fit {
        answers,
        additionals: false,
        truncated: true,
    }
}
