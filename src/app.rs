//! Wiring: load the feeds into a cluster state, build and publish a snapshot, serve it.
//!
//! This is the only module that knows every other one. `main.rs` (and the tests) call
//! [`load`], [`publish`] and [`start`]; the server itself only ever sees the snapshot reader.

use std::net::SocketAddr;
use std::path::PathBuf;
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
use crate::server::{self, Responder};
use crate::snapshot::{self, Snapshot, SnapshotReader, SnapshotWriter};

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A feed could not be read.
    #[error("cannot load the feed")]
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
    /// The Kubernetes API feed could not be set up.
    #[error(transparent)]
    Kube(#[from] feed::kube::Error),
    /// The serial file could not be read or written.
    #[error("serial file {path}")]
    SerialFile {
        /// The file.
        path: PathBuf,
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
            // `check` reads files; a live API is `serve`'s business.
            FeedSource::Kube { .. } => continue,
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

/// How many serials are reserved in the serial file at a time: the file is written once per
/// this many publishes, and a restart starts past everything reserved, so the serial never
/// goes backwards even if the process died right after a publish.
const SERIAL_BLOCK: u32 = 1000;

/// The SOA serial across restarts: `max(unix seconds, previous + 1)`, with the high-water mark
/// reserved in a file when one is configured.
#[derive(Debug)]
pub struct SerialStore {
    path: Option<PathBuf>,
    /// Serials below this are covered by what the file says.
    reserved: u32,
    /// The floor for the first serial: what the file held at start.
    floor: Option<u32>,
}

impl SerialStore {
    /// Reads the serial file, if any (a missing file is a first start).
    pub async fn open(path: Option<PathBuf>) -> Result<Self> {
        let mut floor = None;
        if let Some(path) = &path {
            match tokio::fs::read_to_string(path).await {
                Ok(text) => {
                    let value = text.trim().parse::<u32>().map_err(|_| Error::SerialFile {
                        path: path.clone(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("{:?} is not a serial number", text.trim()),
                        ),
                    })?;
                    floor = Some(value);
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(Error::SerialFile {
                        path: path.clone(),
                        source,
                    });
                }
            }
        }
        Ok(Self {
            path,
            reserved: 0,
            floor,
        })
    }

    /// The serial for the next publish after `previous`.
    pub async fn next(&mut self, previous: Option<u32>) -> Result<u32> {
        let mut serial = next_serial(previous);
        if let (None, Some(floor)) = (previous, self.floor) {
            serial = serial.max(floor);
        }
        if let Some(path) = self.path.as_ref().filter(|_| serial >= self.reserved) {
            let reserved = serial.saturating_add(SERIAL_BLOCK);
            tokio::fs::write(path, format!("{reserved}\n"))
                .await
                .map_err(|source| Error::SerialFile {
                    path: path.clone(),
                    source,
                })?;
            self.reserved = reserved;
        }
        Ok(serial)
    }
}

/// The single writer: applies feed events to the cluster state and publishes snapshots.
///
/// Events already queued are applied together and published once (never waiting on a timer),
/// and only the Services they touched are rebuilt. Until every expected source has delivered
/// its first complete list nothing is published, so in-zone queries get SERVFAIL.
#[derive(Debug)]
pub struct Reconciler {
    state: ClusterState,
    builder: records::Builder,
    writer: SnapshotWriter,
    expected: Vec<feed::event::SourceId>,
    serials: SerialStore,
    ready: bool,
}

/// How many queued events are applied before a publish, so a flood cannot starve readers of
/// fresh snapshots.
const MAX_BATCH: usize = 4096;

impl Reconciler {
    /// A reconciler publishing through `writer` once every source in `expected` has listed.
    pub fn new(
        zone: ZoneConfig,
        writer: SnapshotWriter,
        expected: Vec<feed::event::SourceId>,
        serials: SerialStore,
    ) -> Self {
        Self {
            state: ClusterState::new(),
            builder: records::Builder::new(zone),
            writer,
            expected,
            serials,
            ready: false,
        }
    }

    /// The state as applied so far.
    pub fn state(&self) -> &ClusterState {
        &self.state
    }

    /// Applies `events` and publishes if anything changed; returns the new serial.
    pub async fn apply(&mut self, events: Vec<feed::event::SourceEvent>) -> Result<Option<u32>> {
        let started = std::time::Instant::now();
        let mut dirty = crate::model::Dirty::default();
        let count = events.len();
        for event in events {
            let source = event.source;
            let applied = self.state.apply(&source, event.event);
            for problem in &applied.problems {
                warn!(%source, "{problem}");
            }
            for warning in &applied.warnings {
                warn!(%source, "{warning}");
            }
            dirty.merge(applied.dirty);
        }
        // How many Services' records were made again: every one at a full rebuild (a first
        // list does not track what changed, so `dirty` is empty then).
        let services = if !self.ready {
            if !self.expected.iter().all(|s| self.state.is_listed(s)) {
                return Ok(None);
            }
            self.ready = true;
            self.builder.rebuild(&self.state).map_err(Error::Records)?;
            log_problems(&diagnose::diagnose(&self.state));
            self.state.services().count()
        } else if dirty.is_empty() {
            return Ok(None);
        } else {
            self.builder
                .update(&self.state, &dirty)
                .map_err(Error::Records)?;
            if dirty.everything {
                self.state.services().count()
            } else {
                dirty.services.len()
            }
        };
        let serial = self.serials.next(self.writer.serial()).await?;
        let snapshot = self
            .builder
            .snapshot(&self.state, serial, self.state.len())
            .map_err(Error::Records)?;
        info!(
            serial,
            events = count,
            services,
            objects = snapshot.objects,
            names = snapshot.names.len(),
            records = snapshot.records,
            elapsed_us = started.elapsed().as_micros() as u64,
            "published snapshot"
        );
        self.writer.publish(snapshot);
        Ok(Some(serial))
    }

    /// Applies events until `shutdown`, publishing after each batch. When every feed has ended,
    /// the last state keeps serving until shutdown.
    pub async fn run(
        mut self,
        mut events: tokio::sync::mpsc::Receiver<feed::event::SourceEvent>,
        shutdown: CancellationToken,
    ) -> Result<()> {
        loop {
            let first = tokio::select! {
                event = events.recv() => event,
                () = shutdown.cancelled() => return Ok(()),
            };
            let Some(first) = first else {
                info!("every feed has ended; serving the last state");
                shutdown.cancelled().await;
                return Ok(());
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match events.try_recv() {
                    Ok(event) => batch.push(event),
                    Err(_) => break,
                }
            }
            self.apply(batch).await?;
        }
    }
}

/// Starts the feeds of `config`, each sending into `tx`; returns the sources that must list
/// before the server is ready, and the feed tasks.
pub async fn spawn_feeds(
    feeds: &[FeedSource],
    tx: &feed::event::EventSender,
    shutdown: &CancellationToken,
) -> Result<(Vec<feed::event::SourceId>, Vec<JoinHandle<()>>)> {
    use feed::event::SourceId;
    let mut expected = Vec::new();
    let mut tasks = Vec::new();
    for source in feeds {
        let tx = tx.clone();
        match source {
            FeedSource::Embedded => {
                let id = SourceId::new("embedded");
                expected.push(id.clone());
                tasks.push(tokio::spawn(feed::file::run_embedded(id, tx)));
            }
            FeedSource::Path(path) if is_stream(path).await? => {
                let id = SourceId::new(format!("stream:{}", path.display()));
                expected.push(id.clone());
                let path = path.clone();
                tasks.push(tokio::spawn(async move {
                    if let Err(error) = feed::stream::follow_path(&path, id.clone(), tx).await {
                        tracing::error!(source = %id, error = %error, "the stream feed stopped");
                    }
                }));
            }
            FeedSource::Path(path) => {
                feed::file::check_path(path)?;
                let id = SourceId::new(format!("file:{}", path.display()));
                expected.push(id.clone());
                let path = path.clone();
                tasks.push(tokio::spawn(async move {
                    if let Err(error) = feed::file::watch(path, id.clone(), tx).await {
                        tracing::error!(source = %id, error = %error, "the manifest feed stopped");
                    }
                }));
            }
            FeedSource::Kube {
                kubeconfig,
                context,
            } => {
                let client = feed::kube::client(kubeconfig.clone(), context.clone()).await?;
                expected.extend(feed::kube::sources());
                let shutdown = shutdown.clone();
                tasks.push(tokio::spawn(feed::kube::run(client, tx, shutdown)));
            }
        }
    }
    Ok((expected, tasks))
}

/// Whether `path` is a watch-event stream rather than manifests: `-`, a FIFO, or a file whose
/// first JSON value is a watch event.
async fn is_stream(path: &std::path::Path) -> Result<bool> {
    if path == std::path::Path::new("-") {
        return Ok(true);
    }
    let metadata = tokio::fs::metadata(path).await.map_err(|source| {
        Error::Feed(feed::Error::Read {
            path: path.to_owned(),
            source,
        })
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if metadata.file_type().is_fifo() {
            return Ok(true);
        }
    }
    if !metadata.is_file() {
        return Ok(false);
    }
    let mut head = vec![0u8; 4096];
    let mut file = tokio::fs::File::open(path).await.map_err(|source| {
        Error::Feed(feed::Error::Read {
            path: path.to_owned(),
            source,
        })
    })?;
    let read = tokio::io::AsyncReadExt::read(&mut file, &mut head)
        .await
        .map_err(|source| {
            Error::Feed(feed::Error::Read {
                path: path.to_owned(),
                source,
            })
        })?;
    Ok(feed::stream::looks_like_watch_stream(&head[..read]))
}

/// Everything `serve` runs: the server, the feeds and the reconciler.
#[derive(Debug)]
pub struct Serving {
    /// The bound addresses (UDP and TCP share each).
    pub addresses: Vec<SocketAddr>,
    /// Reads the published snapshot; `ready()` resolves at the first complete state.
    pub reader: SnapshotReader,
    /// The server task.
    pub server: JoinHandle<std::io::Result<()>>,
    /// The reconciler task.
    pub reconciler: JoinHandle<Result<()>>,
    /// The feed tasks.
    pub feeds: Vec<JoinHandle<()>>,
}

/// Binds, starts the server (SERVFAIL until ready), the feeds and the reconciler.
pub async fn serve(config: &ServeConfig, shutdown: CancellationToken) -> Result<Serving> {
    let serials = SerialStore::open(config.serial_file.clone()).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(EVENT_QUEUE);
    let (expected, feeds) = spawn_feeds(&config.feeds, &tx, &shutdown).await?;
    drop(tx);
    let running = start(config, shutdown.clone()).await?;
    let reconciler = Reconciler::new(config.zone.clone(), running.writer, expected, serials);
    let reconciler = tokio::spawn(reconciler.run(rx, shutdown));
    Ok(Serving {
        addresses: running.addresses,
        reader: running.reader,
        server: running.task,
        reconciler,
        feeds,
    })
}

/// Events queued between the feeds and the reconciler before feeds wait.
const EVENT_QUEUE: usize = 4096;

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
    pub task: JoinHandle<std::io::Result<()>>,
}

/// Binds every listen address and starts answering from an empty (not yet ready) snapshot
/// channel: in-zone queries get SERVFAIL until something is published through `writer`.
pub async fn start(config: &ServeConfig, shutdown: CancellationToken) -> Result<Running> {
    let bound = server::bind(&config.listen, config.threads)
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
    let addresses = bound.addresses.clone();
    let (writer, reader) = snapshot::channel();
    let responder = Responder::new(reader.clone(), served_zones(&config.zone));
    let task = tokio::spawn(server::run(bound, responder, shutdown));
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
