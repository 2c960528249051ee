//! The manifest feed: YAML or JSON files, as `kubectl get -o yaml|json` prints them.
//!
//! A path is a file or a directory (read recursively, `.yaml`/`.yml`/`.json`, in name order).
//! Files hold one or more documents (`---`), and a document may be a `kind: List`. YAML is parsed
//! by `serde-saphyr` into JSON values (JSON is YAML), then converted by
//! [`model::convert`](crate::model::convert). JSON (`kubectl get -o json`, one List of every
//! object in the cluster) is read by `serde_json` without a value tree: each item of a List is
//! taken as text and converted straight into its `k8s-openapi` type
//! ([`convert_json`](crate::model::convert::convert_json)). The example cluster in `zones/` is
//! embedded in the binary and loads the same way.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use serde_saphyr::Spanned;
use tracing::{debug, warn};

use super::event::{Event, EventSender, SourceEvent, SourceId};
use super::{Error, Loaded, Result};
use crate::model::convert::{
    ConvertError, Document, convert_document, describe_document, suggest_kind,
};
use crate::model::diagnose::{Problem, Severity};
use crate::model::{Object, Origin};

mod json;

/// The example cluster (`zones/*.yaml`), served when no feed is given.
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "zones/default.yaml",
        include_str!("../../zones/default.yaml"),
    ),
    (
        "zones/kube-system.yaml",
        include_str!("../../zones/kube-system.yaml"),
    ),
    ("zones/prod.yaml", include_str!("../../zones/prod.yaml")),
    ("zones/web.yaml", include_str!("../../zones/web.yaml")),
];

/// Loads the embedded example cluster.
pub fn load_embedded() -> Loaded {
    let mut loaded = Loaded::default();
    for (name, text) in EMBEDDED {
        parse_into(&mut loaded, name, text);
    }
    loaded
}

/// Loads a file or a directory of manifests.
pub fn load_path(path: &Path) -> Result<Loaded> {
    let files = manifest_files(path)?;
    let mut loaded = Loaded::default();
    for file in files {
        load_file(&mut loaded, &file)?;
    }
    Ok(loaded)
}

/// Reads one file into `loaded`, as [`parse_into`] its text. A JSON file is read a chunk at a
/// time, so a 350 MB `kubectl get -o json` dump is never in memory whole.
fn load_file(loaded: &mut Loaded, file: &Path) -> Result<()> {
    let read_error = |source| Error::Read {
        path: file.to_owned(),
        source,
    };
    let mut input = json::Input::open(file).map_err(read_error)?;
    let source = file.display().to_string();
    if input.starts_json().map_err(read_error)? {
        loaded.files += 1;
        json::parse_file(loaded, &Arc::from(source), input, file).map_err(read_error)
    } else {
        let text = input.into_string().map_err(read_error)?;
        parse_into(loaded, &source, &text);
        Ok(())
    }
}

/// Checks that `path` can be read as manifests (exists, and a directory holds at least one).
pub fn check_path(path: &Path) -> Result<()> {
    manifest_files(path).map(|_| ())
}

/// The manifest files under `path`, in a stable order.
fn manifest_files(path: &Path) -> Result<Vec<PathBuf>> {
    let read_error = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_error)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    let mut dirs = vec![path.to_owned()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| Error::Read {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| Error::Read {
                path: dir.clone(),
                source,
            })?;
            let entry_path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if hidden {
                continue;
            }
            if entry_path.is_dir() {
                dirs.push(entry_path);
            } else if matches!(
                entry_path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            ) {
                files.push(entry_path);
            }
        }
    }
    if files.is_empty() {
        return Err(Error::Empty {
            path: path.to_owned(),
        });
    }
    files.sort();
    Ok(files)
}

fn error_problem(origin: Origin, object: String, message: String, fix: Option<String>) -> Problem {
    Problem {
        severity: Severity::Error,
        origin: Some(origin),
        object,
        message,
        fix,
    }
}

/// One YAML document of a file, still as text.
struct Chunk<'a> {
    /// The 1-based line of the file where the chunk starts.
    first_line: usize,
    /// The chunk's text (its `---` marker included).
    text: &'a str,
}

