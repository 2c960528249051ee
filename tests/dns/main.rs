//! Black-box tests: the real server on loopback, queried by real DNS clients over UDP and TCP.
//! One test binary, one module per concern.

#![allow(clippy::unwrap_used, unreachable_pub, missing_docs, dead_code)]

mod harness;

// The example cluster in zones/, as a newcomer would query it.
mod example;
