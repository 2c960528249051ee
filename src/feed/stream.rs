//! The watch-stream feed: Kubernetes watch events read from any byte stream.
//!
//! Input is what the API server's watch endpoint sends and what
//! `kubectl get <kind> -A --watch --output-watch-events -o json` prints: a sequence of
//! `{"type": "ADDED|MODIFIED|DELETED|BOOKMARK|ERROR", "object": {...}}` values, one per line
//! (JSON lines) or pretty-printed and concatenated. It is read incrementally from a
//! [`tokio::io::AsyncRead`] (standard input, a FIFO), or from a regular file that is followed
//! as it grows ([`follow_file`]); [`follow_path`] picks the right reader for a path.
//!
//! This module owns bytes → JSON values → [`Event`]s. It never parses JSON by hand (values are
//! cut out of the buffer by serde_json's `StreamDeserializer`), never converts objects itself
//! ([`model::convert`](crate::model::convert) does), and never keeps cluster state: a DELETED
//! event for an object never seen is sent as a [`Event::Delete`] all the same; the reconciler
//! decides what it means.
//!
//! # Events
//!
//! Every source starts with [`Event::Init`]. Until the initial list ends, ADDED objects are sent
//! as [`Event::InitApply`]; then [`Event::InitDone`]. After it, ADDED and MODIFIED are
//! [`Event::Apply`], DELETED is [`Event::Delete`] (the object's reference), BOOKMARK is nothing,
//! and ERROR is an [`Event::Problem`] (e.g. a `Status` 410 `Expired`); the stream goes on.
//!
//! The initial list ends at the first of:
//! 1. a BOOKMARK whose `metadata.annotations["k8s.io/initial-events-end"]` is `"true"` (the API
//!    server's marker for watches with `sendInitialEvents=true`);
//! 2. a MODIFIED or DELETED event: a list is all ADDED, so a change means the watch has begun
//!    (`InitDone` is sent just before that event's `Apply` or `Delete`);
//! 3. the reader being caught up. kubectl prints no marker, so "the list" is what was already
//!    written when we read it. [`run`]: after the bytes of a read are processed, the buffer holds
//!    no partial event, and polling the next read once returns `Pending` (it would block).
//!    [`follow_file`]: the first end of file (even with a partial event at the end: the writer
//!    may be mid-write);
//! 4. the end of the stream ([`run`]).
//!
//! Rule 3 is only as good as the reader's idea of "would block". A pipe or FIFO read in
//! non-blocking mode ([`follow_path`] opens them so) answers it exactly, but on a pipe
//! "available" is a matter of timing: if the writer pauses in the middle of its list for longer
//! than we take to process what came, the list ends early and the rest arrives as `Apply`.
//! Nothing is lost; readiness is only declared sooner. Readers that go through tokio's blocking
//! pool (`tokio::io::stdin()`, `tokio::fs::File`) are practically never ready at the first poll,
//! so with them the list ends after the first read. A stream that stays silent before its first
//! byte stays in its initial list (no `InitDone`) until that byte or its end arrives.
//!
//! # Origins and problems
//!
//! Each object carries `Origin { source: name, line }`, the line of its event's first byte, so
//! problems read `stream.json:57: …`. Bad input is reported as an [`Event::Problem`] naming the
//! source, the line and, where known, the object (`Pod default/web-0`), and the stream
//! continues: invalid JSON (skipped up to the next line that starts with `{`, which resyncs
//! both JSON lines and kubectl's pretty output, whose inner lines are indented), a value that is
//! not an event, an unknown event type, an object of an unknown kind or an unsupported
//! apiVersion, an object that fails conversion, and a `List` inside an event. A stream that ends
//! in the middle of an event is reported too; the state already sent stays.
//!
//! Only input that cannot be read at all is an [`Error`]. At the end of the stream, [`run`]
//! returns `Ok(())`; what that means for the server (the last state keeps serving) is the
//! caller's decision.

use std::future::poll_fn;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, ReadBuf};

use tracing::{debug, info};

use super::event::{Event, EventSender, SourceEvent, SourceId};
use crate::model::convert::{
    ConvertError, Document, convert_document, describe_document, suggest_kind,
};
use crate::model::diagnose::{Problem, Severity};
use crate::model::{Kind, Namespace, Object, ObjectKey, ObjectRef, Origin};

/// How many bytes one read asks for.
const CHUNK: usize = 64 * 1024;

/// The largest event we wait for: the API server stores objects of at most 1.5 MiB, so a value
/// still incomplete past this size is garbage (an unterminated string), not an event.
const MAX_EVENT: usize = 16 * 1024 * 1024;

/// How long [`follow_file`] waits for a change notification before looking at the file anyway:
/// a safety net for file systems where notifications are late or missing (network mounts).
pub const FOLLOW_POLL: Duration = super::POLL_FALLBACK;

/// The annotation on the BOOKMARK that ends the initial events of a watch.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// A stream that could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stream, FIFO or file could not be opened.
    #[error("cannot open {path}")]
    Open {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading failed.
    #[error("cannot read {name}")]
    Read {
        /// The stream's name (`-` or the path).
        name: Arc<str>,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The receiving end of the event channel is gone: nobody listens any more.
    #[error("the event channel is closed")]
    Closed,
}

/// Shorthand for stream feed results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Reads watch events from `reader` until it ends, sending them as `source` into `tx`.
///
/// `name` names the stream in origins and problems (`-`, or the path). Sends [`Event::Init`]
/// first; the initial list ends as the module documentation describes. Returns `Ok(())` at the
/// end of the stream, after reporting a partial event if there is one.
#[tracing::instrument(name = "feed", skip_all, fields(source = %source))]
pub async fn run(
    source: SourceId,
    name: Arc<str>,
    mut reader: impl AsyncRead + Unpin,
    tx: EventSender,
) -> Result<()> {
    let mut feed = Feed::new(source, name, tx);
    feed.begin().await?;
    feed.pump(&mut reader, true).await?;
    feed.finish().await
}

/// Follows a regular file that is appended to, like `tail -f`: reads what is there, then waits
/// for appends and reads them, until reading fails or nobody listens.
///
/// The initial list ends at the file's first end (or earlier, at a marker or a change). Appends
/// are noticed through file system notifications (`notify`), with a [`FOLLOW_POLL`] fallback.
/// A file truncated under us (`kubectl … > file` started again) is read again from its start as
/// a new list (`Init` … `InitDone`); like `tail -f`, truncation is noticed when the file is
/// shorter than what was already read, so a file rewritten past its old length before we look
/// is misread from the old offset (reported as invalid JSON). A file replaced by another one
/// (renamed over) is not noticed: the old one is still followed.
#[tracing::instrument(name = "feed", skip_all, fields(source = %source))]
pub async fn follow_file(path: &Path, source: SourceId, tx: EventSender) -> Result<()> {
    let name: Arc<str> = Arc::from(path.display().to_string());
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|source| Error::Open {
            path: path.to_owned(),
            source,
        })?;
    let (mut wakeups, _watcher) = super::watch_changes(path, false);
    let mut feed = Feed::new(source, name, tx);
    feed.begin().await?;
    let mut position: u64 = 0;
    loop {
        position += feed.pump(&mut file, false).await?;
        feed.decoder.end_list("end of file", &mut feed.out);
        feed.flush().await?;

        match &mut wakeups {
            Some(rx) => {
                if let Ok(None) = tokio::time::timeout(FOLLOW_POLL, rx.recv()).await {
                    wakeups = None;
                }
            }
            None => tokio::time::sleep(FOLLOW_POLL).await,
        }

        let length = file
            .metadata()
            .await
            .map_err(|source| feed.read_error(source))?
            .len();
        if length < position {
            info!(
                length,
                position, "file truncated; reading it again as a new list"
            );
            file.seek(io::SeekFrom::Start(0))
                .await
                .map_err(|source| feed.read_error(source))?;
            position = 0;
            feed.decoder.restart(&mut feed.out);
            feed.flush().await?;
        }
    }
}

