//! stsdns: an authoritative DNS server for Kubernetes headless Services and StatefulSets.
//!
//! # Layout
//!
//! Data flows one way, and each module talks only to the one below it:
//!
//! ```text
//!  feed ──events──▶ model ──ClusterState+Dirty──▶ records ──Snapshot──▶ snapshot ──▶ server
//!  (files, streams,  (slim types, per-feed     (name → answers,        (ArcSwap:    (UDP/TCP,
//!   kube API)         lists, endpoints)         rebuilt per Service)    one writer)  hickory)
//! ```
//!
//! [`app::Reconciler`] is the one writer between them: it owns the cluster state, applies every
//! event already queued, and publishes one snapshot per batch.
//!
//! - [`feed`] reads Kubernetes objects (Service, EndpointSlice, Pod, StatefulSet) from watched
//!   manifests, watch-event streams or the API server, as one vocabulary of events, and reports
//!   bad input with its file, line and object.
//! - [`model`] keeps only what DNS needs of those objects ([`model::ClusterState`]), derives the
//!   endpoints of Services that have no EndpointSlice as the EndpointSlice controller would,
//!   and diagnoses broken StatefulSets ([`model::diagnose`]).
//! - [`records`] turns a cluster state into an immutable [`snapshot::Snapshot`]: every name the
//!   zone answers, with its answers settled in advance, so a query is one hash lookup.
//! - [`snapshot`] publishes snapshots atomically: queries never wait for an update. Its name
//!   index (`snapshot/index.rs`) is a sharded hash map that snapshots share copy-on-write.
//! - [`server`] answers DNS over UDP and TCP from the current snapshot.
//! - [`config`] holds the validated settings; [`app`] wires everything together.
//! - [`peers`] is the client side (`stsdns peers`): it asks any DNS server for a StatefulSet's
//!   peers with one SRV lookup and runs hooks when they change. It uses only the name grammar.

pub mod app;
pub mod config;
pub mod feed;
pub mod model;
pub mod peers;
pub mod records;
pub mod server;
pub mod snapshot;
