//! Placeholder: the query benchmark lands with the bench harness.
fn main() {}
