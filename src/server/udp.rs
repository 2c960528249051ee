//! UDP: one worker thread per socket, all sockets bound to the same address with SO_REUSEPORT,
//! so the kernel spreads clients over the workers.
//!
//! A worker is a plain thread in a blocking receive loop: no task is spawned and, on the fast
//! path, nothing is allocated per query (the receive and send buffers are reused). The loop
//! wakes every [`SHUTDOWN_POLL`] to see whether it should stop.
//!
//! On Linux a worker moves datagrams in batches: one `recvmmsg` takes up to [`batch::BATCH`]
//! queries and one `sendmmsg` sends their answers, so under load the system-call cost (a large
//! part of the server's CPU time) is paid per batch rather than per query. Elsewhere it falls
//! back to one `recv_from` and one `send_to` per query.

use std::net::{SocketAddr, UdpSocket};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

#[cfg(not(target_os = "linux"))]
use tracing::{debug, warn};

use super::respond::Responder;

/// How often an idle worker checks for shutdown.
const SHUTDOWN_POLL: Duration = Duration::from_millis(100);
/// The largest datagram we read.
const MAX_DATAGRAM: usize = 65_535;

/// Starts one worker per socket; they stop when `shutdown` is cancelled (they look at the token
/// themselves, so they stop even if the task that started them is never polled again).
pub(super) fn spawn(
    sockets: Vec<UdpSocket>,
    responder: &Responder,
    shutdown: &CancellationToken,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let mut workers = Vec::new();
    for (index, socket) in sockets.into_iter().enumerate() {
        // Bounds the wait for the first datagram of a receive (also for `recvmmsg`).
        socket.set_read_timeout(Some(SHUTDOWN_POLL))?;
        let responder = responder.clone();
        let shutdown = shutdown.clone();
        let worker = std::thread::Builder::new()
            .name(format!("stsdns-udp-{index}"))
            .spawn(move || serve(&socket, &responder, &shutdown))?;
        workers.push(worker);
    }
    Ok(workers)
}

#[cfg(target_os = "linux")]
fn serve(socket: &UdpSocket, responder: &Responder, shutdown: &CancellationToken) {
    let mut batch = batch::Batch::new();
    while !shutdown.is_cancelled() {
        batch.receive(socket);
        batch.answer(responder);
        batch.send(socket);
    }
}

#[cfg(not(target_os = "linux"))]
fn serve(socket: &UdpSocket, responder: &Responder, shutdown: &CancellationToken) {
    let mut request = vec![0u8; MAX_DATAGRAM];
    let mut response = Vec::with_capacity(MAX_DATAGRAM);
    while !shutdown.is_cancelled() {
        let (len, peer) = match socket.recv_from(&mut request) {
            Ok(received) => received,
            Err(err) => {
                if !idle(&err) {
                    debug!(%err, "udp receive error");
                }
                continue;
            }
        };
        if answerable(peer)
            && responder.respond(
                &request[..len],
                super::respond::Transport::Udp,
                &mut response,
            )
            && let Err(err) = socket.send_to(&response, peer)
        {
            warn!(%err, %peer, "cannot send a udp response");
        }
    }
}

/// A receive that found nothing before the timeout (or was interrupted): not an error. Other
/// receive errors are logged and skipped: ICMP errors from earlier sends surface there on some
/// systems.
fn idle(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted
    )
}

/// Port 0 and unspecified addresses cannot be answered (a spoofed source aiming a reply at
/// nothing, or at a broadcast).
fn answerable(peer: SocketAddr) -> bool {
    peer.port() != 0 && !peer.ip().is_unspecified() && !peer.ip().is_multicast()
}

