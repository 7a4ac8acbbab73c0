#!/usr/bin/env bash
# The test command: installs what the tests need on a fresh machine, then lints and runs every test.
# Usage: bash tests/run.sh        (from the repository root; root or sudo needed only for apt-get)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v curl >/dev/null || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
