#!/usr/bin/env bash
# The run command: installs what is missing (Debian), then builds and opens the app.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-debian.sh
exec cargo run --release --locked -- "$@"
