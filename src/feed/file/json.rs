//! JSON manifests: what `kubectl get -o json` prints, for a whole cluster one List of every
//! object (350 MB at 100k pods).
//!
//! No value tree is built. Each item of a List is taken as text ([`RawValue`]) and converted
//! straight into its `k8s-openapi` type ([`convert_json`]); the other fields of a top-level
//! mapping are kept as text until its `kind` says whether it is a list (kubectl prints `items`
//! before `kind`).
//!
//! Two readers share that: [`parse_text`] reads text already in memory with one
//! `serde_json` stream and is the reference for every message. [`parse_file`] reads a file a
//! chunk at a time, so the file is never in memory whole, and converts the items on worker
//! threads while it reads on. With one core (or for a file's first items) it converts each item
//! on the spot, as it parses it ([`Streamed`]): one pass over the item's text instead of two
//! (the load of 100k Pods from 1.52–1.67 s to 1.19–1.21 s, with the checking of UTF-8 once per
//! chunk, `tests/bench/README.md`). It only walks the punctuation between values itself
//! (every value is parsed by `serde_json`), and on anything but well-formed JSON it starts the
//! file over with [`parse_text`], so a broken file reports exactly what the text reader reports.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{error_problem, record, record_item};
use crate::feed::Loaded;
use crate::model::Origin;
use crate::model::convert::{ConvertError, Document, Streamed, convert_json, is_list};

/// What one document or item converted to.
type Converted = Result<Document, ConvertError>;

/// Parses JSON values, one after another (a `kind: List`, or concatenated objects), each with
/// the line it starts on. A syntax error stops the file there: JSON has no document markers to
/// resynchronise at. The items of a List share its line: finding each item's would cost a pass
/// over the text.
pub(super) fn parse_text(loaded: &mut Loaded, source: &Arc<str>, text: &str) {
    let mut documents = serde_json::Deserializer::from_str(text).into_iter::<TextDocument>();
    let mut lines = LineCounter::default();
    let mut document = 0;
    loop {
        // Where the next value starts: past the whitespace after the previous one.
        let consumed = documents.byte_offset();
        let start = consumed + text[consumed..].len() - text[consumed..].trim_start().len();
        match documents.next() {
            None => break,
            Some(Ok(TextDocument(value))) => {
                document += 1;
                let origin = Origin {
                    source: source.clone(),
                    line: Some(lines.line_of(text, start)),
                };
                match value {
                    JsonDocument::One(converted) => {
                        record(loaded, converted, origin, document, None);
                    }
                    JsonDocument::List(Err(err)) => {
                        record(loaded, Err(err), origin, document, None);
                    }
                    JsonDocument::List(Ok(items)) => {
                        for (i, item) in items.into_iter().enumerate() {
                            record_item(loaded, item, origin.clone(), document, i);
                        }
                    }
                }
            }
            Some(Err(err)) => {
                loaded.problems.push(error_problem(
                    Origin {
                        source: source.clone(),
                        line: Some(err.line()),
                    },
                    String::new(),
                    format!(
                        "document {}: JSON syntax error at column {}: {err}; the rest of the \
                         file is skipped",
                        document + 1,
                        err.column()
                    ),
                    Some("fix the JSON (kubectl get -o json prints it valid)".into()),
                ));
                break;
            }
        }
    }
}

/// The line of byte offsets of a text, asked in increasing order: counts each newline once.
#[derive(Default)]
struct LineCounter {
    /// Bytes counted so far.
    offset: usize,
    /// Newlines in them.
    newlines: usize,
}

impl LineCounter {
    /// The 1-based line of `offset` (at or after the last one asked).
    fn line_of(&mut self, text: &str, offset: usize) -> usize {
        let offset = offset.min(text.len());
        if offset >= self.offset {
            self.newlines += newlines(&text.as_bytes()[self.offset..offset]);
            self.offset = offset;
        }
        1 + self.newlines
    }
}

fn newlines(bytes: &[u8]) -> usize {
    // Counted in bytes, 255 at a time: what vectorizes well.
    bytes
        .chunks(255)
        .map(|chunk| usize::from(chunk.iter().fold(0u8, |n, b| n + u8::from(*b == b'\n'))))
        .sum()
}

/// One top-level JSON value, converted while it is read; `T` holds a List's converted items.
enum JsonDocument<T> {
    /// Anything but a list: the document converted.
    One(Converted),
    /// A list: its items (or why `items` is no list).
    List(Result<T, ConvertError>),
}