/// Follows a watch stream given as a path: `-` is standard input, a FIFO is read until its
/// writer closes it, and anything else is a regular file followed with [`follow_file`].
///
/// Standard input and FIFOs are read in non-blocking mode, so "the reader is caught up" (the
/// end of the initial list without a marker) is exact. Standard input redirected from a regular
/// file is read to its end, which ends the list. Returns at the end of the stream for standard
/// input and FIFOs; [`follow_file`] never ends by itself.
pub async fn follow_path(path: &Path, source: SourceId, tx: EventSender) -> Result<()> {
    if path == Path::new("-") {
        return run_stdin(source, tx).await;
    }
    let open_error = |source| Error::Open {
        path: path.to_owned(),
        source,
    };
    let metadata = tokio::fs::metadata(path).await.map_err(open_error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if metadata.file_type().is_fifo() {
            let receiver = tokio::net::unix::pipe::OpenOptions::new()
                .open_receiver(path)
                .map_err(open_error)?;
            let name: Arc<str> = Arc::from(path.display().to_string());
            return run(source, name, receiver, tx).await;
        }
    }
    if metadata.is_dir() {
        return Err(open_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a watch stream is a file, a FIFO or -, not a directory",
        )));
    }
    follow_file(path, source, tx).await
}

/// Reads standard input: a pipe in non-blocking mode, a redirected file to its end, anything
/// else (a terminal) through tokio's blocking reader.
async fn run_stdin(source: SourceId, tx: EventSender) -> Result<()> {
    let name: Arc<str> = Arc::from("-");
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        use std::os::unix::fs::FileTypeExt;
        let open_error = |source| Error::Open {
            path: PathBuf::from("-"),
            source,
        };
        // A duplicate of fd 0, so the pipe can be switched to non-blocking mode without
        // touching std's handle.
        let fd = io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(open_error)?;
        let file = std::fs::File::from(fd);
        let file_type = file.metadata().map_err(open_error)?.file_type();
        if file_type.is_fifo() {
            let receiver = tokio::net::unix::pipe::Receiver::from_file(file).map_err(open_error)?;
            return run(source, name, receiver, tx).await;
        }
        if file_type.is_file() {
            let mut feed = Feed::new(source, name, tx);
            feed.begin().await?;
            feed.pump(&mut tokio::fs::File::from_std(file), false)
                .await?;
            return feed.finish().await;
        }
    }
    run(source, name, tokio::io::stdin(), tx).await
}

/// Whether `first_bytes` (the start of a file, not necessarily whole values) look like a watch
/// stream rather than a manifest: the first JSON value is an object with both `"type"` and
/// `"object"` keys. When the bytes end before both keys are seen, a `"type"` holding one of the
/// five event types is enough: manifests never have one at the top level.
pub fn looks_like_watch_stream(first_bytes: &[u8]) -> bool {
    let bytes = first_bytes
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(first_bytes);
    let mut keys = TopKeys::default();
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    // An error only means the bytes ran out or the value is not an object: what was seen counts.
    let _ = (&mut keys).deserialize(&mut deserializer);
    (keys.event_type.is_some() && keys.object) || keys.event_type == Some(true)
}

/// The top-level keys of a value, as far as the bytes go.
#[derive(Default)]
struct TopKeys {
    /// `"type"` was seen; `true` when its value is one of the event types.
    event_type: Option<bool>,
    /// `"object"` was seen.
    object: bool,
}

impl<'de> DeserializeSeed<'de> for &mut TopKeys {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for &mut TopKeys {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a watch event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "type" => {
                    let value: Value = map.next_value()?;
                    self.event_type = Some(value.as_str().and_then(WatchType::parse).is_some());
                }
                "object" => {
                    self.object = true;
                    map.next_value::<IgnoredAny>()?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// The `type` of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WatchType {
    Added,
    Modified,
    Deleted,
    Bookmark,
    Error,
}

impl WatchType {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "ADDED" => Self::Added,
            "MODIFIED" => Self::Modified,
            "DELETED" => Self::Deleted,
            "BOOKMARK" => Self::Bookmark,
            "ERROR" => Self::Error,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
            Self::Bookmark => "BOOKMARK",
            Self::Error => "ERROR",
        }
    }
}

/// One stream being read: the decoder, the channel, and the events not yet sent.
struct Feed {
    source: SourceId,
    decoder: Decoder,
    tx: EventSender,
    out: Vec<Event>,
    /// Where reads land.
    chunk: Vec<u8>,
}

impl Feed {
    fn new(source: SourceId, name: Arc<str>, tx: EventSender) -> Self {
        Self {
            source,
            decoder: Decoder::new(name),
            tx,
            out: Vec::new(),
            chunk: vec![0; CHUNK],
        }
    }

    fn read_error(&self, source: io::Error) -> Error {
        Error::Read {
            name: self.decoder.name.clone(),
            source,
        }
    }

    /// Starts the initial list.
    async fn begin(&mut self) -> Result<()> {
        self.out.push(Event::Init);
        self.flush().await
    }

    /// Sends the events decoded so far.
    async fn flush(&mut self) -> Result<()> {
        for event in self.out.drain(..) {
            self.tx
                .send(SourceEvent {
                    source: self.source.clone(),
                    event,
                })
                .await
                .map_err(|_| Error::Closed)?;
        }
        Ok(())
    }

