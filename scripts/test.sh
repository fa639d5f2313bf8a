#!/usr/bin/env bash
# The test command: installs what is missing (Debian), then runs the whole test suite.
# Everything runs without a GPU: wgpu renders on Mesa's lavapipe.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-debian.sh
# Tests render on the CPU adapter; 2 test threads keep lavapipe and rayon from oversubscribing.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-2}"
# Mesa's device-select layer probes Wayland and X11 at start-up; headless tests need neither.
export NODEVICE_SELECT=1
cargo test --locked "$@"
# The whole suite (no filter given) also holds the code to its lints (Cargo.toml's [lints]):
# formatting, and clippy with every warning an error.
if [ $# -eq 0 ]; then
  if ! cargo clippy --version >/dev/null 2>&1 || ! cargo fmt --version >/dev/null 2>&1; then
    command -v rustup >/dev/null 2>&1 && rustup component add clippy rustfmt >&2
  fi
  cargo fmt --check
  cargo clippy --locked --all-targets -- -D warnings
fi