/// The `items` field of a top-level mapping, before its `kind` says whether it is a List.
enum Items<T> {
    /// An array: its items converted (wasted if the kind turns out not to be a list).
    Array(T),
    /// `null`: a list without items.
    Null,
    /// Anything else.
    Other,
}

/// Settles a top-level mapping once it is read: a List (by its last `kind`, as in a value) gives
/// its items; anything else is put back together without `items` (no kind we read has such a
/// field) and converted as one object.
fn finish<T: Default>(
    fields: Vec<(String, Box<RawValue>)>,
    items: Option<Items<T>>,
) -> JsonDocument<T> {
    let kind = fields
        .iter()
        .rev()
        .find(|(key, _)| key == "kind")
        .and_then(|(_, raw)| serde_json::from_str::<String>(raw.get()).ok());
    if let Some(kind) = kind.filter(|kind| is_list(kind, items.is_some())) {
        return JsonDocument::List(match items {
            Some(Items::Array(items)) => Ok(items),
            Some(Items::Null) | None => Ok(T::default()),
            Some(Items::Other) => Err(ConvertError::items_not_a_list(kind)),
        });
    }
    let mut text = String::from("{");
    for (i, (key, raw)) in fields.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&Value::from(key.as_str()).to_string());
        text.push(':');
        text.push_str(raw.get());
    }
    text.push('}');
    JsonDocument::One(convert_json(&text))
}

/// A document of [`parse_text`]: a List's items converted in order.
struct TextDocument(JsonDocument<Vec<Converted>>);

impl<'de> serde::Deserialize<'de> for TextDocument {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(DocumentVisitor)
            .map(TextDocument)
    }
}

struct DocumentVisitor;

type TextValue = JsonDocument<Vec<Converted>>;

fn not_an_object<E>() -> Result<TextValue, E> {
    Ok(JsonDocument::One(Err(ConvertError::NotAnObject)))
}

impl<'de> Visitor<'de> for DocumentVisitor {
    type Value = TextValue;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a Kubernetes object or list")
    }

    fn visit_bool<E>(self, _: bool) -> Result<TextValue, E> {
        not_an_object()
    }
    fn visit_i64<E>(self, _: i64) -> Result<TextValue, E> {
        not_an_object()
    }
    fn visit_u64<E>(self, _: u64) -> Result<TextValue, E> {
        not_an_object()
    }
    fn visit_f64<E>(self, _: f64) -> Result<TextValue, E> {
        not_an_object()
    }
    fn visit_str<E>(self, _: &str) -> Result<TextValue, E> {
        not_an_object()
    }
    fn visit_unit<E>(self) -> Result<TextValue, E> {
        not_an_object()
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TextValue, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        not_an_object()
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TextValue, A::Error> {
        let mut fields = Vec::new();
        let mut items = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "items" {
                items = Some(map.next_value_seed(ItemsSeed)?);
            } else {
                fields.push((key, map.next_value()?));
            }
        }
        Ok(finish(fields, items))
    }
}

/// Reads the `items` of a top-level mapping, converting each item as it is read.
struct ItemsSeed;

impl<'de> DeserializeSeed<'de> for ItemsSeed {
    type Value = Items<Vec<Converted>>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed {
    type Value = Items<Vec<Converted>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of Kubernetes objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<&RawValue>()? {
            items.push(convert_json(item.get()));
        }
        Ok(Items::Array(items))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Items::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Items::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Items::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Items::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Items::Other)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Items::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Items::Other)
    }
}

/// How much of a file is read at a time; the text grows to hold a larger value.
const CHUNK: usize = 1 << 20;
/// Items handed to a conversion thread at a time.
const BATCH: usize = 256;
/// Items of a file converted on the reading thread before conversion threads are started: a
/// small cluster loads in a few tens of milliseconds alone, and each thread costs memory (the
/// allocator keeps a heap per thread).
const ALONE: usize = 10_000;
/// At most this many conversion threads.
const MAX_WORKERS: usize = 8;

/// A manifest file being read a chunk at a time, as text: each chunk is checked to be UTF-8
/// once, as it is read, so that `serde_json` reads from a `str` and does not check every string
/// again (a tenth of a 100k-Pod load).
pub(super) struct Input<R = std::fs::File> {
    reader: R,
    /// `text[start..]` is read and not yet parsed.
    text: String,
    start: usize,
    /// Bytes of a chunk, as read.
    chunk: Vec<u8>,
    /// The first bytes of a character the last chunk cut in two.
    cut: Vec<u8>,
    /// The reader has nothing more.
    eof: bool,
    /// Newlines before `start`.
    newlines: usize,
}