    /// Reads until the end of `reader`, decoding and sending as it goes; returns how many bytes
    /// were read. With `detect_idle`, the initial list ends when the reader is caught up.
    async fn pump<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        detect_idle: bool,
    ) -> Result<u64> {
        let mut total = 0;
        let mut ready = None;
        loop {
            let n = match ready.take() {
                Some(n) => n,
                None => reader
                    .read(&mut self.chunk)
                    .await
                    .map_err(|source| self.read_error(source))?,
            };
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
            self.decoder.push(&self.chunk[..n], &mut self.out);
            self.flush().await?;
            if detect_idle && self.decoder.listing {
                match read_now(reader, &mut self.chunk).await {
                    Some(result) => ready = Some(result.map_err(|source| self.read_error(source))?),
                    None => {
                        self.decoder.caught_up(&mut self.out);
                        self.flush().await?;
                    }
                }
            }
        }
    }

    /// The stream ended: reports a partial event, ends the list if it is still open.
    async fn finish(&mut self) -> Result<()> {
        self.decoder.finish(&mut self.out);
        self.flush().await
    }
}

/// Polls one read exactly once: `None` when it would block.
///
/// A `Pending` read has consumed nothing (the `AsyncRead` contract), so the next real read
/// picks up from the same place; the waker it registered is our own task's, so at worst it is
/// woken once for nothing.
async fn read_now<R: AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut [u8],
) -> Option<io::Result<usize>> {
    poll_fn(|cx| {
        let mut read_buf = ReadBuf::new(buffer);
        match Pin::new(&mut *reader).poll_read(cx, &mut read_buf) {
            Poll::Pending => Poll::Ready(None),
            Poll::Ready(result) => Poll::Ready(Some(result.map(|()| read_buf.filled().len()))),
        }
    })
    .await
}

/// Bytes → watch events → feed events, with no I/O: what is pushed is decoded at once and what
/// is incomplete waits in the buffer.
struct Decoder {
    /// The stream's name, for origins.
    name: Arc<str>,
    /// Bytes not consumed yet: the start of a partial value, or garbage being skipped.
    buffer: Vec<u8>,
    /// The 1-based line of `buffer[0]`.
    line: usize,
    /// The initial list is still open.
    listing: bool,
    /// After invalid JSON: bytes are skipped up to the next line that starts with `{`.
    resyncing: bool,
    /// Objects in the current initial list, for the log.
    listed: usize,
}

/// What one attempt to take a value from the buffer found.
enum Parsed {
    /// Nothing but whitespace.
    Nothing,
    /// A value, and how many bytes it took.
    Value(Value, usize),
    /// The value is not complete yet.
    Incomplete,
    /// Not valid JSON.
    Invalid(serde_json::Error),
}

impl Decoder {
    fn new(name: Arc<str>) -> Self {
        Self {
            name,
            buffer: Vec::new(),
            line: 1,
            listing: true,
            resyncing: false,
            listed: 0,
        }
    }

    fn origin(&self, line: usize) -> Origin {
        Origin {
            source: self.name.clone(),
            line: Some(line),
        }
    }

    /// Starts over from the first byte of a new stream, as a new list.
    fn restart(&mut self, out: &mut Vec<Event>) {
        *self = Self::new(self.name.clone());
        out.push(Event::Init);
    }

    /// Adds bytes and decodes every complete event they finish.
    fn push(&mut self, bytes: &[u8], out: &mut Vec<Event>) {
        let partial = !self.buffer.is_empty() && !self.resyncing;
        self.buffer.extend_from_slice(bytes);
        // Only a `}` can complete a partial event: without one, parsing it again from its start
        // would find it incomplete again (and a huge value would cost quadratic time).
        if partial && !bytes.contains(&b'}') && self.buffer.len() <= MAX_EVENT {
            return;
        }
        self.decode(out);
    }

    /// Decodes every complete value in the buffer, keeping the unconsumed rest.
    fn decode(&mut self, out: &mut Vec<Event>) {
        let mut pos = 0;
        loop {
            if self.resyncing {
                match next_value_line(&self.buffer[pos..]) {
                    Some(skip) => {
                        self.advance(&mut pos, skip);
                        self.resyncing = false;
                    }
                    None => {
                        // Keep a final newline: the next bytes may start with `{`.
                        let keep = usize::from(self.buffer.ends_with(b"\n"));
                        let skip = (self.buffer.len() - pos).saturating_sub(keep);
                        self.advance(&mut pos, skip);
                        break;
                    }
                }
            }
            let blank = self.buffer[pos..]
                .iter()
                .take_while(|b| b.is_ascii_whitespace())
                .count();
            self.advance(&mut pos, blank);
            let parsed = {
                let mut values =
                    serde_json::Deserializer::from_slice(&self.buffer[pos..]).into_iter::<Value>();
                match values.next() {
                    None => Parsed::Nothing,
                    Some(Ok(value)) => Parsed::Value(value, values.byte_offset()),
                    Some(Err(error)) if error.is_eof() => Parsed::Incomplete,
                    Some(Err(error)) => Parsed::Invalid(error),
                }
            };
            let line = self.line;
            match parsed {
                Parsed::Nothing => break,
                Parsed::Incomplete if self.buffer.len() - pos > MAX_EVENT => {
                    out.push(problem(
                        Severity::Error,
                        self.origin(line),
                        String::new(),
                        format!(
                            "a JSON value still incomplete after {} MiB is not an event; skipped \
                             to the next line that starts with '{{'",
                            MAX_EVENT / (1024 * 1024)
                        ),
                        None,
                    ));
                    self.resyncing = true;
                }
                Parsed::Incomplete => break,
                Parsed::Value(value, length) => {
                    self.advance(&mut pos, length);
                    self.event(value, line, out);
                }
                Parsed::Invalid(error) => {
                    out.push(self.invalid_json(line, &error));
                    // The skip starts at the bad value's first byte, so it lands on a later line.
                    self.resyncing = true;
                }
            }
        }
        self.buffer.drain(..pos);
    }

