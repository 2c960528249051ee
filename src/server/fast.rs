//! The fast path: a question whose answer was encoded when the snapshot was published.
//!
//! It reads only the question (and an OPT record) straight from the packet, looks the name up
//! by its wire form, and writes the pre-encoded response into the caller's buffer: its header
//! (with the query's id and RD bit), the query's own question (so the answer echoes the
//! client's letter case: the answers' owner names are compression pointers to the question,
//! which has the stored one's length), then the stored answer and additional sections.
//! Anything it does not handle exactly — a negative answer, a CNAME, ANY, a response that would
//! not fit, EDNS other than version 0, trailing bytes, compression in the question — it
//! declines, and the general path answers. The differential test in `tests/dns/fast_path.rs`
//! checks that both give the same bytes wherever the fast path answers.

use hickory_proto::rr::RecordType;

use crate::snapshot::{HEADER_LEN, Node, Snapshot};

/// The OPT record the general path sends: root name, type 41, class = payload, ttl 0
/// (extended rcode 0, version 0, no flags), no options.
const OPT_LEN: usize = 11;
/// The type code of OPT.
const OPT: u16 = 41;
/// The class IN.
const CLASS_IN: u16 = 1;
/// The longest name, in wire form.
const MAX_NAME: usize = 255;

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

/// Answers `request` into `out` from a pre-encoded response; `false` to decline (then `out`
/// is left empty and the general path must answer).
pub fn answer(snapshot: &Snapshot, request: &[u8], udp: bool, out: &mut Vec<u8>) -> bool {
    out.clear();
    let Some((key, shape)) = question(request) else {
        return false;
    };
    let Some(template) = lookup(snapshot, &key, &shape) else {
        return false;
    };
    write(request, &shape, template, udp, out)
}

/// The lowercase wire form of a question's name: the index key.
pub struct Key {
    bytes: [u8; MAX_NAME],
    len: usize,
}

impl Key {
    /// The name's wire form, as the index is keyed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// What the fast path needs of a request besides its name.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    record_type: RecordType,
    /// Where the question ends (the question is echoed from the header up to here).
    question_end: usize,
    /// The EDNS payload size, when the request has an OPT record.
    payload: Option<u16>,
}

/// Reads the question of a request the fast path can take; `None` for any other request.
pub fn question(request: &[u8]) -> Option<(Key, Shape)> {
    // Header: a query (QR 0, opcode 0), one question, nothing else but maybe one OPT.
    if request.len() < HEADER_LEN || request[2] & 0xF8 != 0 {
        return None;
    }
    let (Some(1), Some(0), Some(0), Some(additional)) = (
        be16(request, 4),
        be16(request, 6),
        be16(request, 8),
        be16(request, 10),
    ) else {
        return None;
    };
    if additional > 1 {
        return None;
    }

    // The question name, lowercased into a stack buffer: the index key.
    let mut key = [0u8; MAX_NAME];
    let mut key_len = 0;
    let mut at = HEADER_LEN;
    loop {
        let &len = request.get(at)?;
        let len = usize::from(len);
        if len & 0xC0 != 0 || key_len + len + 1 > MAX_NAME {
            return None;
        }
        let label = request.get(at..at + 1 + len)?;
        for (slot, byte) in key[key_len..key_len + 1 + len].iter_mut().zip(label) {
            *slot = byte.to_ascii_lowercase();
        }
        key_len += 1 + len;
        at += 1 + len;
        if len == 0 {
            break;
        }
    }
    let (Some(query_type), Some(CLASS_IN)) = (be16(request, at), be16(request, at + 2)) else {
        return None;
    };
    let question_end = at + 4;

    // EDNS: exactly one OPT record of version 0 that ends the message.
    let mut payload = None;
    if additional == 1 {
        let opt = question_end;
        let (Some(0), Some(OPT), Some(size), Some(rdlen)) = (
            request.get(opt).copied(),
            be16(request, opt + 1),
            be16(request, opt + 3),
            be16(request, opt + 9),
        ) else {
            return None;
        };
        // Extended rcode and version must be 0 (else BADVERS and friends: general path).
        if request.get(opt + 5..opt + 7) != Some(&[0, 0]) {
            return None;
        }
        if opt + OPT_LEN + usize::from(rdlen) != request.len() {
            return None;
        }
        // Each option (code, length, data) must fit the RDATA exactly, as the general path's
        // decoder requires; otherwise it answers FORMERR and so must we.
        let mut option = opt + OPT_LEN;
        while option < request.len() {
            let len = be16(request, option + 2)?;
            option += 4 + usize::from(len);
        }
        if option != request.len() {
            return None;
        }
        payload = Some(size.max(512));
    } else if question_end != request.len() {
        return None;
    }

    let record_type = RecordType::from(query_type);
    if matches!(
        record_type,
        RecordType::ANY | RecordType::AXFR | RecordType::IXFR | RecordType::OPT
    ) {
        return None;
    }
    Some((
        Key {
            bytes: key,
            len: key_len,
        },
        Shape {
            record_type,
            question_end,
            payload,
        },
    ))
}

/// The pre-encoded response for the question, if the snapshot has one (without its question:
/// see [`write`]).
pub fn lookup<'s>(snapshot: &'s Snapshot, key: &Key, shape: &Shape) -> Option<&'s [u8]> {
    template(snapshot.names.get(key.as_bytes())?, shape)
}

/// The pre-encoded response for the question at its name's node (see [`lookup`]).
pub fn template<'s>(node: &'s Node, shape: &Shape) -> Option<&'s [u8]> {
    node.wire(shape.record_type)
}

/// Writes `template` into `out` as the response to `request`: its header with the request's
/// id and RD, the request's question, the rest of `template`, and an OPT record for EDNS.
/// `false` when it does not fit the transport's limit (512 bytes for UDP without EDNS, the
/// client's payload size with it, 65535 for TCP).
pub fn write(request: &[u8], shape: &Shape, template: &[u8], udp: bool, out: &mut Vec<u8>) -> bool {
    out.clear();
    let Shape {
        question_end,
        payload,
        ..
    } = *shape;
    let limit = match (udp, payload) {
        (false, _) => usize::from(u16::MAX),
        (true, Some(size)) => usize::from(size),
        (true, None) => 512,
    };
    let extra = if payload.is_some() { OPT_LEN } else { 0 };
    let Some((header, sections)) = template.split_at_checked(HEADER_LEN) else {
        return false;
    };
    if template.len() + (question_end - HEADER_LEN) + extra > limit {
        return false;
    }

    out.extend_from_slice(header);
    out[0..2].copy_from_slice(&request[0..2]);
    // RD is copied from the query (the low bit of the third byte).
    out[2] |= request[2] & 0x01;
    out.extend_from_slice(&request[HEADER_LEN..question_end]);
    out.extend_from_slice(sections);
    if let Some(size) = payload {
        let count = u16::from_be_bytes([out[10], out[11]]).saturating_add(1);
        out[10..12].copy_from_slice(&count.to_be_bytes());
        out.push(0);
        out.extend_from_slice(&OPT.to_be_bytes());
        out.extend_from_slice(&size.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    true
}