impl Input {
    /// Opens a file.
    pub(super) fn open(path: &Path) -> io::Result<Self> {
        Ok(Self::new(std::fs::File::open(path)?, CHUNK))
    }
}

/// What reading a file that is not UTF-8 gives (as `read_to_string` gives it).
fn not_utf8() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "stream did not contain valid UTF-8",
    )
}

impl<R: Read> Input<R> {
    fn new(reader: R, chunk: usize) -> Self {
        Self {
            reader,
            text: String::new(),
            start: 0,
            chunk: vec![0; chunk.max(1)],
            cut: Vec::new(),
            eof: false,
            newlines: 0,
        }
    }

    fn rest(&self) -> &str {
        &self.text[self.start..]
    }

    /// Whether the file starts (after whitespace) with a JSON mapping, as `kubectl get -o json`
    /// prints. Reads nothing away: a file that does not stays whole for [`Self::into_string`].
    pub(super) fn starts_json(&mut self) -> io::Result<bool> {
        let mut at = self.start;
        loop {
            match self.text[at..].find(|c| !matches!(c, ' ' | '\t' | '\r' | '\n')) {
                Some(i) => return Ok(self.text[at + i..].starts_with('{')),
                None => at = self.text.len(),
            }
            if !self.fill()? {
                return Ok(false);
            }
        }
    }

    /// The whole file as text (an error if it is not UTF-8, as `read_to_string` gives).
    pub(super) fn into_string(mut self) -> io::Result<String> {
        let mut bytes = std::mem::take(&mut self.text).into_bytes();
        bytes.drain(..self.start);
        bytes.append(&mut self.cut);
        self.reader.read_to_end(&mut bytes)?;
        String::from_utf8(bytes).map_err(|_| not_utf8())
    }

