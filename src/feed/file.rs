//! The manifest feed: YAML or JSON files, as `kubectl get -o yaml|json` prints them.
//!
//! A path is a file or a directory (read recursively, `.yaml`/`.yml`/`.json`, in name order).
//! Files hold one or more documents (`---`), and a document may be a `kind: List`. YAML is parsed
//! by `serde-saphyr` into JSON values (JSON is YAML), then converted by
//! [`model::convert`](crate::model::convert). The example cluster in `zones/` is embedded in the
//! binary and loads the same way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use serde_saphyr::Spanned;
use tracing::debug;

use super::{Error, Loaded, Result};
use crate::model::Origin;
use crate::model::convert::{Document, convert_document};
use crate::model::diagnose::{Problem, Severity};

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
        let text = std::fs::read_to_string(&file).map_err(|source| Error::Read {
            path: file.clone(),
            source,
        })?;
        parse_into(&mut loaded, &file.display().to_string(), &text);
    }
    Ok(loaded)
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

fn error_problem(origin: Origin, object: String, message: String) -> Problem {
    Problem {
        severity: Severity::Error,
        origin: Some(origin),
        object,
        message,
        fix: None,
    }
}

/// Parses one file's text and adds its objects and problems to `loaded`.
pub fn parse_into(loaded: &mut Loaded, source: &str, text: &str) {
    loaded.files += 1;
    let source: Arc<str> = Arc::from(source);
    let documents: Vec<Option<Spanned<Value>>> = match serde_saphyr::from_multiple(text) {
        Ok(documents) => documents,
        Err(err) => {
            let line = err.location().map(|l| l.line() as usize);
            loaded.problems.push(error_problem(
                Origin {
                    source: source.clone(),
                    line,
                },
                String::new(),
                format!("YAML syntax error: {}", first_line(&err.to_string())),
            ));
            return;
        }
    };
    for (index, document) in documents.into_iter().enumerate() {
        let Some(document) = document else { continue };
        if document.value.is_null() {
            continue;
        }
        let origin = Origin {
            source: source.clone(),
            line: Some(document.referenced.line() as usize),
        };
        convert_into(loaded, document.value, origin, index + 1);
    }
}

/// serde-saphyr renders a source snippet under its message; one line is what a log wants.
fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or(message).trim()
}

fn convert_into(loaded: &mut Loaded, value: Value, origin: Origin, document: usize) {
    match convert_document(value) {
        Ok(Document::Object(object)) => loaded.objects.push((object, origin)),
        Ok(Document::Deprecated(object, hint)) => {
            loaded.problems.push(Problem {
                severity: Severity::Warning,
                origin: Some(origin.clone()),
                object: object.describe(),
                message: hint,
                fix: Some("set apiVersion: apps/v1".into()),
            });
            loaded.objects.push((object, origin));
        }
        Ok(Document::List(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                convert_item(loaded, item, &origin, document, i);
            }
        }
        Ok(Document::Ignored { kind, known: true }) => {
            debug!(%origin, kind, "skipped an object of a kind DNS does not use");
        }
        Ok(Document::Ignored { kind, known: false }) => loaded.problems.push(Problem {
            severity: Severity::Warning,
            origin: Some(origin),
            object: String::new(),
            message: format!("document {document}: unknown kind {kind:?}; skipped"),
            fix: Some("stsdns reads Service, EndpointSlice, Pod and StatefulSet".into()),
        }),
        Err(err) => loaded.problems.push(error_problem(
            origin,
            String::new(),
            format!("document {document}: {err}; skipped"),
        )),
    }
}

fn convert_item(loaded: &mut Loaded, item: Value, origin: &Origin, document: usize, index: usize) {
    // Items of a List share the document's line; the index tells them apart.
    let before = loaded.problems.len();
    convert_into(loaded, item, origin.clone(), document);
    for problem in &mut loaded.problems[before..] {
        problem.message = problem.message.replacen(
            &format!("document {document}:"),
            &format!("document {document}, item {index}:"),
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn syntax_error_names_file_and_line() {
        let mut loaded = Loaded::default();
        let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-nginx\nspec:\n  clusterIP: None    \n  selector:      \n app: nginx: x\n";
        parse_into(&mut loaded, "svc-nginx.yaml", text);
        assert_eq!(loaded.problems.len(), 1, "{:?}", loaded.problems);
        let shown = loaded.problems[0].to_string();
        assert!(shown.starts_with("error: svc-nginx.yaml:"), "{shown}");
        assert!(!shown.contains('\n'), "{shown}");
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
