//! Wiring: load the feeds into a cluster state, build and publish a snapshot, serve it.
//!
//! This is the only module that knows every other one. `main.rs` (and the tests) call
//! [`load`], [`publish`] and [`start`]; the server itself only ever sees the snapshot reader.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::rr::LowerName;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{FeedSource, ServeConfig, ZoneConfig};
use crate::feed;
use crate::model::ClusterState;
use crate::model::diagnose::{self, Problem, Severity};
use crate::records;
use crate::server::{self, ClusterHandler};
use crate::snapshot::{self, Snapshot, SnapshotReader, SnapshotWriter};

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A feed could not be read.
    #[error(transparent)]
    Feed(#[from] feed::Error),
    /// A listen address could not be bound.
    #[error("cannot listen on {address}")]
    Bind {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The records could not be built (a name too long for DNS, for instance).
    #[error("cannot build the records")]
    Records(#[source] hickory_proto::ProtoError),
}

/// Shorthand for app results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A loaded cluster state and everything wrong with its input.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The objects that loaded.
    pub state: ClusterState,
    /// Problems with the input and with the state, in that order.
    pub problems: Vec<Problem>,
    /// How many files were read.
    pub files: usize,
}

impl Loaded {
    /// How many problems are errors.
    pub fn errors(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count()
    }
}

/// Reads every feed into one state, then diagnoses it.
pub fn load(feeds: &[FeedSource]) -> Result<Loaded> {
    let mut loaded = Loaded::default();
    for source in feeds {
        let read = match source {
            FeedSource::Embedded => feed::file::load_embedded(),
            FeedSource::Path(path) => feed::file::load_path(path)?,
        };
        loaded.files += read.files;
        loaded.problems.extend(read.problems);
        for (object, origin) in read.objects {
            if let Some(first) = loaded.state.insert(object.clone(), origin.clone()) {
                loaded
                    .problems
                    .push(diagnose::duplicate(&object, &first, &origin));
            }
        }
    }
    loaded.problems.extend(diagnose::diagnose(&loaded.state));
    Ok(loaded)
}

/// The next SOA serial: the current time in seconds, but always past the previous one, so
/// secondaries see every change and a restart does not go backwards.
pub fn next_serial(previous: Option<u32>) -> u32 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
    match previous {
        Some(previous) => now.max(previous.wrapping_add(1)),
        None => now,
    }
}

/// Builds a snapshot of `state` and publishes it; returns its serial.
pub fn publish(writer: &SnapshotWriter, state: &ClusterState, zone: &ZoneConfig) -> Result<u32> {
    let serial = next_serial(writer.serial());
    let snapshot = records::build(state, zone, serial).map_err(Error::Records)?;
    info!(
        serial,
        objects = snapshot.objects,
        names = snapshot.names.len(),
        records = snapshot.record_count(),
        "published snapshot"
    );
    writer.publish(snapshot);
    Ok(serial)
}

/// The zones a server answers for: the cluster domains and the reverse zones.
pub fn served_zones(zone: &ZoneConfig) -> Vec<LowerName> {
    zone.zones
        .iter()
        .cloned()
        .chain(records::names::reverse_zones())
        .map(|z| LowerName::from(&z))
        .collect()
}

/// A running server.
#[derive(Debug)]
pub struct Running {
    /// The bound addresses (UDP and TCP share each).
    pub addresses: Vec<SocketAddr>,
    /// Reads the published snapshot.
    pub reader: SnapshotReader,
    /// The snapshot writer: publish a new state through it.
    pub writer: SnapshotWriter,
    /// The server task.
    pub task: JoinHandle<Result<(), hickory_server::net::NetError>>,
}

/// Binds every listen address and starts answering from an empty (not yet ready) snapshot
/// channel: in-zone queries get SERVFAIL until something is published through `writer`.
pub async fn start(config: &ServeConfig, shutdown: CancellationToken) -> Result<Running> {
    let (udp, tcp) = server::bind(&config.listen)
        .await
        .map_err(|source| Error::Bind {
            address: config
                .listen
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            source,
        })?;
    let addresses = udp.iter().filter_map(|s| s.local_addr().ok()).collect();
    let (writer, reader) = snapshot::channel();
    let handler = ClusterHandler::new(reader.clone(), served_zones(&config.zone));
    let task = tokio::spawn(server::run(udp, tcp, handler, shutdown));
    Ok(Running {
        addresses,
        reader,
        writer,
        task,
    })
}

/// Logs each problem: errors and warnings at `warn` (the server goes on without that input).
pub fn log_problems(problems: &[Problem]) {
    for problem in problems {
        warn!("{problem}");
    }
}

/// The current snapshot, for messages.
pub fn describe(snapshot: &Snapshot) -> (usize, usize) {
    (snapshot.objects, snapshot.record_count())
}
