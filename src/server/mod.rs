//! The DNS front end: UDP and TCP on bound sockets, answers from the current snapshot.
//!
//! - [`respond`] turns request bytes into response bytes: the [`fast`] path for answers that
//!   were encoded when the snapshot was published, the general path (hickory-proto) for
//!   everything else — negative answers, truncation, EDNS errors, malformed packets.
//! - [`udp`] runs one worker thread per SO_REUSEPORT socket; [`tcp`] one task per connection.
//!
//! This module never imports `feed` or `model`: it sees only snapshots.

pub mod fast;
pub mod respond;
mod tcp;
mod udp;

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::trace;

pub use respond::{Responder, Transport};

/// Sockets bound for serving: `threads` UDP sockets and one TCP listener per address.
#[derive(Debug)]
pub struct Bound {
    /// The addresses, as bound (port 0 resolved).
    pub addresses: Vec<SocketAddr>,
    udp: Vec<std::net::UdpSocket>,
    tcp: Vec<TcpListener>,
}

/// Attempts at finding a port free for both UDP and TCP when the port is 0.
const PORT_ATTEMPTS: usize = 16;

/// Finds a port that no socket holds on `address`'s IP: binding without SO_REUSEPORT fails if
/// any socket (even another stsdns's SO_REUSEPORT group) has the port, so a group is never
/// joined by accident. Port 0 picks a free one.
fn probe(address: SocketAddr) -> std::io::Result<SocketAddr> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&address.into())?;
    let local = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("not an IP socket"))?;
    Ok(local)
}

fn udp_socket(address: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    socket.set_reuse_port(true)?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&address.into())?;
    Ok(socket.into())
}

/// Binds `threads` UDP sockets (SO_REUSEPORT) and a TCP listener on each address. With port 0
/// the OS picks the UDP port and TCP takes the same one; if that TCP port is taken, another
/// pair is tried.
pub async fn bind(addresses: &[SocketAddr], threads: usize) -> std::io::Result<Bound> {
    let threads = threads.max(1);
    let mut bound = Bound {
        addresses: Vec::new(),
        udp: Vec::new(),
        tcp: Vec::new(),
    };
    for address in addresses {
        let mut attempt = 0;
        let (sockets, listener, local) = loop {
            attempt += 1;
            let local = probe(*address)?;
            let mut sockets = Vec::with_capacity(threads);
            for _ in 0..threads {
                sockets.push(udp_socket(local)?);
            }
            match TcpListener::bind(local).await {
                Ok(listener) => break (sockets, listener, local),
                Err(err) if address.port() == 0 && attempt < PORT_ATTEMPTS => {
                    trace!(%local, %err, "TCP port taken, trying another");
                }
                Err(err) => return Err(err),
            }
        };
        bound.addresses.push(local);
        bound.udp.extend(sockets);
        bound.tcp.push(listener);
    }
    Ok(bound)
}

/// Serves on `bound` until `shutdown` is cancelled, then waits for every worker to stop.
pub async fn run(
    bound: Bound,
    responder: Responder,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // The workers watch the token themselves; this guard cancels it if this future is dropped
    // without a shutdown (a runtime going away), so no worker outlives its server.
    let _stop_workers = shutdown.clone().drop_guard();
    let workers = udp::spawn(bound.udp, &responder, &shutdown)?;
    let mut listeners = tokio::task::JoinSet::new();
    for listener in bound.tcp {
        listeners.spawn(tcp::serve(listener, responder.clone(), shutdown.clone()));
    }
    shutdown.cancelled().await;
    while let Some(result) = listeners.join_next().await {
        result.map_err(std::io::Error::other)??;
    }
    tokio::task::spawn_blocking(move || {
        for worker in workers {
            // A worker that panicked has already reported it; the others stop at their next poll.
            let _ = worker.join();
        }
    })
    .await
    .map_err(std::io::Error::other)
}
