#!/usr/bin/env bash
# The test command of the README: installs what the tests need, then runs the whole suite with
# the same checks CI makes (format, lints, unit + black-box tests, benches compile).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
cargo bench --no-run --locked
