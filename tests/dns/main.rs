//! Black-box tests: the real server on loopback, queried by real DNS clients over UDP and TCP.
//! One test binary, one module per concern.

#![allow(clippy::unwrap_used, unreachable_pub, missing_docs, dead_code)]

mod harness;

// The example cluster in zones/, as a newcomer would query it.
mod example;

// Malformed packets over UDP and TCP: FORMERR, NOTIMP, REFUSED or dropped; the server keeps serving.
mod malformed;

// Headless Services: service and host names, readiness, hostname fallback, address families.
mod headless;

// SRV: `_port._proto` names, the bare-name peer list, weights, de-duplication, additionals.
mod srv;

// ClusterIP and ExternalName Services, and PTR names.
mod cluster_ip;

// NXDOMAIN, NODATA, REFUSED, SERVFAIL, BADVERS; the apex, TTLs, several zones, letter case.
mod negative;

// Pod names under --pods disabled, insecure and verified.
mod pods;

// Message size: TC, the EDNS buffer, TCP completeness, dropped additionals.
mod truncation;

// The built binary: serve on 127.0.0.1:0, start-up errors, --help, check.
mod cli;

// A fake Kubernetes API server speaking the real list/watch protocol (a helper for feed tests).
mod fake_api;

// The Kubernetes API feed against the fake API: lists, watches, relists, faults, bad objects.
mod feed_kube;

// `stsdns peers` (the built binary) against stsdns fed changing states, and against Knot.
mod peers;

// Broken manifests (tests/fixtures/bad/): check names file, line and fix; serve keeps the rest.
mod bad_input;

// Real DNS software: dig and kdig read stsdns's answers; Knot loaded with its zone text agrees.
mod interop;

// Incremental publishing: random event sequences give the same snapshot as a build from scratch.
mod incremental;

// The StatefulSet lifecycle (scale up, a pod replaced, publishNotReady, scale down) as one
// scenario, through manifest files, a watch stream and the kube API, with the same answers.
mod lifecycle;

// Bad input on every feed while clients query: reported, last good state served, recovery.
mod feed_faults;

// The pre-encoded fast path gives the general path's bytes.
mod fast_path;

// Queries at ~20k/s while the state changes ~1k/s: every answer is one published state.
mod consistency;
