//! TCP: length-prefixed messages (RFC 1035 section 4.2.2), answered in order per connection,
//! each connection its own task, idle connections closed after [`IDLE_TIMEOUT`].

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::respond::{Responder, Transport};

/// How long a connection may wait between messages.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the accept queue.
const MAX_CONNECTIONS: usize = 1024;

/// Accepts connections until `shutdown`.
pub(super) async fn serve(
    listener: TcpListener,
    responder: Responder,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => permit.map_err(std::io::Error::other)?,
            () = shutdown.cancelled() => return Ok(()),
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off a little and go on.
                    debug!(%err, "tcp accept error");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => return Ok(()),
        };
        let responder = responder.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                result = connection(stream, &responder) => {
                    if let Err(err) = result {
                        debug!(%err, %peer, "tcp connection closed");
                    }
                }
                () = shutdown.cancelled() => {}
            }
            drop(permit);
        });
    }
}

/// Answers one connection's messages in order until it closes, idles or sends a bad frame.
async fn connection(stream: TcpStream, responder: &Responder) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut write = BufWriter::new(write);
    let mut request = Vec::new();
    let mut response = Vec::new();
    loop {
        let len = match tokio::time::timeout(IDLE_TIMEOUT, read.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            // Closed, reset, or idle for too long: the connection ends.
            Ok(Err(_)) | Err(_) => return Ok(()),
        };
        if len == 0 {
            return Ok(());
        }
        request.resize(len, 0);
        tokio::time::timeout(IDLE_TIMEOUT, read.read_exact(&mut request))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "message not received in time")
            })??;
        if !responder.respond(&request, Transport::Tcp, &mut response) {
            continue;
        }
        let Ok(length) = u16::try_from(response.len()) else {
            continue;
        };
        write.write_all(&length.to_be_bytes()).await?;
        write.write_all(&response).await?;
        // Flush only when no further request is already buffered: pipelined queries are
        // answered in one write.
        if read.buffer().is_empty() {
            write.flush().await?;
        }
    }
}