    /// Moves `pos` on by `n` bytes, counting lines.
    fn advance(&mut self, pos: &mut usize, n: usize) {
        let end = *pos + n;
        self.line += self.buffer[*pos..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        *pos = end;
    }

    fn invalid_json(&self, line: usize, error: &serde_json::Error) -> Event {
        let text = error.to_string();
        let suffix = format!(" at line {} column {}", error.line(), error.column());
        let message = text.strip_suffix(&suffix).unwrap_or(&text);
        problem(
            Severity::Error,
            self.origin(line),
            String::new(),
            format!(
                "invalid JSON ({message} at line {} column {}); skipped to the next line that \
                 starts with '{{'",
                line + error.line().saturating_sub(1),
                error.column()
            ),
            None,
        )
    }

    /// Ends the initial list, if it is still open.
    fn end_list(&mut self, reason: &'static str, out: &mut Vec<Event>) {
        if self.listing {
            self.listing = false;
            info!(objects = self.listed, reason, "initial list complete");
            out.push(Event::InitDone);
        }
    }

    /// The reader would block: the list is complete if no event is half read. (While invalid
    /// input is skipped, the buffer holds at most the newline the skip stopped at.)
    fn caught_up(&mut self, out: &mut Vec<Event>) {
        if self.buffer.iter().all(u8::is_ascii_whitespace) {
            self.end_list("caught up", out);
        }
    }

    /// The stream ended: whatever is left is a partial event.
    fn finish(&mut self, out: &mut Vec<Event>) {
        self.decode(out);
        while !self.buffer.is_empty() && !self.resyncing {
            let line = self.line;
            match next_value_line(&self.buffer) {
                // A truncated line followed by more events (JSON lines): skip just that line.
                Some(skip) => {
                    let mut pos = 0;
                    self.advance(&mut pos, skip);
                    out.push(problem(
                        Severity::Error,
                        self.origin(line),
                        String::new(),
                        format!(
                            "incomplete JSON value (cut off before line {}); skipped to the next \
                             line that starts with '{{'",
                            self.line
                        ),
                        None,
                    ));
                    self.buffer.drain(..pos);
                    self.decode(out);
                }
                None => {
                    out.push(problem(
                        Severity::Error,
                        self.origin(line),
                        String::new(),
                        "the stream ended in the middle of an event; the partial event is ignored"
                            .into(),
                        None,
                    ));
                    self.buffer.clear();
                }
            }
        }
        self.buffer.clear();
        self.end_list("end of stream", out);
    }

    /// One complete JSON value: a watch event, or a problem.
    fn event(&mut self, value: Value, line: usize, out: &mut Vec<Event>) {
        let origin = self.origin(line);
        let Value::Object(mut event) = value else {
            out.push(problem(
                Severity::Error,
                origin,
                String::new(),
                format!(
                    "expected a watch event {{\"type\": …, \"object\": {{…}}}}, found {}; skipped",
                    json_type(&value)
                ),
                None,
            ));
            return;
        };
        let object = event.remove("object");
        let object_name = object.as_ref().map(describe_document).unwrap_or_default();
        let type_text = match event.get("type") {
            Some(Value::String(text)) => text.as_str(),
            _ => {
                out.push(problem(
                    Severity::Error,
                    origin,
                    object_name,
                    "watch event without a \"type\" string; skipped".into(),
                    None,
                ));
                return;
            }
        };
        let Some(watch_type) = WatchType::parse(type_text) else {
            let message = format!(
                "unknown watch event type {type_text:?} (expected ADDED, MODIFIED, DELETED, \
                 BOOKMARK or ERROR); skipped"
            );
            out.push(problem(Severity::Error, origin, object_name, message, None));
            return;
        };
        let Some(object) = object else {
            out.push(problem(
                Severity::Error,
                origin,
                String::new(),
                format!("{} event without \"object\"; skipped", watch_type.as_str()),
                None,
            ));
            return;
        };
        match watch_type {
            WatchType::Added | WatchType::Modified => {
                if watch_type == WatchType::Modified {
                    self.end_list("watch began (MODIFIED)", out);
                }
                self.apply(watch_type, object, origin, out);
            }
            WatchType::Deleted => {
                self.end_list("watch began (DELETED)", out);
                self.delete(object, origin, out);
            }
            WatchType::Bookmark => {
                let marker = object
                    .pointer("/metadata/annotations")
                    .and_then(|a| a.get(INITIAL_EVENTS_END))
                    .and_then(Value::as_str);
                if marker == Some("true") {
                    self.end_list("initial-events-end bookmark", out);
                }
            }
            WatchType::Error => out.push(Event::Problem(watch_error(&object, origin))),
        }
    }

    /// ADDED or MODIFIED: the object, or a problem.
    fn apply(
        &mut self,
        watch_type: WatchType,
        object: Value,
        origin: Origin,
        out: &mut Vec<Event>,
    ) {
        let object_name = describe_document(&object);
        match self.convert(watch_type, object, &origin, out) {
            Ok(Some((object, deprecation))) => {
                if let Some(hint) = deprecation {
                    out.push(problem(
                        Severity::Warning,
                        origin.clone(),
                        object.describe(),
                        hint,
                        Some("set apiVersion: apps/v1".into()),
                    ));
                }
                debug!(%origin, object = %object.describe(), listing = self.listing, "object");
                if self.listing {
                    self.listed += 1;
                    out.push(Event::InitApply(object, origin));
                } else {
                    out.push(Event::Apply(object, origin));
                }
            }
            Ok(None) => {}
            Err(error) => out.push(conversion_problem(watch_type, &error, object_name, origin)),
        }
    }

    /// DELETED: the object's reference, or a problem.
    ///
    /// Only the kind, namespace and name matter, so an object whose other fields do not convert
    /// is still deleted: it may have been applied in a valid form before.
    fn delete(&mut self, object: Value, origin: Origin, out: &mut Vec<Event>) {
        let object_name = describe_document(&object);
        let reference = raw_reference(&object);
        match self.convert(WatchType::Deleted, object, &origin, out) {
            Ok(Some((object, _))) => out.push(Event::Delete(object.reference(), origin)),
            Ok(None) => {}
            Err(error) => match (&error, reference) {
                (ConvertError::Field { .. } | ConvertError::Invalid { .. }, Some(reference)) => {
                    debug!(%origin, %reference, %error, "deleted object does not convert; deleted by reference");
                    out.push(Event::Delete(reference, origin));
                }
                _ => out.push(conversion_problem(
                    WatchType::Deleted,
                    &error,
                    object_name,
                    origin,
                )),
            },
        }
    }

    /// Converts an event's object. Kinds DNS does not use give `Ok(None)` (with a warning when
    /// the kind is unknown to Kubernetes), and so does a List (with an error: an event carries
    /// one object). A deprecated apiVersion comes back with its hint.
    fn convert(
        &self,
        watch_type: WatchType,
        object: Value,
        origin: &Origin,
        out: &mut Vec<Event>,
    ) -> Result<Option<(Object, Option<String>)>, ConvertError> {
        let object_name = describe_document(&object);
        let list_kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("List")
            .to_owned();
        match convert_document(object)? {
            Document::Object(object) => Ok(Some((object, None))),
            Document::Deprecated(object, hint) => Ok(Some((object, Some(hint)))),
            Document::List(_) => {
                out.push(problem(
                    Severity::Error,
                    origin.clone(),
                    String::new(),
                    format!(
                        "{} event: a watch event carries one object, not a {list_kind}; skipped",
                        watch_type.as_str()
                    ),
                    Some("send each object in an event of its own".into()),
                ));
                Ok(None)
            }
            Document::Ignored {
                kind, known: true, ..
            } => {
                debug!(%origin, kind, "skipped an object of a kind DNS does not use");
                Ok(None)
            }
            Document::Ignored {
                kind, known: false, ..
            } => {
                let read = "stsdns reads Service, EndpointSlice, Pod and StatefulSet";
                let fix = match suggest_kind(&kind) {
                    Some(meant) => format!("set kind: {meant} ({read})"),
                    None => read.to_owned(),
                };
                out.push(problem(
                    Severity::Warning,
                    origin.clone(),
                    object_name,
                    format!(
                        "{} event: unknown kind {kind:?}; skipped",
                        watch_type.as_str()
                    ),
                    Some(fix),
                ));
                Ok(None)
            }
        }
    }
}

/// The offset just past the newline of the next line that starts with `{`, after the first byte.
fn next_value_line(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\n{").map(|i| i + 1)
}

fn problem(
    severity: Severity,
    origin: Origin,
    object: String,
    message: String,
    fix: Option<String>,
) -> Event {
    Event::Problem(Problem {
        severity,
        origin: Some(origin),
        object,
        message,
        fix,
    })
}

fn conversion_problem(
    watch_type: WatchType,
    error: &ConvertError,
    object: String,
    origin: Origin,
) -> Event {
    problem(
        Severity::Error,
        origin,
        object,
        format!("{} event: {error}; skipped", watch_type.as_str()),
        error.fix(),
    )
}

/// An ERROR event: usually a `Status` (410 `Expired` when the watch's resourceVersion is too old).
fn watch_error(object: &Value, origin: Origin) -> Problem {
    let code = object.get("code").and_then(Value::as_i64);
    let reason = object.get("reason").and_then(Value::as_str);
    let message = object.get("message").and_then(Value::as_str);
    let shown = if object.get("kind").and_then(Value::as_str) == Some("Status") {
        let mut shown = String::from("watch ERROR");
        if let Some(code) = code {
            shown.push_str(&format!(" {code}"));
        }
        if let Some(reason) = reason {
            shown.push_str(&format!(" {reason}"));
        }
        if let Some(message) = message {
            shown.push_str(&format!(": {message}"));
        }
        shown
    } else {
        let mut text = object.to_string();
        if text.len() > 200 {
            let mut end = 200;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
        format!("watch ERROR: {text}")
    };
    let fix = (code == Some(410)).then(|| {
        "the watch's resourceVersion is too old: start the watch again (it lists everything \
         anew)"
            .to_owned()
    });
    Problem {
        severity: Severity::Error,
        origin: Some(origin),
        object: String::new(),
        message: shown,
        fix,
    }
}

/// The reference of a raw object of a kind DNS reads, from its kind and metadata alone.
fn raw_reference(object: &Value) -> Option<ObjectRef> {
    let kind = match object.get("kind").and_then(Value::as_str)? {
        "Service" => Kind::Service,
        "EndpointSlice" => Kind::EndpointSlice,
        "Pod" => Kind::Pod,
        "StatefulSet" => Kind::StatefulSet,
        _ => return None,
    };
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty())?;
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    Some(ObjectRef {
        kind,
        key: ObjectKey {
            namespace: Namespace::new(namespace).ok()?,
            name: Arc::from(name),
        },
    })
}

/// What a JSON value is, for messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::io::Write;
    use std::task::Context;
    use tokio::sync::mpsc;

    use tokio::io::AsyncWriteExt;

    use super::*;

    const NAME: &str = "s.json";

    /// One line per event, with objects and origins shown, so sequences compare as text.
    fn show(event: &Event) -> String {
        match event {
            Event::Init => "Init".into(),
            Event::InitApply(object, origin) => {
                format!("InitApply {} @{origin}", object.describe())
            }
            Event::InitDone => "InitDone".into(),
            Event::Apply(object, origin) => format!("Apply {} @{origin}", object.describe()),
            Event::Delete(reference, origin) => format!("Delete {reference} @{origin}"),
            Event::Problem(problem) => format!("Problem {problem}"),
        }
    }

    fn pod(name: &str) -> String {
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"default"}}}}"#
        )
    }

    /// One JSON line: `{"type": …, "object": …}`.
    fn line(event_type: &str, object: &str) -> String {
        format!("{{\"type\":\"{event_type}\",\"object\":{object}}}\n")
    }

    fn marker() -> String {
        line(
            "BOOKMARK",
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"resourceVersion":"12","annotations":{"k8s.io/initial-events-end":"true"}}}"#,
        )
    }

    async fn drain(mut rx: mpsc::Receiver<SourceEvent>) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(event) = rx.recv().await {
            assert_eq!(event.source.as_str(), "stream:test");
            events.push(event.event);
        }
        events
    }

    /// Runs the feed over `reader` to its end and returns every event it sent.
    async fn events_of(reader: impl AsyncRead + Unpin) -> Vec<Event> {
        let (tx, rx) = mpsc::channel(1024);
        run(SourceId::new("stream:test"), Arc::from(NAME), reader, tx)
            .await
            .expect("a byte slice reads without error");
        drain(rx).await
    }

    async fn shown(input: &[u8]) -> Vec<String> {
        events_of(input).await.iter().map(show).collect()
    }

    /// A reader that plays a script: chunks of bytes, and points where it would block.
    struct Script(VecDeque<Step>);

    enum Step {
        Data(Vec<u8>),
        Block,
    }

    impl Script {
        fn new(steps: impl IntoIterator<Item = Step>) -> Self {
            Self(steps.into_iter().collect())
        }
    }

    impl AsyncRead for Script {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            match self.0.pop_front() {
                None => Poll::Ready(Ok(())),
                Some(Step::Data(data)) => {
                    buf.put_slice(&data);
                    Poll::Ready(Ok(()))
                }
                Some(Step::Block) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            }
        }
    }

    fn data(text: impl Into<String>) -> Step {
        Step::Data(text.into().into_bytes())
    }

    #[tokio::test]
    async fn kubectl_pretty_output_gives_one_event_per_value_with_its_line() {
        let text = include_str!("../../tests/fixtures/streams/web-scale-up.json");
        let events = events_of(text.as_bytes()).await;
        let shown: Vec<String> = events.iter().map(show).collect();
        assert_eq!(
            shown[..7],
            [
                "Init",
                "InitApply Service default/nginx @s.json:1",
                "InitApply StatefulSet default/web @s.json:45",
                "InitApply EndpointSlice default/nginx-x7k2p @s.json:110",
                "InitDone",
                "Apply StatefulSet default/web @s.json:150",
                "Apply Pod default/web-0 @s.json:215",
            ],
            "{shown:#?}"
        );
        assert!(
            !shown.iter().any(|s| s.starts_with("Problem")),
            "{shown:#?}"
        );
        // Every event starts on a line holding just `{`, and every such line starts an event.
        let starts: Vec<String> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| *l == "{")
            .map(|(i, _)| format!("@s.json:{}", i + 1))
            .collect();
        let origins: Vec<&str> = shown.iter().filter_map(|s| s.split(' ').nth(3)).collect();
        assert_eq!(origins, starts);
        // The last word on web-2: Running and Ready.
        let web_2 = events.iter().rev().find_map(|e| match e {
            Event::Apply(Object::Pod(p), _) if &*p.key.name == "web-2" => Some(p),
            _ => None,
        });
        let web_2 = web_2.expect("web-2 is applied");
        assert!(web_2.ready);
        assert_eq!(
            *web_2.ips,
            ["10.244.3.12".parse::<std::net::IpAddr>().expect("an IP")]
        );
    }

    #[tokio::test]
    async fn json_lines_with_the_initial_events_end_bookmark() {
        let text = include_str!("../../tests/fixtures/streams/web-scale-up-pods.jsonl");
        let shown = shown(text.as_bytes()).await;
        assert_eq!(
            shown[..6],
            [
                "Init",
                "InitApply Service default/nginx @s.json:1",
                "InitApply StatefulSet default/web @s.json:2",
                "InitDone",
                "Apply StatefulSet default/web @s.json:4",
                "Apply Pod default/web-0 @s.json:5",
            ],
            "{shown:#?}"
        );
        assert_eq!(shown.len(), 1 + 2 + 1 + 13, "{shown:#?}");
        assert!(
            !shown.iter().any(|s| s.starts_with("Problem")),
            "{shown:#?}"
        );
    }

    #[tokio::test]
    async fn the_marker_ends_the_list_and_later_added_objects_are_applied() {
        let other_bookmark = line(
            "BOOKMARK",
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"resourceVersion":"11"}}"#,
        );
        let input = [
            line("ADDED", &pod("a")),
            other_bookmark,
            line("ADDED", &pod("b")),
            marker(),
            line("ADDED", &pod("c")),
            marker(),
        ]
        .concat();
        assert_eq!(
            shown(input.as_bytes()).await,
            [
                "Init",
                "InitApply Pod default/a @s.json:1",
                "InitApply Pod default/b @s.json:3",
                "InitDone",
                "Apply Pod default/c @s.json:5",
            ]
        );
    }

    #[tokio::test]
    async fn without_a_marker_the_list_ends_when_the_next_read_would_block() {
        let reader = Script::new([
            data(line("ADDED", &pod("a")) + &line("ADDED", &pod("b"))),
            Step::Block,
            data(line("ADDED", &pod("c"))),
        ]);
        let shown: Vec<String> = events_of(reader).await.iter().map(show).collect();
        assert_eq!(
            shown,
            [
                "Init",
                "InitApply Pod default/a @s.json:1",
                "InitApply Pod default/b @s.json:2",
                "InitDone",
                "Apply Pod default/c @s.json:3",
            ]
        );
    }

    #[tokio::test]
    async fn reads_that_follow_at_once_belong_to_the_list() {
        let reader = Script::new([
            data(line("ADDED", &pod("a"))),
            data(line("ADDED", &pod("b"))),
            Step::Block,
            data(line("ADDED", &pod("c"))),
        ]);
        let shown: Vec<String> = events_of(reader).await.iter().map(show).collect();
        assert_eq!(
            shown,
            [
                "Init",
                "InitApply Pod default/a @s.json:1",
                "InitApply Pod default/b @s.json:2",
                "InitDone",
                "Apply Pod default/c @s.json:3",
            ]
        );
    }

    #[tokio::test]
    async fn a_skipped_bad_line_does_not_keep_the_list_open() {
        let reader = Script::new([
            data(line("ADDED", &pod("a")) + "garbage\n"),
            Step::Block,
            data(line("ADDED", &pod("b"))),
        ]);
        let shown: Vec<String> = events_of(reader).await.iter().map(show).collect();
        assert_eq!(
            shown,
            [
                "Init",
                "InitApply Pod default/a @s.json:1",
                "Problem error: s.json:2: invalid JSON (expected value at line 2 column 1); \
                 skipped to the next line that starts with '{'",
                "InitDone",
                "Apply Pod default/b @s.json:3",
            ]
        );
    }

    #[tokio::test]
    async fn a_half_read_event_keeps_the_list_open_until_it_is_complete() {
        let b = line("ADDED", &pod("b"));
        let (b1, b2) = b.split_at(20);
        let reader = Script::new([
            data(line("ADDED", &pod("a")) + b1),
            Step::Block,
            data(b2),
            Step::Block,
            data(line("ADDED", &pod("c"))),
        ]);
        let shown: Vec<String> = events_of(reader).await.iter().map(show).collect();
        assert_eq!(
            shown,
            [
                "Init",
                "InitApply Pod default/a @s.json:1",
                "InitApply Pod default/b @s.json:2",
                "InitDone",
                "Apply Pod default/c @s.json:3",
            ]
        );
    }

    #[tokio::test]
    async fn without_a_marker_the_end_of_the_stream_ends_the_list() {
        let input = line("ADDED", &pod("a")) + &line("ADDED", &pod("b"));
        assert_eq!(
            shown(input.as_bytes()).await,
            [
                "Init",
                "InitApply Pod default/a @s.json:1",
                "InitApply Pod default/b @s.json:2",
                "InitDone",
            ]
        );
        assert_eq!(shown(b"").await, ["Init", "InitDone"]);
    }

    #[tokio::test]
    async fn a_change_ends_the_list_before_it_is_applied() {
        let input = [
            line("ADDED", &pod("a")),
            line("MODIFIED", &pod("a")),
            line("ADDED", &pod("b")),
        ]
        .concat();
        assert_eq!(
            shown(input.as_bytes()).await,
            [
                "Init",
                "InitApply Pod default/a @s.json:1",
                "InitDone",
                "Apply Pod default/a @s.json:2",
                "Apply Pod default/b @s.json:3",
            ]
        );
        let input = line("ADDED", &pod("a")) + &line("DELETED", &pod("a"));
        assert_eq!(
            shown(input.as_bytes()).await,
            [
                "Init",
                "InitApply Pod default/a @s.json:1",
                "InitDone",
                "Delete Pod default/a @s.json:2",
            ]
        );
    }

    #[tokio::test]
    async fn a_pipe_written_in_pieces_split_inside_a_value() {
        let (mut writer, reader) = tokio::io::duplex(4096);
        let (tx, mut rx) = mpsc::channel(16);
        let feed = tokio::spawn(run(
            SourceId::new("stream:test"),
            Arc::from(NAME),
            reader,
            tx,
        ));
        let recv = async |rx: &mut mpsc::Receiver<SourceEvent>| {
            let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("an event within 10 s")
                .expect("the feed is running");
            show(&event.event)
        };

        let pretty = |name: &str| {
            let value: Value = serde_json::from_str(&line("ADDED", &pod(name))).expect("JSON");
            serde_json::to_string_pretty(&value).expect("JSON") + "\n"
        };
        let a = pretty("a");
        let b = pretty("b");
        let (b1, b2) = b.split_at(b.len() / 2);
        writer
            .write_all((a.clone() + b1).as_bytes())
            .await
            .expect("write");
        assert_eq!(recv(&mut rx).await, "Init");
        assert_eq!(recv(&mut rx).await, "InitApply Pod default/a @s.json:1");
        writer.write_all(b2.as_bytes()).await.expect("write");
        let b_line = a.lines().count() + 1;
        assert_eq!(
            recv(&mut rx).await,
            format!("InitApply Pod default/b @s.json:{b_line}")
        );
        assert_eq!(recv(&mut rx).await, "InitDone");
        writer
            .write_all(pretty("c").as_bytes())
            .await
            .expect("write");
        let c_line = b_line + b.lines().count();
        assert_eq!(
            recv(&mut rx).await,
            format!("Apply Pod default/c @s.json:{c_line}")
        );
        drop(writer);
        feed.await
            .expect("the feed task")
            .expect("the feed ends cleanly");
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn bad_input_is_reported_and_the_stream_goes_on() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a""#,
                "error: s.json:1: invalid JSON (expected `,` or `}` at line 2 column 1); skipped to \
                 the next line that starts with '{'",
            ),
            (
                r#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"#,
                "error: s.json:1: invalid JSON (control character (\\u0000-\\u001F) found while \
                 parsing a string at line 2 column 0); skipped to the next line that starts with '{'",
            ),
            (
                r#"{"type":"UPDATED","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"}}}"#,
                "error: s.json:1: Pod default/a: unknown watch event type \"UPDATED\" (expected \
                 ADDED, MODIFIED, DELETED, BOOKMARK or ERROR); skipped",
            ),
            (
                r#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"Pood","metadata":{"name":"a"}}}"#,
                "warning: s.json:1: Pood default/a: ADDED event: unknown kind \"Pood\"; skipped; \
                 fix: set kind: Pod (stsdns reads Service, EndpointSlice, Pod and StatefulSet)",
            ),
            (
                r#"{"type":"ADDED","object":{"apiVersion":"apps/v2","kind":"StatefulSet","metadata":{"name":"web","namespace":"prod"}}}"#,
                "error: s.json:1: ADDED event: StatefulSet prod/web: apiVersion \"apps/v2\" is not \
                 supported (use apps/v1); skipped; fix: set apiVersion: apps/v1",
            ),
            (
                r#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"Pod","metadata":{"namespace":"default"}}}"#,
                "error: s.json:1: ADDED event: Pod without metadata.name; skipped; fix: set \
                 metadata.name",
            ),
            (
                r#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"Service","metadata":{"name":"nginx"},"spec":{"ports":[{"port":"eighty"}]}}}"#,
                "error: s.json:1: ADDED event: Service default/nginx: field spec.ports[0].port: \
                 invalid type: string \"eighty\", expected i32; skipped; fix: give \
                 spec.ports[0].port the type the Kubernetes API defines (`kubectl explain \
                 service.spec.ports.port` shows it)",
            ),
            (
                r#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"List","items":[]}}"#,
                "error: s.json:1: ADDED event: a watch event carries one object, not a List; \
                 skipped; fix: send each object in an event of its own",
            ),
            (
                r#"[{"type":"ADDED"}]"#,
                "error: s.json:1: expected a watch event {\"type\": …, \"object\": {…}}, found an \
                 array; skipped",
            ),
            (
                r#"{"object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"}}}"#,
                "error: s.json:1: Pod default/a: watch event without a \"type\" string; skipped",
            ),
            (
                r#"{"type":"ADDED"}"#,
                "error: s.json:1: ADDED event without \"object\"; skipped",
            ),
        ];
        for (bad, expected) in cases {
            let input = format!("{bad}\n{}", line("ADDED", &pod("b")));
            assert_eq!(
                shown(input.as_bytes()).await,
                [
                    "Init".to_owned(),
                    format!("Problem {expected}"),
                    "InitApply Pod default/b @s.json:2".to_owned(),
                    "InitDone".to_owned(),
                ],
                "input: {bad}"
            );
        }
    }

    #[tokio::test]
    async fn invalid_json_in_pretty_output_skips_to_the_next_event() {
        let input = "{\n    \"type\": \"ADDED\",\n    \"object\": {\n        \"kind\": Pod\n    }\n}\n{\n    \"type\": \"ADDED\",\n    \"object\": {\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"b\"}}\n}\n";
        assert_eq!(
            shown(input.as_bytes()).await,
            [
                "Init",
                "Problem error: s.json:1: invalid JSON (expected value at line 4 column 17); \
                 skipped to the next line that starts with '{'",
                "InitApply Pod default/b @s.json:7",
                "InitDone",
            ]
        );
    }

    #[tokio::test]
    async fn a_truncated_line_whose_rest_swallows_the_next_line_is_found_at_the_end() {
        let input = format!(
            "{}\n{}",
            r#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"Pod","metadata":"#,
            line("ADDED", &pod("b"))
        );
        assert_eq!(
            shown(input.as_bytes()).await,
            [
                "Init",
                "Problem error: s.json:1: incomplete JSON value (cut off before line 2); skipped \
                 to the next line that starts with '{'",
                "InitApply Pod default/b @s.json:2",
                "InitDone",
            ]
        );
    }

    #[tokio::test]
    async fn an_error_event_is_reported_and_the_watch_goes_on() {
        let status = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 5 (10)","reason":"Expired","code":410}"#;
        let input = [
            line("ADDED", &pod("a")),
            line("ERROR", status),
            line("MODIFIED", &pod("a")),
        ]
        .concat();
        assert_eq!(
            shown(input.as_bytes()).await,
            [
                "Init",
                "InitApply Pod default/a @s.json:1",
                "Problem error: s.json:2: watch ERROR 410 Expired: too old resource version: 5 \
                 (10); fix: the watch's resourceVersion is too old: start the watch again (it \
                 lists everything anew)",
                "InitDone",
                "Apply Pod default/a @s.json:3",
            ]
        );
    }

    #[tokio::test]
    async fn a_value_that_never_ends_is_dropped_past_the_size_limit() {
        let mut input = br#"{"type":"ADDED","object":{"kind":"Pod","metadata":{"name":""#.to_vec();
        input.resize(input.len() + MAX_EVENT + 2 * CHUNK, b'a');
        input.extend_from_slice(format!("\n{}", line("ADDED", &pod("b"))).as_bytes());
        assert_eq!(
            shown(&input).await,
            [
                "Init",
                "Problem error: s.json:1: a JSON value still incomplete after 16 MiB is not an \
                 event; skipped to the next line that starts with '{'",
                "InitApply Pod default/b @s.json:2",
                "InitDone",
            ]
        );
    }

    #[tokio::test]
    async fn a_stream_closed_in_the_middle_of_an_object() {
        let b = line("ADDED", &pod("b"));
        let input = line("ADDED", &pod("a")) + &b[..b.len() / 2];
        assert_eq!(
            shown(input.as_bytes()).await,
            [
                "Init",
                "InitApply Pod default/a @s.json:1",
                "Problem error: s.json:2: the stream ended in the middle of an event; the partial \
                 event is ignored",
                "InitDone",
            ]
        );
        // After the list, the state already sent stays: only the problem is added.
        let input = [line("ADDED", &pod("a")), marker(), b[..10].to_owned()].concat();
        assert_eq!(
            shown(input.as_bytes()).await,
            [
                "Init",
                "InitApply Pod default/a @s.json:1",
                "InitDone",
                "Problem error: s.json:3: the stream ended in the middle of an event; the partial \
                 event is ignored",
            ]
        );
    }

    #[tokio::test]
    async fn deleted_sends_the_reference_even_for_objects_never_seen_or_not_convertible() {
        let bad_pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"c","namespace":"prod"},"status":{"podIP":"not-an-ip"}}"#;
        let service = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"nginx"},"spec":{"clusterIP":"None"}}"#;
        let input = [
            marker(),
            line("DELETED", &pod("never-seen")),
            line("DELETED", bad_pod),
            line("DELETED", service),
            line(
                "DELETED",
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#,
            ),
            line(
                "DELETED",
                r#"{"apiVersion":"v1","kind":"Pod","metadata":{}}"#,
            ),
        ]
        .concat();
        assert_eq!(
            shown(input.as_bytes()).await,
            [
                "Init",
                "InitDone",
                "Delete Pod default/never-seen @s.json:2",
                "Delete Pod prod/c @s.json:3",
                "Delete Service default/nginx @s.json:4",
                "Problem error: s.json:6: DELETED event: Pod without metadata.name; skipped; fix: \
                 set metadata.name",
            ]
        );
    }

    #[test]
    fn watch_streams_are_told_from_manifests() {
        let pretty = include_str!("../../tests/fixtures/streams/web-scale-up.json");
        let lines = include_str!("../../tests/fixtures/streams/web-scale-up-pods.jsonl");
        assert!(looks_like_watch_stream(pretty.as_bytes()));
        assert!(looks_like_watch_stream(&pretty.as_bytes()[..100]));
        assert!(looks_like_watch_stream(lines.as_bytes()));
        assert!(looks_like_watch_stream(&lines.as_bytes()[..40]));
        assert!(looks_like_watch_stream(
            br#"{"object": {"kind": "Pod"}, "type": "FOO"}"#
        ));
        assert!(!looks_like_watch_stream(
            br#"{"apiVersion": "v1", "kind": "List", "items": []}"#
        ));
        assert!(!looks_like_watch_stream(
            br#"{"apiVersion": "v1", "kind": "Secret", "type": "Opaque""#
        ));
        assert!(!looks_like_watch_stream(b"apiVersion: v1\nkind: Service\n"));
        assert!(!looks_like_watch_stream(b"---\ntype: ADDED\nobject: {}\n"));
        assert!(!looks_like_watch_stream(b""));
        assert!(!looks_like_watch_stream(
            br#"[{"type": "ADDED", "object": {}}]"#
        ));
    }

    async fn next(rx: &mut mpsc::Receiver<SourceEvent>) -> String {
        let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("an event within 10 s")
            .expect("the feed is running");
        show(&event.event)
    }

    #[tokio::test]
    async fn follow_file_reads_appends() {
        let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
        file.write_all(line("ADDED", &pod("a")).as_bytes())
            .expect("write");
        file.flush().expect("flush");
        let path = file.path().to_owned();
        let name = path.display().to_string();
        let (tx, mut rx) = mpsc::channel(16);
        let feed = tokio::spawn({
            let path = path.clone();
            async move { follow_file(&path, SourceId::new("stream:test"), tx).await }
        });
        assert_eq!(next(&mut rx).await, "Init");
        assert_eq!(
            next(&mut rx).await,
            format!("InitApply Pod default/a @{name}:1")
        );
        assert_eq!(next(&mut rx).await, "InitDone");

        // An append in two writes, split inside the value.
        let b = line("MODIFIED", &pod("b"));
        file.write_all(&b.as_bytes()[..15]).expect("write");
        file.flush().expect("flush");
        file.write_all(&b.as_bytes()[15..]).expect("write");
        file.flush().expect("flush");
        assert_eq!(
            next(&mut rx).await,
            format!("Apply Pod default/b @{name}:2")
        );

        // Truncated and written again (`kubectl … > file` restarted): a new list.
        let mut again = std::fs::File::create(&path).expect("truncate");
        again
            .write_all(line("ADDED", &pod("c")).as_bytes())
            .expect("write");
        again.flush().expect("flush");
        assert_eq!(next(&mut rx).await, "Init");
        assert_eq!(
            next(&mut rx).await,
            format!("InitApply Pod default/c @{name}:1")
        );
        assert_eq!(next(&mut rx).await, "InitDone");

        feed.abort();
    }

    #[tokio::test]
    async fn follow_file_ends_when_nobody_listens() {
        let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
        file.write_all(line("ADDED", &pod("a")).as_bytes())
            .expect("write");
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let result = follow_file(file.path(), SourceId::new("stream:test"), tx).await;
        assert!(matches!(result, Err(Error::Closed)), "{result:?}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn follow_path_reads_a_fifo_until_its_writer_closes_it() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let fifo = dir.path().join("events");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        let name = fifo.display().to_string();
        let (tx, mut rx) = mpsc::channel(16);
        let feed = tokio::spawn({
            let fifo = fifo.clone();
            async move { follow_path(&fifo, SourceId::new("stream:test"), tx).await }
        });
        assert_eq!(next(&mut rx).await, "Init");
        // Opening for writing blocks until the feed has the FIFO open for reading.
        let mut writer = tokio::task::spawn_blocking({
            let fifo = fifo.clone();
            move || std::fs::OpenOptions::new().write(true).open(fifo)
        })
        .await
        .expect("the open task")
        .expect("the FIFO opens for writing");
        writer
            .write_all(line("ADDED", &pod("a")).as_bytes())
            .expect("write");
        assert_eq!(
            next(&mut rx).await,
            format!("InitApply Pod default/a @{name}:1")
        );
        assert_eq!(next(&mut rx).await, "InitDone");
        writer
            .write_all(line("ADDED", &pod("b")).as_bytes())
            .expect("write");
        assert_eq!(
            next(&mut rx).await,
            format!("Apply Pod default/b @{name}:2")
        );
        drop(writer);
        let ended = tokio::time::timeout(Duration::from_secs(10), feed)
            .await
            .expect("the feed ends within 10 s");
        ended
            .expect("the feed task")
            .expect("the feed ends cleanly");
    }
}