/// Splits a file at its `---` document markers, as kubectl's YAML reader does, so that a syntax
/// error costs one document instead of the whole file. A line that starts with `---` followed by
/// nothing or a blank always starts a document: YAML forbids it inside content (1.2, §9.1.4).
/// Comments and directives before a marker stay with the document they introduce.
fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let (mut start, mut first_line, mut has_content) = (0, 1, false);
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let marker = line
            .strip_prefix("---")
            .is_some_and(|rest| rest.chars().next().is_none_or(char::is_whitespace));
        if marker && has_content {
            chunks.push(Chunk {
                first_line,
                text: &text[start..offset],
            });
            (start, first_line, has_content) = (offset, index + 1, false);
        }
        // What follows a marker on its line is content (`--- {a: 1}`); `%YAML` is a directive.
        let body = if marker { &line[3..] } else { line }.trim();
        let directive = !marker && line.starts_with('%');
        if !body.is_empty() && !body.starts_with('#') && !directive {
            has_content = true;
        }
        offset += line.len();
    }
    chunks.push(Chunk {
        first_line,
        text: &text[start..],
    });
    chunks
}

/// Parses one file's text and adds its objects and problems to `loaded`.
///
/// Documents are numbered from 1 in file order, empty ones not counted. A document that is not
/// valid YAML is reported at the line of the error and skipped; the others still load.
pub fn parse_into(loaded: &mut Loaded, source: &str, text: &str) {
    loaded.files += 1;
    let source: Arc<str> = Arc::from(source);
    if text.trim_start().starts_with(['{', '[']) {
        // JSON (`kubectl get -o json`) is YAML too, but serde_json reads it many times faster:
        // what a 100k-pod dump needs to load in well under a second.
        json::parse_text(loaded, &source, text);
        return;
    }
    let mut document = 0;
    for chunk in split_documents(text) {
        let offset = chunk.first_line - 1;
        let values: Vec<Option<Spanned<Value>>> = match serde_saphyr::from_multiple(chunk.text) {
            Ok(values) => values,
            Err(err) => {
                document += 1;
                loaded
                    .problems
                    .push(syntax_problem(&source, &chunk, document, &err));
                continue;
            }
        };
        let mut item_lines = None;
        for (index, value) in values.into_iter().enumerate() {
            let Some(value) = value else { continue };
            if value.value.is_null() {
                continue;
            }
            document += 1;
            let origin = Origin {
                source: source.clone(),
                line: Some(offset + value.referenced.line() as usize),
            };
            let items: Option<Vec<usize>> = if value.value.get("items").is_some() {
                let lines = item_lines.get_or_insert_with(|| list_item_lines(chunk.text));
                lines
                    .get(index)
                    .map(|l| l.iter().map(|line| offset + line).collect())
            } else {
                None
            };
            let converted = convert_document(value.value);
            record(loaded, converted, origin, document, items.as_deref());
        }
    }
}

