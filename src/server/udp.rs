//! UDP: one worker thread per socket, all sockets bound to the same address with SO_REUSEPORT,
//! so the kernel spreads clients over the workers.
//!
//! A worker is a plain thread in a blocking receive loop: no task is spawned and, on the fast
//! path, nothing is allocated per query (the receive and send buffers are reused). The loop
//! wakes every [`SHUTDOWN_POLL`] to see whether it should stop.

use std::net::{SocketAddr, UdpSocket};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use tracing::{debug, warn};

use super::respond::{Responder, Transport};

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

fn serve(socket: &UdpSocket, responder: &Responder, shutdown: &CancellationToken) {
    let mut request = vec![0u8; MAX_DATAGRAM];
    let mut response = Vec::with_capacity(MAX_DATAGRAM);
    while !shutdown.is_cancelled() {
        let (len, peer) = match socket.recv_from(&mut request) {
            Ok(received) => received,
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(err) => {
                // ICMP errors from earlier sends surface here on some systems: not fatal.
                debug!(%err, "udp receive error");
                continue;
            }
        };
        if !answerable(peer) {
            continue;
        }
        if responder.respond(&request[..len], Transport::Udp, &mut response)
            && let Err(err) = socket.send_to(&response, peer)
        {
            warn!(%err, %peer, "cannot send a udp response");
        }
    }
}

/// Port 0 and unspecified addresses cannot be answered (a spoofed source aiming a reply at
/// nothing, or at a broadcast).
fn answerable(peer: SocketAddr) -> bool {
    peer.port() != 0 && !peer.ip().is_unspecified() && !peer.ip().is_multicast()
}