    /// Reads another chunk onto the text, after dropping what is parsed. False at the end of
    /// the file; an error if the file is not UTF-8.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        self.text.drain(..self.start);
        self.start = 0;
        let read = loop {
            match self.reader.read(&mut self.chunk) {
                Ok(n) => break n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        };
        if read == 0 {
            self.eof = true;
            return if self.cut.is_empty() {
                Ok(false)
            } else {
                Err(not_utf8())
            };
        }
        let mut bytes = &self.chunk[..read];
        let joined;
        if !self.cut.is_empty() {
            self.cut.extend_from_slice(bytes);
            joined = std::mem::take(&mut self.cut);
            bytes = &joined;
        }
        let whole = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            // A character cut by the chunk's end: kept for the next.
            Err(err) if err.error_len().is_none() => {
                let (whole, cut) = bytes.split_at(err.valid_up_to());
                self.cut = cut.to_vec();
                std::str::from_utf8(whole).map_err(|_| not_utf8())?
            }
            Err(_) => return Err(not_utf8()),
        };
        self.text.push_str(whole);
        Ok(true)
    }

    fn consume(&mut self, n: usize) {
        self.newlines += newlines(&self.text.as_bytes()[self.start..self.start + n]);
        self.start += n;
    }

    /// The next byte that is not whitespace (skipping to it); `None` at the end of the file.
    fn peek(&mut self) -> io::Result<Option<u8>> {
        loop {
            while let Some(&b) = self.text.as_bytes().get(self.start) {
                match b {
                    b' ' | b'\t' | b'\r' => self.start += 1,
                    b'\n' => {
                        self.newlines += 1;
                        self.start += 1;
                    }
                    _ => return Ok(Some(b)),
                }
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Skips the punctuation `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> io::Result<bool> {
        let next = self.peek()? == Some(byte);
        if next {
            self.consume(1);
        }
        Ok(next)
    }

    /// Converts the item that comes next straight from the text ([`Streamed`]: one pass over
    /// it); `None`, with nothing read away, when that cannot, and [`Self::value`] is to read it.
    fn item(&mut self) -> io::Result<Option<Converted>> {
        loop {
            let mut values =
                serde_json::Deserializer::from_str(self.rest()).into_iter::<Streamed>();
            match values.next() {
                Some(Ok(Streamed(converted))) => {
                    let used = values.byte_offset();
                    self.consume(used);
                    return Ok(Some(converted));
                }
                // The item goes on in the next chunk: read it again from its start.
                Some(Err(err)) if err.is_eof() => {
                    if !self.fill()? {
                        return Ok(None);
                    }
                }
                _ => return Ok(None),
            }
        }
    }

    /// Parses the JSON value that comes next and gives `read` its text; `None` if it is not
    /// valid JSON (or the file ends inside it).
    fn value<T>(&mut self, mut read: impl FnMut(&RawValue) -> T) -> io::Result<Option<T>> {
        loop {
            let rest = self.rest();
            let mut values = serde_json::Deserializer::from_str(rest).into_iter::<&RawValue>();
            let more = match values.next() {
                // A value that ends with the text may go on (a number) in the next chunk.
                Some(Ok(raw)) if values.byte_offset() < rest.len() || self.eof => {
                    let used = values.byte_offset();
                    let out = read(raw);
                    self.consume(used);
                    return Ok(Some(out));
                }
                Some(Ok(_)) => true,
                Some(Err(err)) => err.is_eof(),
                None => true,
            };
            if !more || !self.fill()? {
                return Ok(None);
            }
        }
    }
}

/// Reads a JSON file with [`Input`], falling back to [`parse_text`] (on the whole file, read
/// again from `path`) when it is not well-formed JSON. Problems and objects come out as
/// [`parse_text`] gives them.
pub(super) fn parse_file(
    loaded: &mut Loaded,
    source: &Arc<str>,
    input: Input,
    path: &Path,
) -> io::Result<()> {
    let workers = std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(MAX_WORKERS);
    let mark = Mark::of(loaded);
    if !read_chunks(input, loaded, source, (workers, ALONE))? {
        mark.truncate(loaded);
        let text = std::fs::read_to_string(path)?;
        parse_text(loaded, source, &text);
    }
    Ok(())
}

/// How far `loaded` went, to take back what a document or file added.
#[derive(Clone, Copy)]
struct Mark {
    objects: usize,
    problems: usize,
}

impl Mark {
    fn of(loaded: &Loaded) -> Self {
        Self {
            objects: loaded.objects.len(),
            problems: loaded.problems.len(),
        }
    }

    fn truncate(self, loaded: &mut Loaded) {
        loaded.objects.truncate(self.objects);
        loaded.problems.truncate(self.problems);
    }
}

/// Reads every top-level mapping of `input` into `loaded`. List items are converted on
/// `workers.0` threads once `workers.1` ([`ALONE`]) have been converted here. False, with
/// `loaded` half done, when the file is not well-formed JSON.
///
/// The items of a List are added as they are converted, before its `kind` is read (kubectl
/// prints `items` first), so that the converted items are never held apart from `loaded`; a
/// mapping that turns out not to be a List takes them back.
fn read_chunks<R: Read>(
    mut input: Input<R>,
    loaded: &mut Loaded,
    source: &Arc<str>,
    workers: (usize, usize),
) -> io::Result<bool> {
    std::thread::scope(|scope| {
        let mut items = ItemSink::new(scope, loaded, source, workers);
        loop {
            let line = match input.peek()? {
                None => return Ok(true),
                Some(b'{') => input.newlines + 1,
                Some(_) => return Ok(false),
            };
            input.consume(1);
            items.start_document(line);
            if !read_mapping(&mut input, &mut items)? {
                return Ok(false);
            }
        }
    })
}

/// Reads a top-level mapping after its `{`: `items` streamed to `sink`, the other fields kept
/// as text; then settles it. False if it is not well-formed.
fn read_mapping<R: Read>(
    input: &mut Input<R>,
    sink: &mut ItemSink<'_, '_, '_>,
) -> io::Result<bool> {
    let mut fields = Vec::new();
    let mut items = None;
    if !input.eat(b'}')? {
        loop {
            if input.peek()? != Some(b'"') {
                return Ok(false);
            }
            let Some(Ok(key)) = input.value(|raw| serde_json::from_str::<String>(raw.get()))?
            else {
                return Ok(false);
            };
            if !input.eat(b':')? {
                return Ok(false);
            }
            if key == "items" {
                // A later `items` replaces an earlier one, as in a value.
                sink.take_back();
                if input.eat(b'[')? {
                    if !read_items(input, sink)? {
                        return Ok(false);
                    }
                    items = Some(Items::Array(()));
                } else {
                    let Some(null) = input.value(|raw| raw.get() == "null")? else {
                        return Ok(false);
                    };
                    items = Some(if null { Items::Null } else { Items::Other });
                }
            } else {
                let Some(raw) = input.value(RawValue::to_owned)? else {
                    return Ok(false);
                };
                fields.push((key, raw));
            }
            if input.eat(b'}')? {
                break;
            }
            if !input.eat(b',')? {
                return Ok(false);
            }
        }
    }
    sink.end_document(finish(fields, items));
    Ok(true)
}

/// Reads the items of a List after its `[`, handing each to `sink`. False if they are not
/// well-formed.
fn read_items<R: Read>(input: &mut Input<R>, sink: &mut ItemSink<'_, '_, '_>) -> io::Result<bool> {
    if !input.eat(b']')? {
        loop {
            let streamed = if sink.converts_here() {
                input.item()?
            } else {
                None
            };
            match streamed {
                Some(converted) => sink.push_converted(converted),
                None => {
                    if input.value(|raw| sink.push(raw.get()))?.is_none() {
                        return Ok(false);
                    }
                }
            }
            if input.eat(b']')? {
                break;
            }
            if !input.eat(b',')? {
                return Ok(false);
            }
        }
    }
    sink.end_list();
    Ok(true)
}

/// Items taken as text, to be converted together.
#[derive(Default)]
struct Batch {
    /// The index in its list of the first.
    first: usize,
    /// Their texts, one after another.
    text: String,
    /// Where each ends in `text`.
    ends: Vec<usize>,
}

impl Batch {
    fn convert(&self) -> (usize, Vec<Converted>) {
        let mut start = 0;
        let converted = self
            .ends
            .iter()
            .map(|&end| {
                let item = &self.text[start..end];
                start = end;
                convert_json(item)
            })
            .collect();
        (self.first, converted)
    }
}

/// Where the items of the List being read go: converted on the spot (with one worker, and for
/// the first [`ALONE`] items of a file), or in batches on worker threads, and added to `loaded`
/// in order as they come back.
struct ItemSink<'a, 'scope, 'env> {
    loaded: &'a mut Loaded,
    source: &'a Arc<str>,
    scope: &'scope std::thread::Scope<'scope, 'env>,
    workers: usize,
    /// Items converted here before threads are started ([`ALONE`]).
    alone: usize,
    /// The document being read: its number and line, and `loaded` before it.
    document: usize,
    line: usize,
    mark: Mark,
    /// Items of its list handed in, and added to `loaded`.
    pushed: usize,
    added: usize,
    /// Items of the file handed in.
    seen: usize,
    batch: Batch,
    /// Batches sent to the workers and not yet back; those back early, by first index.
    out: usize,
    early: BTreeMap<usize, Vec<Converted>>,
    /// To the workers, once started, and back.
    jobs: Option<mpsc::SyncSender<Batch>>,
    done_tx: mpsc::Sender<Done>,
    done_rx: mpsc::Receiver<Done>,
    /// A worker panicked (the scope reports it): nothing more is waited for.
    failed: bool,
}

/// A batch converted by a worker (its first index and items), or `None`: a worker panicked.
type Done = Option<(usize, Vec<Converted>)>;

/// Tells the reading thread when a worker panics, so that it does not wait for its batch.
struct PanicGuard(mpsc::Sender<Done>);

impl Drop for PanicGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.0.send(None);
        }
    }
}

impl<'a, 'scope, 'env> ItemSink<'a, 'scope, 'env> {
    fn new(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        loaded: &'a mut Loaded,
        source: &'a Arc<str>,
        (workers, alone): (usize, usize),
    ) -> Self {
        let (done_tx, done_rx) = mpsc::channel();
        let mark = Mark::of(loaded);
        Self {
            loaded,
            source,
            scope,
            workers,
            alone,
            document: 0,
            line: 0,
            mark,
            pushed: 0,
            added: 0,
            seen: 0,
            batch: Batch::default(),
            out: 0,
            early: BTreeMap::new(),
            jobs: None,
            done_tx,
            done_rx,
            failed: false,
        }
    }

    fn start_document(&mut self, line: usize) {
        self.document += 1;
        self.line = line;
        self.mark = Mark::of(self.loaded);
    }

    /// Takes back the items of the document read so far.
    fn take_back(&mut self) {
        self.mark.truncate(self.loaded);
    }

    /// Whether the next item is converted on the spot, on this thread.
    fn converts_here(&self) -> bool {
        self.jobs.is_none() && (self.workers < 2 || self.seen < self.alone)
    }

    /// Adds an item converted on the spot.
    fn push_converted(&mut self, converted: Converted) {
        self.seen += 1;
        self.pushed += 1;
        self.add(vec![converted]);
    }

    fn push(&mut self, item: &str) {
        if self.converts_here() {
            self.push_converted(convert_json(item));
            return;
        }
        self.seen += 1;
        if self.batch.ends.is_empty() {
            self.batch.first = self.pushed;
        }
        self.pushed += 1;
        self.batch.text.push_str(item);
        self.batch.ends.push(self.batch.text.len());
        if self.batch.ends.len() == BATCH {
            self.send();
        }
        // Adds what has come back, without waiting.
        while let Ok(done) = self.done_rx.try_recv() {
            self.back(done);
        }
    }

    /// The list has ended: adds the rest of its items, waiting for the workers.
    fn end_list(&mut self) {
        if !self.batch.ends.is_empty() {
            if self.jobs.is_none() {
                // Fewer items than a batch: not worth a thread.
                let (_, converted) = self.next_batch().convert();
                self.add(converted);
            } else {
                self.send();
            }
        }
        while self.out > 0 && !self.failed {
            match self.done_rx.recv() {
                Ok(done) => self.back(done),
                Err(_) => break,
            }
        }
        self.pushed = 0;
        self.added = 0;
    }

    /// Settles the document: a List keeps its items (those of its last `items`); anything else
    /// takes them back and adds itself.
    fn end_document(&mut self, value: JsonDocument<()>) {
        let origin = Origin {
            source: self.source.clone(),
            line: Some(self.line),
        };
        let converted = match value {
            JsonDocument::List(Ok(())) => return,
            JsonDocument::List(Err(err)) => Err(err),
            JsonDocument::One(converted) => converted,
        };
        self.take_back();
        record(self.loaded, converted, origin, self.document, None);
    }

    fn next_batch(&mut self) -> Batch {
        std::mem::take(&mut self.batch)
    }

    /// Hands the batch to the workers, starting them.
    fn send(&mut self) {
        let batch = self.next_batch();
        let jobs = self.jobs.get_or_insert_with(|| {
            let (jobs, queue) = mpsc::sync_channel::<Batch>(2 * self.workers);
            let queue = Arc::new(Mutex::new(queue));
            for _ in 0..self.workers {
                let queue = queue.clone();
                let done = self.done_tx.clone();
                let guard = PanicGuard(done.clone());
                self.scope.spawn(move || {
                    let _guard = guard;
                    loop {
                        // The lock is held only to take the next batch.
                        let next = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        let Ok(batch) = next else { return };
                        if done.send(Some(batch.convert())).is_err() {
                            return;
                        }
                    }
                });
            }
            jobs
        });
        match jobs.send(batch) {
            Ok(()) => self.out += 1,
            // The workers are gone (one panicked, which the scope reports): convert here.
            Err(mpsc::SendError(batch)) => {
                self.out += 1;
                self.back(Some(batch.convert()));
            }
        }
    }

    /// A batch back from the workers: added when every item before it is.
    fn back(&mut self, done: Done) {
        let Some((first, converted)) = done else {
            self.failed = true;
            return;
        };
        self.out -= 1;
        self.early.insert(first, converted);
        while let Some(converted) = self.early.remove(&self.added) {
            self.add(converted);
        }
    }

    /// Adds the next items of the list to `loaded`.
    fn add(&mut self, converted: Vec<Converted>) {
        let origin = Origin {
            source: self.source.clone(),
            line: Some(self.line),
        };
        for item in converted {
            record_item(self.loaded, item, origin.clone(), self.document, self.added);
            self.added += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`read_chunks`] and [`parse_text`] make of `text`, shown as lines.
    fn both(text: &str, chunk: usize, workers: usize) -> (Vec<String>, Option<Vec<String>>) {
        let source: Arc<str> = Arc::from("t.json");
        let show = |loaded: &Loaded| {
            let mut lines: Vec<String> = loaded
                .objects
                .iter()
                .map(|(object, origin)| format!("{origin} {}", object.describe()))
                .collect();
            lines.extend(loaded.problems.iter().map(ToString::to_string));
            lines
        };
        let mut reference = Loaded::default();
        parse_text(&mut reference, &source, text);
        let mut loaded = Loaded::default();
        let chunked = read_chunks(
            Input::new(text.as_bytes(), chunk),
            &mut loaded,
            &source,
            (workers, 100),
        )
        .expect("reading memory")
        .then(|| show(&loaded));
        (show(&reference), chunked)
    }

    fn pod(name: &str) -> String {
        format!(r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}"}}}}"#)
    }

    #[test]
    fn chunks_read_what_the_text_reader_reads() {
        let items: Vec<String> = (0..600).map(|i| pod(&format!("p{i}"))).collect();
        let texts = [
            format!(
                "{{\n  \"apiVersion\": \"v1\",\n  \"items\": [\n{}\n  ],\n  \"kind\": \"List\"\n}}\n",
                items.join(",\n")
            ),
            format!(
                "{}\n\n{{\"kind\": \"List\", \"items\": [{}, {{\"kind\": \"Pod\"}}, 5, \
                 {{\"apiVersion\": \"v1\", \"kind\": \"Sevice\"}}]}}{}\n",
                pod("a"),
                pod("b"),
                pod("c")
            ),
            r#"{"kind": "ServiceList", "items": null} {"kind": "PodList", "items": {"a": 1}}
               {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "x"}, "items": [1]}
               {} {"kind": "List"} {"kind": "List", "items": []}"#
                .to_owned(),
            format!(
                r#"{{"kind": "Pod", "apiVersion": "v1", "items": [{}], "metadata": {{"name": "x"}}}}
                {{"items": [{}], "kind": "List", "items": [{}, {{}}]}}
                {{"items": [{}], "kind": "List", "items": null}} {{"items": [{}], "kind": "List", "items": 1}}"#,
                items[..300].join(","),
                items[..300].join(","),
                pod("y"),
                items[..300].join(","),
                pod("z")
            ),
            r#"{"ki\u006ed": "List", "items": [{"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "e\u0031", "namespace": "x"}, "spec": {"hostname": "h"}}],
                "metadata": {"resourceVersion": "12345678901234567890"}, "n": 12345678}"#
                .to_owned(),
            // Characters of two, three and four bytes, cut by every chunk size below.
            format!(
                "{{\"kind\": \"List\", \"items\": [{}, {{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \
                 \"metadata\": {{\"name\": \"ü\", \"annotations\": {{\"説明\": \"𝄞 é\"}}}}}}]}} \
                 {{\"apiVersion\": \"v1\", \"kind\": \"Sérvice\", \"metadata\": {{\"name\": \"s\"}}}}",
                pod("a")
            ),
        ];
        for text in &texts {
            for (chunk, workers) in [
                (1, 1),
                (2, 1),
                (3, 1),
                (7, 1),
                (64, 3),
                (CHUNK, 1),
                (CHUNK, 4),
            ] {
                let (reference, chunked) = both(text, chunk, workers);
                let start = &text[..text.len().min(80)];
                assert_eq!(Some(&reference), chunked.as_ref(), "chunk {chunk}, {start}");
            }
        }
        let (reference, _) = both(&texts[0], CHUNK, 1);
        assert_eq!(reference.len(), 600, "{reference:?}");
    }

    /// Anything but well-formed JSON is left to the text reader, which reports it.
    #[test]
    fn chunks_give_up_on_what_is_not_well_formed() {
        for text in [
            format!("{}\n{{ broken", pod("a")),
            format!("{{\"kind\": \"List\", \"items\": [{}, ]}}", pod("a")),
            format!("{{\"kind\": \"List\", \"items\": [{}", pod("a")),
            format!("{} [1]", pod("a")),
            format!("{}x", pod("a")),
            "{\"a\": 1,}".to_owned(),
            "{\"a\" 1}".to_owned(),
            "{\"a\": 12".to_owned(),
        ] {
            for chunk in [3, CHUNK] {
                let (reference, chunked) = both(&text, chunk, 1);
                assert_eq!(chunked, None, "{text}");
                assert!(!reference.is_empty(), "{text}");
            }
        }
    }

    /// Items converted in one pass ([`Streamed`]) load exactly as the text reader loads them:
    /// the example cluster printed as one List (as kubectl prints it, `apiVersion` and `kind`
    /// first), and items that the pass leaves to [`convert_json`].
    #[test]
    fn items_read_in_one_pass_load_as_their_text() {
        let mut items: Vec<(String, bool)> = Vec::new();
        for (name, text) in super::super::EMBEDDED {
            let documents: Vec<Value> = serde_saphyr::from_multiple(text).expect(name);
            for document in documents.into_iter().filter(|d| !d.is_null()) {
                let listed = match document.get("items") {
                    Some(Value::Array(listed)) => listed.clone(),
                    _ => vec![document],
                };
                for item in listed {
                    // serde_json's mapping keeps its keys sorted: `apiVersion`, `kind`, ….
                    let streams = item["kind"] != "StatefulSet";
                    items.push((serde_json::to_string_pretty(&item).expect("JSON"), streams));
                }
            }
        }
        assert!(items.len() >= 20, "{}", items.len());
        for (item, streams) in [
            (
                r#"{"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "k"}}"#,
                true,
            ),
            (r#"{"apiVersion": "v1", "kind": "Pod"}"#, true),
            (
                r#"{"metadata": {"name": "m"}, "apiVersion": "v1", "kind": "Pod"}"#,
                true,
            ),
            (
                r#"{"apiVersion": 1, "kind": "Pod", "metadata": {"name": "n"}}"#,
                false,
            ),
            (
                r#"{"apiVersion": "v1", "kind": "Pod", "kind": "Service"}"#,
                false,
            ),
            (
                r#"{"apiVersion": "v1", "apiVersion": "v1", "kind": "Pod"}"#,
                true,
            ),
            (
                r#"{"kind": "Service", "kind": "Pod", "apiVersion": "v1"}"#,
                false,
            ),
            (
                r#"{"addressType": "IPv4", "kind": "EndpointSlice", "endpoints": [],
                 "apiVersion": "discovery.k8s.io/v1", "metadata": {"name": "e"}}"#,
                true,
            ),
            (
                r#"{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                 "metadata": {"name": "e"}, "addressType": 4}"#,
                false,
            ),
            (
                r#"{"apiVersion": "v1", "kind": "Pod", "spec": {"hostname": 5}}"#,
                false,
            ),
            (
                r#"{"apiVersion": "v2", "kind": "Pod", "metadata": {"name": "v"}}"#,
                false,
            ),
            (
                r#"{"apiVersion": "apps/v1beta2", "kind": "StatefulSet"}"#,
                false,
            ),
            (r#"{"apiVersion": "v1", "kind": "ConfigMap"}"#, false),
            (r#"[1]"#, false),
        ] {
            items.push((item.to_owned(), streams));
        }
        for (item, streams) in &items {
            let streamed = serde_json::from_str::<Streamed>(item);
            assert_eq!(streamed.is_ok(), *streams, "{item}");
            if let Ok(Streamed(converted)) = streamed {
                let text = format!("{:?}", convert_json(item));
                assert_eq!(format!("{converted:?}"), text, "{item}");
            }
        }

        let texts: Vec<&str> = items.iter().map(|(item, _)| item.as_str()).collect();
        let list = format!(
            "{{\n\"apiVersion\": \"v1\",\n\"items\": [\n{}\n],\n\"kind\": \"List\"\n}}\n",
            texts.join(",\n")
        );
        let source: Arc<str> = Arc::from("t.json");
        let mut reference = Loaded::default();
        parse_text(&mut reference, &source, &list);
        for chunk in [64, CHUNK] {
            let mut loaded = Loaded::default();
            let input = Input::new(list.as_bytes(), chunk);
            let read = read_chunks(input, &mut loaded, &source, (1, 0)).expect("memory");
            assert!(read, "chunk {chunk}");
            assert_eq!(loaded.objects, reference.objects, "chunk {chunk}");
            let problems = |loaded: &Loaded| {
                (loaded.problems.iter())
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            };
            assert_eq!(problems(&loaded), problems(&reference), "chunk {chunk}");
        }
        assert!(reference.objects.len() >= 20, "{}", reference.objects.len());
        assert!(reference.problems.len() >= 5, "{:?}", reference.problems);
    }

    /// A file that is not UTF-8 is an error, as `read_to_string` gives it, whether the bad
    /// bytes are in a string, between values, or a character the file's end cuts in two.
    #[test]
    fn a_file_that_is_not_utf8_is_an_error() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("t.json");
        let good = pod("a").into_bytes();
        let texts: [&[&[u8]]; 4] = [
            &[
                b"{\"kind\": \"List\", \"items\": [",
                &good,
                b", {\"a\": \"\xff\"}]}",
            ],
            &[&good, b"\n\xc3\x28 ", &good],
            &[&good, b" \"\xe2\x82"],
            &[b"kind: Pod\nmetadata: {name: \xff}\n"],
        ];
        for text in texts {
            let text = text.concat();
            std::fs::write(&path, &text).expect("written");
            let expected = std::fs::read_to_string(&path).expect_err("not UTF-8");
            for chunk in [1, 5, CHUNK] {
                let file = std::fs::File::open(&path).expect("opened");
                let mut input = Input::new(file, chunk);
                let err = match input.starts_json() {
                    Ok(true) => {
                        let mut loaded = Loaded::default();
                        parse_file(&mut loaded, &Arc::from("t.json"), input, &path)
                            .expect_err("not UTF-8")
                    }
                    Ok(false) => input.into_string().expect_err("not UTF-8"),
                    Err(err) => err,
                };
                assert_eq!(err.kind(), expected.kind(), "chunk {chunk}");
                assert_eq!(err.to_string(), expected.to_string(), "chunk {chunk}");
            }
        }
    }

    #[test]
    fn only_a_mapping_is_read_in_chunks() {
        for (text, json) in [
            (" \n {\"kind\": \"Pod\"}", true),
            ("[]", false),
            ("kind: Pod", false),
            ("", false),
            ("  \n", false),
        ] {
            let mut input = Input::new(text.as_bytes(), 2);
            assert_eq!(input.starts_json().expect("memory"), json, "{text:?}");
            assert_eq!(input.into_string().expect("memory"), text);
        }
    }
}