/// Batched receive and send with `recvmmsg`/`sendmmsg` (Linux).
#[cfg(target_os = "linux")]
mod batch {
    use std::io::{IoSlice, IoSliceMut};
    use std::net::{SocketAddr, UdpSocket};
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg};
    use rustix::net::addr::SocketAddrArg;
    use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};
    use smallvec::SmallVec;
    use tracing::{debug, warn};

    pub(super) use super::super::respond::UDP_BATCH as BATCH;
    use super::{MAX_DATAGRAM, Responder, answerable, idle};

    /// A worker's buffers, reused from one batch to the next.
    pub(super) struct Batch {
        /// [`BATCH`] slots of [`MAX_DATAGRAM`] bytes: no datagram is ever cut short, and since the
        /// buffer is allocated zeroed (fresh pages from the OS), only the pages datagrams are
        /// written to become resident: about one 4 KiB page per slot for DNS queries.
        requests: Vec<u8>,
        /// The `mmsghdr`s `recvmmsg` fills in, with room for each sender's address. Each socket
        /// has one address family (IPv6 sockets are V6ONLY), so the address length the kernel
        /// leaves in a header is always enough for the next datagram.
        headers: MultiHeaders<SockaddrStorage>,
        /// The last receive: each datagram's length and sender, `None` for one not to answer.
        received: Vec<Option<(usize, SocketAddr)>>,
        /// One response buffer per slot; each grows to the largest answer it has held, then
        /// stays.
        responses: Vec<Vec<u8>>,
        /// The answers of this batch, to send: slot and peer.
        replies: Vec<(usize, SocketAddr)>,
    }

    impl Batch {
        pub(super) fn new() -> Self {
            Self {
                requests: vec![0; BATCH * MAX_DATAGRAM],
                headers: MultiHeaders::preallocate(BATCH, None),
                received: Vec::with_capacity(BATCH),
                responses: vec![Vec::new(); BATCH],
                replies: Vec::with_capacity(BATCH),
            }
        }

        /// Waits up to the socket's read timeout for one datagram, then takes whatever else is
        /// already queued (MSG_WAITFORONE), up to [`BATCH`].
        pub(super) fn receive(&mut self, socket: &UdpSocket) {
            self.received.clear();
            // `requests` holds exactly BATCH slots: the default (empty) is never used.
            let mut slots = self.requests.chunks_exact_mut(MAX_DATAGRAM);
            let mut buffers: [[IoSliceMut<'_>; 1]; BATCH] =
                std::array::from_fn(|_| [IoSliceMut::new(slots.next().unwrap_or_default())]);
            let messages = match recvmmsg(
                socket.as_raw_fd(),
                &mut self.headers,
                &mut buffers,
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(messages) => messages,
                Err(errno) => {
                    let err = std::io::Error::from(errno);
                    if !idle(&err) {
                        debug!(%err, "udp receive error");
                    }
                    return;
                }
            };
            for message in messages {
                let peer = message.address.as_ref().and_then(socket_addr);
                // Cannot happen with full-size slots; a cut query must never be answered.
                let cut = message.flags.contains(MsgFlags::MSG_TRUNC);
                if cut {
                    debug!(?peer, "udp datagram truncated, dropped");
                }
                let answer = peer.filter(|peer| answerable(*peer) && !cut);
                self.received.push(answer.map(|peer| (message.bytes, peer)));
            }
        }

        /// Answers the datagrams of the last receive into their slots' response buffers.
        pub(super) fn answer(&mut self, responder: &Responder) {
            self.replies.clear();
            let requests: SmallVec<[(usize, &[u8]); BATCH]> = self
                .received
                .iter()
                .enumerate()
                .filter_map(|(slot, received)| {
                    let (len, _) = (*received)?;
                    Some((slot, &self.requests[slot * MAX_DATAGRAM..][..len]))
                })
                .collect();
            let (received, replies) = (&self.received, &mut self.replies);
            responder.respond_udp_batch(&requests, &mut self.responses, |slot| {
                if let Some(Some((_, peer))) = received.get(slot) {
                    replies.push((slot, *peer));
                }
            });
        }

        /// Sends the answers with as few `sendmmsg` calls as the kernel allows. It stops at the
        /// first datagram it cannot send: that one is logged and skipped, and the rest go out in
        /// the next call.
        pub(super) fn send(&self, socket: &UdpSocket) {
            let peers: SmallVec<[SocketAddrAny; BATCH]> =
                self.replies.iter().map(|(_, peer)| peer.as_any()).collect();
            let payloads: SmallVec<[[IoSlice<'_>; 1]; BATCH]> = self
                .replies
                .iter()
                .map(|(slot, _)| [IoSlice::new(&self.responses[*slot])])
                .collect();
            let mut no_control: SmallVec<[SendAncillaryBuffer<'_, '_, '_>; BATCH]> =
                self.replies.iter().map(|_| Default::default()).collect();
            let mut messages: SmallVec<[MMsgHdr<'_>; BATCH]> = peers
                .iter()
                .zip(&payloads)
                .zip(&mut no_control)
                .map(|((peer, payload), control)| MMsgHdr::new_with_addr(peer, payload, control))
                .collect();
            let mut next = 0;
            while next < messages.len() {
                match rustix::net::sendmmsg(socket, &mut messages[next..], SendFlags::empty()) {
                    // The kernel sends at least one datagram or fails.
                    Ok(sent) => next += sent.max(1),
                    Err(errno) => {
                        let err = std::io::Error::from(errno);
                        let peer = self.replies[next].1;
                        warn!(%err, %peer, "cannot send a udp response");
                        next += 1;
                    }
                }
            }
        }
    }

    /// The sender of a datagram, when it is an IP address (it always is on a UDP socket).
    fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
        if let Some(v4) = address.as_sockaddr_in() {
            return Some((*v4).into());
        }
        address.as_sockaddr_in6().map(|v6| (*v6).into())
    }
}