/// The line of each item of each `List` document of a chunk (empty for other documents).
fn list_item_lines(text: &str) -> Vec<Vec<usize>> {
    #[derive(serde::Deserialize)]
    struct Items {
        #[serde(default)]
        items: Vec<Spanned<serde::de::IgnoredAny>>,
    }
    serde_saphyr::from_multiple::<Option<Items>>(text)
        .map(|documents| {
            documents
                .into_iter()
                .map(|items| {
                    items
                        .map(|i| {
                            i.items
                                .iter()
                                .map(|s| s.referenced.line() as usize)
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A YAML syntax error: where it is, which object it is in (when the lines before it say), and
/// serde-saphyr's message on one line.
fn syntax_problem(
    source: &Arc<str>,
    chunk: &Chunk<'_>,
    document: usize,
    err: &serde_saphyr::Error,
) -> Problem {
    use serde_saphyr::MessageFormatter;
    let location = err.location();
    let relative_line = location.map_or(1, |l| l.line() as usize);
    let line = chunk.first_line - 1 + relative_line;
    let column = location.map_or(0, |l| l.column());
    let message: String = serde_saphyr::UserMessageFormatter
        .format_message(err.without_snippet())
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let object = object_before(chunk.text, relative_line);
    let mut text = format!("document {document}: ");
    if !object.is_empty() {
        text.push_str(&format!("{object}: "));
    }
    if column > 0 {
        text.push_str(&format!(
            "YAML syntax error at column {column}: {message}; skipped"
        ));
    } else {
        text.push_str(&format!("YAML syntax error: {message}; skipped"));
    }
    error_problem(
        Origin {
            source: source.clone(),
            line: Some(line),
        },
        object,
        text,
        Some(format!(
            "correct the YAML at line {line} (most often the indentation: the keys of one \
             mapping start in the same column)"
        )),
    )
}

/// `Kind namespace/name` from the lines of `text` before `line`, if they parse on their own: the
/// object a syntax error is in, since kubectl prints apiVersion, kind and metadata first.
fn object_before(text: &str, line: usize) -> String {
    let end = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    match serde_saphyr::from_multiple::<Option<Value>>(&text[..end]) {
        Ok(values) => values
            .last()
            .and_then(Option::as_ref)
            .map(describe_document)
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Adds what a document converted to: its object, or the problem with it. A List's items are
/// converted and added in turn, each at its own line when `item_lines` knows it.
fn record(
    loaded: &mut Loaded,
    converted: std::result::Result<Document, ConvertError>,
    origin: Origin,
    document: usize,
    item_lines: Option<&[usize]>,
) {
    match converted {
        Ok(Document::Object(object)) => loaded.push(object, origin),
        Ok(Document::Deprecated(object, hint)) => {
            loaded.problems.push(Problem {
                severity: Severity::Warning,
                origin: Some(origin.clone()),
                object: object.describe(),
                message: hint,
                fix: Some("set apiVersion: apps/v1".into()),
            });
            loaded.push(object, origin);
        }
        Ok(Document::List(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                let origin = Origin {
                    source: origin.source.clone(),
                    line: item_lines.and_then(|l| l.get(i).copied()).or(origin.line),
                };
                record_item(loaded, convert_document(item), origin, document, i);
            }
        }
        Ok(Document::Ignored {
            kind, known: true, ..
        }) => {
            debug!(%origin, kind, "skipped an object of a kind DNS does not use");
        }
        Ok(Document::Ignored {
            kind,
            object,
            known: false,
        }) => {
            let object = format!("{kind} {object}");
            let read = "stsdns reads Service, EndpointSlice, Pod and StatefulSet";
            let fix = match suggest_kind(&kind) {
                Some(meant) => format!("set kind: {meant} ({read})"),
                None => read.to_owned(),
            };
            loaded.problems.push(Problem {
                severity: Severity::Warning,
                origin: Some(origin),
                message: format!("document {document}: {object}: unknown kind {kind:?}; skipped"),
                object,
                fix: Some(fix),
            });
        }
        Err(err) => loaded.problems.push(error_problem(
            origin,
            String::new(),
            format!("document {document}: {err}; skipped"),
            err.fix(),
        )),
    }
}

/// [`record`] for item `index` of a List: its problems say which item.
fn record_item(
    loaded: &mut Loaded,
    converted: std::result::Result<Document, ConvertError>,
    origin: Origin,
    document: usize,
    index: usize,
) {
    let before = loaded.problems.len();
    record(loaded, converted, origin, document, None);
    for problem in &mut loaded.problems[before..] {
        problem.message = problem.message.replacen(
            &format!("document {document}:"),
            &format!("document {document}, item {index}:"),
            1,
        );
    }
}

/// What the watched feed remembers of each file: its objects as last loaded without error.
type LastGood = HashMap<PathBuf, GoodFile>;

/// A file's objects as last loaded without error, shared with the state that holds them. The
/// file's name is kept once and each object's line as a `u32`, rather than an [`Origin`] per
/// object: 16 bytes less per object, 2 MiB at 100k Pods.
struct GoodFile {
    source: Arc<str>,
    objects: Box<[(Object, Option<u32>)]>,
}

impl GoodFile {
    fn new(source: Arc<str>, objects: &[(Object, Origin)]) -> Self {
        let objects = objects
            .iter()
            // A line past u32::MAX needs a file of over 4 GiB; such an object is restored
            // with its file and no line.
            .map(|(object, origin)| (object.clone(), origin.line.and_then(|l| l.try_into().ok())))
            .collect();
        Self { source, objects }
    }

    /// The objects with their origins, as they were loaded.
    fn objects(&self) -> Vec<(Object, Origin)> {
        (self.objects.iter())
            .map(|(object, line)| {
                let origin = Origin {
                    source: self.source.clone(),
                    line: line.map(|l| l as usize),
                };
                (object.clone(), origin)
            })
            .collect()
    }
}

/// Loads every file under `path`, keeping the last good version of a file that now has errors
/// or has become empty, so a broken edit never takes records away.
fn reload(path: &Path, last_good: &mut LastGood) -> Result<Loaded> {
    let files = manifest_files(path)?;
    let mut loaded = Loaded::default();
    for file in &files {
        // One set of shared strings for every file of the load.
        let mut this = Loaded {
            strings: std::mem::take(&mut loaded.strings),
            ..Loaded::default()
        };
        load_file(&mut this, file)?;
        loaded.strings = std::mem::take(&mut this.strings);
        let broken = this.problems.iter().any(|p| p.severity == Severity::Error);
        let emptied =
            this.objects.is_empty() && last_good.get(file).is_some_and(|o| !o.objects.is_empty());
        let source: Arc<str> = Arc::from(file.display().to_string());
        match last_good.get(file) {
            Some(previous) if broken || emptied => {
                let why = if broken { "has errors" } else { "is empty" };
                this.problems.push(Problem {
                    severity: Severity::Warning,
                    origin: Some(Origin { source, line: None }),
                    object: String::new(),
                    message: format!(
                        "{why}; its last good version keeps serving ({} objects)",
                        previous.objects.len()
                    ),
                    fix: Some("fix the file (delete it to remove its objects)".into()),
                });
                this.objects = previous.objects();
            }
            _ => {
                last_good.insert(file.clone(), GoodFile::new(source, &this.objects));
            }
        }
        loaded.files += 1;
        loaded.objects.extend(this.objects);
        loaded.problems.extend(this.problems);
    }
    last_good.retain(|file, _| files.contains(file));
    Ok(loaded)
}

/// Sends one full list: `Init`, every object, `InitDone`, then the problems.
async fn send_list(
    source: &SourceId,
    loaded: Loaded,
    tx: &EventSender,
) -> std::result::Result<(), Closed> {
    let send = |event| {
        tx.send(SourceEvent {
            source: source.clone(),
            event,
        })
    };
    send(Event::Init).await.map_err(|_| Closed)?;
    for (object, origin) in loaded.objects {
        send(Event::InitApply(object, origin))
            .await
            .map_err(|_| Closed)?;
    }
    send(Event::InitDone).await.map_err(|_| Closed)?;
    for problem in loaded.problems {
        send(Event::Problem(problem)).await.map_err(|_| Closed)?;
    }
    Ok(())
}

/// The reconciler is gone: the feed has no one to tell.
struct Closed;

/// Sends the embedded example as one list.
pub async fn run_embedded(source: SourceId, tx: EventSender) {
    let _ = send_list(&source, load_embedded(), &tx).await;
}

/// The watched manifest feed: sends `path` as a full list, then again after every change under
/// it (file system notifications; editors that write a temporary file and rename it over the
/// original work, since the parent directory is watched). A file with errors keeps its last good
/// version, so a broken edit is reported and changes nothing. Returns when the receiver is gone.
pub async fn watch(path: PathBuf, source: SourceId, tx: EventSender) -> Result<()> {
    let is_dir = std::fs::metadata(&path)
        .map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?
        .is_dir();
    // A single file is watched through its directory, so a rename over it is seen.
    let watched = if is_dir {
        path.clone()
    } else {
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    };
    let (mut changes, _watcher) = super::watch_changes(&watched, is_dir);
    let mut last_good = LastGood::new();
    loop {
        let reloaded = {
            let path = path.clone();
            let mut state = std::mem::take(&mut last_good);
            let result = tokio::task::spawn_blocking(move || {
                let result = reload(&path, &mut state);
                (result, state)
            })
            .await;
            match result {
                Ok((result, state)) => {
                    last_good = state;
                    result
                }
                Err(join) => {
                    warn!(%source, error = %join, "manifest reload failed");
                    continue;
                }
            }
        };
        match reloaded {
            Ok(loaded) => {
                if send_list(&source, loaded, &tx).await.is_err() {
                    return Ok(());
                }
            }
            // The path went away or cannot be read: the last good state keeps serving.
            Err(error) => {
                warn!(%source, error = %error, "cannot read the feed; keeping the last good state");
            }
        }
        if !super::next_change(&mut changes, &tx).await {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Interner, Pod};

    #[test]
    fn json_is_read_with_serde_json_and_keeps_lines() {
        let mut loaded = Loaded::default();
        let text = "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"List\",\n  \"items\": [\n    {\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"a\"}}\n  ]\n}\n{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {}}\n{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"c\"}}\n{ broken";
        parse_into(&mut loaded, "pods.json", text);
        assert_eq!(loaded.objects.len(), 2, "{:?}", loaded.problems);
        assert_eq!(loaded.objects[1].1.line, Some(9));
        let shown: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 2, "{shown:#?}");
        assert!(
            shown[0].contains("pods.json:8") && shown[0].contains("without metadata.name"),
            "{shown:#?}"
        );
        assert!(
            shown[1].contains("pods.json:10") && shown[1].contains("JSON syntax error"),
            "{shown:#?}"
        );
    }

    #[test]
    fn a_broken_or_emptied_file_serves_its_last_good_objects_with_their_lines() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("pods.yaml");
        let pod = |name: &str| format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n");
        let shown = |loaded: &Loaded| {
            (loaded.objects.iter())
                .map(|(o, origin)| format!("{origin} {}", o.describe()))
                .collect::<Vec<_>>()
        };
        std::fs::write(&path, format!("{}---\n{}", pod("a"), pod("b"))).expect("written");
        let mut last_good = LastGood::new();
        let good = reload(dir.path(), &mut last_good).expect("loads");
        let good_shown = shown(&good);
        assert_eq!(good_shown.len(), 2, "{good_shown:?}");
        assert!(good_shown[1].contains("pods.yaml:6 "), "{good_shown:?}");

        for (edit, why) in [
            (format!("{}: [", pod("a")), "has errors"),
            (String::new(), "is empty"),
        ] {
            std::fs::write(&path, edit).expect("written");
            let kept = reload(dir.path(), &mut last_good).expect("loads");
            assert_eq!(shown(&kept), good_shown, "{why}");
            assert_eq!(kept.objects, good.objects, "{why}");
            let problems: Vec<String> = kept.problems.iter().map(ToString::to_string).collect();
            assert!(
                problems
                    .iter()
                    .any(|p| p.contains(why) && p.contains("(2 objects)")),
                "{problems:#?}"
            );
        }

        std::fs::write(&path, pod("c")).expect("written");
        let fixed = reload(dir.path(), &mut last_good).expect("loads");
        assert_eq!(fixed.objects.len(), 1);
        assert!(fixed.problems.is_empty(), "{:?}", fixed.problems);
    }

    /// A JSON file is read in chunks, or again whole when it is broken: either way as its text.
    #[test]
    fn json_files_load_as_their_text() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let pod = |name: &str| {
            format!(
                "{{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {{\"name\": \"{name}\"}}}}"
            )
        };
        let texts = [
            format!(
                "{{\n\"items\": [\n{},\n{{\"kind\": \"Pod\"}}\n],\n\"kind\": \"List\"\n}}\n{}",
                pod("a"),
                pod("b")
            ),
            format!(
                "{}\n{{\"kind\": \"List\", \"items\": [{}, ]}}\n",
                pod("a"),
                pod("b")
            ),
            format!("  \n{}\n{{ broken", pod("a")),
        ];
        let show = |loaded: &Loaded| {
            let objects = loaded
                .objects
                .iter()
                .map(|(o, origin)| format!("{origin} {}", o.describe()));
            let problems = loaded.problems.iter().map(ToString::to_string);
            objects.chain(problems).collect::<Vec<_>>()
        };
        for text in texts {
            let path = dir.path().join("cluster.json");
            std::fs::write(&path, &text).expect("write the file");
            let read = load_path(&path).expect("the file loads");
            let mut parsed = Loaded::default();
            parse_into(&mut parsed, &path.display().to_string(), &text);
            assert_eq!(show(&read), show(&parsed), "{text}");
            assert_eq!(read.files, 1);
            assert!(!read.objects.is_empty(), "{text}");
        }
    }

    #[test]
    fn embedded_example_loads_without_errors() {
        let loaded = load_embedded();
        let errors: Vec<_> = loaded
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
        assert!(loaded.objects.len() >= 20, "{}", loaded.objects.len());
    }

    #[test]
    fn objects_of_a_load_share_their_strings() {
        let loaded = load_embedded();
        let pods: Vec<&Pod> = loaded
            .objects
            .iter()
            .filter_map(|(object, _)| match object {
                Object::Pod(pod) => Some(&**pod),
                _ => None,
            })
            .collect();
        let (first, second) = (pods[0], pods[1]);
        let label_key = |pod: &Pod| pod.labels.iter().next().expect("labelled").0.clone();
        assert_eq!(label_key(first), label_key(second), "the same first label");
        assert!(Arc::ptr_eq(&label_key(first), &label_key(second)));
        // A StatefulSet's Pods share their subdomain and their ports' names.
        let subdomain = |pod: &Pod| pod.subdomain.clone().expect("a subdomain");
        assert!(Arc::ptr_eq(&subdomain(first), &subdomain(second)));
        let port = |pod: &Pod| pod.container_ports[0].name.clone().expect("a named port");
        assert!(Arc::ptr_eq(&port(first), &port(second)));
        assert!(
            Arc::ptr_eq(&first.container_ports, &second.container_ports),
            "one port list"
        );
        let hostname = first.hostname.as_ref().expect("a hostname");
        assert_eq!(hostname.as_str(), &*first.key.name);
        let mut strings = Interner::default();
        let mut name = first.key.name.clone();
        strings.share(&mut name);
        let mut again = Arc::from(hostname.as_str());
        strings.share(&mut again);
        assert!(Arc::ptr_eq(&name, &again), "equal text, one string");
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let mut loaded = Loaded::default();
        let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-nginx\nspec:\n  clusterIP: None    \n  selector:      \n app: nginx: x\n";
        parse_into(&mut loaded, "svc-nginx.yaml", text);
        assert_eq!(loaded.problems.len(), 1, "{:?}", loaded.problems);
        let shown = loaded.problems[0].to_string();
        assert!(shown.starts_with("error: svc-nginx.yaml:"), "{shown}");
        assert!(!shown.contains('\n'), "{shown}");
    }

    fn pod(name: &str) -> String {
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n")
    }

    fn names_and_lines(loaded: &Loaded) -> Vec<(String, Option<usize>)> {
        loaded
            .objects
            .iter()
            .map(|(object, origin)| (object.describe(), origin.line))
            .collect()
    }

    /// A syntax error used to drop the whole file; now only its document, as kubectl does.
    #[test]
    fn a_syntax_error_costs_only_its_document() {
        let mut loaded = Loaded::default();
        let text = format!(
            "{}---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: b\n   labels: x\n---\n{}",
            pod("a"),
            pod("c")
        );
        parse_into(&mut loaded, "pods.yaml", &text);
        assert_eq!(
            names_and_lines(&loaded),
            [
                ("Pod default/a".to_owned(), Some(1)),
                ("Pod default/c".to_owned(), Some(12))
            ]
        );
        let shown: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "error: pods.yaml:10: document 2: Pod default/b: YAML syntax error at column 10: \
              mapping values are not allowed in this context; skipped; fix: correct the YAML at \
              line 10 (most often the indentation: the keys of one mapping start in the same \
              column)"
            ]
        );
    }

    #[test]
    fn document_markers_split_only_at_column_zero() {
        let text =
            "# leading comment\n---\na: 1\n--- # second\nb: |\n  ---\n  text\n---\n\n...\n---{x}\n";
        let chunks: Vec<(usize, &str)> = split_documents(text)
            .iter()
            .map(|c| (c.first_line, c.text))
            .collect();
        assert_eq!(
            chunks,
            [
                (1, "# leading comment\n---\na: 1\n"),
                (4, "--- # second\nb: |\n  ---\n  text\n"),
                (8, "---\n\n...\n---{x}\n"),
            ]
        );
        let directive = "%YAML 1.2\n---\nkind: Pod\n";
        let chunks = split_documents(directive);
        assert_eq!((chunks.len(), chunks[0].text), (1, directive));
    }

    #[test]
    fn empty_documents_are_not_counted() {
        let mut loaded = Loaded::default();
        let text = format!(
            "---\n# nothing\n---\n{}---\n---\napiVersion: v1\nkind: Pod\n",
            pod("a")
        );
        parse_into(&mut loaded, "pods.yaml", &text);
        assert_eq!(
            names_and_lines(&loaded),
            [("Pod default/a".to_owned(), Some(4))]
        );
        assert_eq!(
            loaded.problems[0].to_string(),
            "error: pods.yaml:10: document 2: Pod without metadata.name; skipped; fix: set \
             metadata.name"
        );
    }

    /// `kubectl get … -o yaml` prints one List: each item is reported at its own line.
    #[test]
    fn list_items_carry_their_own_line() {
        let mut loaded = Loaded::default();
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: a\n- apiVersion: v1\n  kind: Pod\n  metadata: {}\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: c\n";
        parse_into(&mut loaded, "list.yaml", text);
        assert_eq!(
            names_and_lines(&loaded),
            [
                ("Pod default/a".to_owned(), Some(4)),
                ("Pod default/c".to_owned(), Some(11))
            ]
        );
        assert_eq!(
            loaded.problems[0].to_string(),
            "error: list.yaml:8: document 1, item 1: Pod without metadata.name; skipped; fix: \
             set metadata.name"
        );
    }

    #[test]
    fn the_example_list_items_have_distinct_lines() {
        let loaded = load_embedded();
        let lines: Vec<usize> = loaded
            .objects
            .iter()
            .filter(|(_, origin)| &*origin.source == "zones/default.yaml")
            .filter_map(|(_, origin)| origin.line)
            .collect();
        let mut distinct = lines.clone();
        distinct.dedup();
        assert_eq!(distinct, lines, "one line per item, in order");
        assert!(lines.len() >= 10, "{lines:?}");
    }

    #[test]
    fn unknown_kind_names_the_object_and_the_kind_meant() {
        let mut loaded = Loaded::default();
        parse_into(
            &mut loaded,
            "svc.yaml",
            "apiVersion: v1\nkind: service\nmetadata:\n  name: web\n  namespace: prod\n",
        );
        assert_eq!(
            loaded.problems[0].to_string(),
            "warning: svc.yaml:1: document 1: service prod/web: unknown kind \"service\"; \
             skipped; fix: set kind: Service (stsdns reads Service, EndpointSlice, Pod and \
             StatefulSet)"
        );
    }

    #[test]
    fn documents_carry_their_line_and_bad_ones_are_skipped() {
        let mut loaded = Loaded::default();
        let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  namespace: x\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: c\n";
        parse_into(&mut loaded, "pods.yaml", text);
        assert_eq!(loaded.objects.len(), 2);
        assert_eq!(loaded.objects[1].1.line, Some(11));
        assert_eq!(loaded.problems.len(), 1);
        let shown = loaded.problems[0].to_string();
        assert!(shown.contains("pods.yaml:6"), "{shown}");
        assert!(shown.contains("document 2"), "{shown}");
        assert!(shown.contains("without metadata.name"), "{shown}");
    }
}
