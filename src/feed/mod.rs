//! Feeds: where Kubernetes objects come from.
//!
//! A feed reads objects and hands them to the model; it never builds records or touches the
//! server. Bad documents are not failures of the feed: each becomes a
//! [`Problem`](crate::model::diagnose::Problem) naming its file, document, line and object, and
//! the rest of the input still loads. Only input that cannot be read at all is an [`Error`].

pub mod event;
pub mod file;

use std::path::PathBuf;

use crate::model::diagnose::Problem;
use crate::model::{Object, Origin};

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
}
