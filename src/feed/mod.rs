//! Feeds: where Kubernetes objects come from.
//!
//! A feed reads objects and hands them to the model; it never builds records or touches the
//! server. Bad documents are not failures of the feed: each becomes a
//! [`Problem`] naming its file, document, line and object, and
//! the rest of the input still loads. Only input that cannot be read at all is an [`Error`].

pub mod event;
pub mod file;
pub mod kube;
pub mod stream;

use std::path::PathBuf;

use crate::model::diagnose::Problem;
use crate::model::{Interner, Object, Origin};

/// Input that could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A directory holds no manifest.
    #[error("{path} holds no .yaml, .yml or .json file")]
    Empty {
        /// The directory.
        path: PathBuf,
    },
}

/// Shorthand for feed results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a load produced: the good objects, and the problems with the rest.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Objects, each with where it was read.
    pub objects: Vec<(Object, Origin)>,
    /// Documents that could not be used, with the reason.
    pub problems: Vec<Problem>,
    /// How many files were read.
    pub files: usize,
    /// Strings the objects share (see [`Loaded::push`]).
    pub strings: Interner,
}

impl Loaded {
    /// Adds an object read at `origin`, its strings shared with the objects added before.
    pub fn push(&mut self, mut object: Object, origin: Origin) {
        object.share_strings(&mut self.strings);
        self.objects.push((object, origin));
    }
}

/// How often a watched path is re-read when file system notifications are not available.
pub const POLL_FALLBACK: std::time::Duration = std::time::Duration::from_millis(250);

/// Watches `path` (recursively for a directory); each change sends a wake-up, coalesced (the
/// channel holds one). `None` when notifications are unavailable (then callers poll).
pub(crate) fn watch_changes(
    path: &std::path::Path,
    recursive: bool,
) -> (
    Option<tokio::sync::mpsc::Receiver<()>>,
    Option<notify::RecommendedWatcher>,
) {
    use notify::Watcher;
    let (wake_tx, wake_rx) = tokio::sync::mpsc::channel(1);
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Access events (reads, including our own) change nothing.
        if event.is_ok_and(|e| e.kind.is_access()) {
            return;
        }
        // Full means a wake-up is already pending; that one will see this change too.
        let _ = wake_tx.try_send(());
    });
    let mode = if recursive {
        notify::RecursiveMode::Recursive
    } else {
        notify::RecursiveMode::NonRecursive
    };
    match watcher.and_then(|mut watcher| watcher.watch(path, mode).map(|()| watcher)) {
        Ok(watcher) => (Some(wake_rx), Some(watcher)),
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "cannot watch for changes; polling");
            (None, None)
        }
    }
}

/// Waits for the next change (or the poll interval without notifications); `false` when the
/// receiving end of `tx` is gone and the feed should stop.
pub(crate) async fn next_change(
    changes: &mut Option<tokio::sync::mpsc::Receiver<()>>,
    tx: &event::EventSender,
) -> bool {
    tokio::select! {
        woken = async {
            match changes {
                Some(rx) => rx.recv().await.is_some(),
                None => {
                    tokio::time::sleep(POLL_FALLBACK).await;
                    true
                }
            }
        } => woken,
        () = tx.closed() => false,
    }
}
