//! What feeds tell the reconciler: kube-runtime's watcher vocabulary, for every feed.
//!
//! A feed sends [`SourceEvent`]s into one channel. A full list is `Init`, any number of
//! `InitApply`, then `InitDone`: only at `InitDone` does the list replace everything that source
//! said before, so a relist is atomic and never wipes another source's objects. Between lists,
//! `Apply` and `Delete` change one object each.

use std::fmt;
use std::sync::Arc;

use crate::model::diagnose::Problem;
use crate::model::{Object, ObjectRef, Origin};

/// Names a feed: `file:zones/`, `stream:-`, `kube`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceId(Arc<str>);

impl SourceId {
    /// A source id from its display form.
    pub fn new(id: impl AsRef<str>) -> Self {
        Self(Arc::from(id.as_ref()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One change reported by a feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A full list begins; nothing changes until [`Event::InitDone`].
    Init,
    /// An object of the list in progress.
    InitApply(Object, Origin),
    /// The list is complete: it replaces everything this source said before.
    InitDone,
    /// An object was added or changed.
    Apply(Object, Origin),
    /// An object was deleted.
    Delete(ObjectRef, Origin),
    /// Input that could not be used: reported, and the state is left as it was.
    Problem(Problem),
}

/// An event and the feed it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEvent {
    /// The feed.
    pub source: SourceId,
    /// What happened.
    pub event: Event,
}

/// The sending half that every feed writes into.
pub type EventSender = tokio::sync::mpsc::Sender<SourceEvent>;
