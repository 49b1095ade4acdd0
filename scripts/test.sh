#!/usr/bin/env bash
# The whole test suite, from a fresh clone: Rust unit + integration tests, then
# the conformance suite that drives a real `plinth server` with the real
# `mlflow` client; then the store, server and conformance tests again with
# the metadata in a real PostgreSQL (a throwaway cluster on a free port,
# scripts/pg.sh) and the artifacts in S3-compatible storage (Garage,
# scripts/garage.sh). Installs what it needs (a Python venv, Chromium,
# PostgreSQL's binaries, Garage built into the cache) on first use.
#
# The build goes where `cargo run --release --bin plinth` puts it (the clone's
# target/, or CARGO_TARGET_DIR): the README's two commands share one release
# build, and this one adds only the test binaries. Other caches live outside
# the clone (reused across runs):
#   PLINTH_CACHE (default ~/.cache/plinth): venv/, pip/ (CI also keeps target/ there)
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${PLINTH_CACHE:-$HOME/.cache/plinth}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$CACHE/pip}"
VENV="$CACHE/venv"
mkdir -p "$CACHE"

step() { printf '\n==> %s\n' "$*"; }

step "Python venv with the mlflow client ($VENV)"
# Reinstalled whenever the pinned requirements change (stamp = their hash).
REQ_HASH="$(sha256sum tests/conformance/requirements.txt | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements-sha256" 2>/dev/null)" != "$REQ_HASH" ]; then
  python3 -m venv "$VENV"
  timeout 1200 "$VENV/bin/pip" install -q -r tests/conformance/requirements.txt
  echo "$REQ_HASH" > "$VENV/.requirements-sha256"
fi

step "Chromium for the web UI's browser tests"
# Debian's package; Playwright drives it (it downloads no browser of its own).
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  timeout 600 $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 900 $SUDO apt-get install -y -qq chromium
fi

step "PostgreSQL server binaries (Debian's package; tests start their own server)"
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  timeout 600 $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 900 $SUDO apt-get install -y -qq postgresql
fi

step "Garage, the S3-compatible server the tests store artifacts in (built once into $CACHE/tools)"
GARAGE="$CACHE/tools/bin/garage"
if [ ! -x "$GARAGE" ]; then
  # About 18 minutes on 2 cores, once; its own target dir, so the workspace build is untouched.
  CARGO_TARGET_DIR="$CACHE/garage-build" timeout 3000 cargo install garage --locked --version 2.5.0 --root "$CACHE/tools"
  rm -rf "$CACHE/garage-build"
fi
export GARAGE

step "nginx, the load balancer in front of three replicas (Debian's package, unpacked into $CACHE/tools)"
# Unpacked rather than installed: no service is started, nothing outside the cache is touched.
PLINTH_NGINX="$(command -v nginx || true)"
if [ -z "$PLINTH_NGINX" ]; then
  PLINTH_NGINX="$CACHE/tools/nginx/usr/sbin/nginx"
  if [ ! -x "$PLINTH_NGINX" ]; then
    NGX_DEB="$(mktemp -d)"
    (cd "$NGX_DEB" && timeout 300 apt-get download -q nginx 2>/dev/null) || {
      timeout 600 apt-get update -qq && (cd "$NGX_DEB" && timeout 300 apt-get download -q nginx)
    }
    dpkg -x "$NGX_DEB"/nginx_*.deb "$CACHE/tools/nginx"
    rm -rf "$NGX_DEB"
  fi
fi
export PLINTH_NGINX

step "Format and lints (cargo fmt --check, clippy -D warnings)"
timeout 300 cargo fmt --all -- --check
timeout 1800 cargo clippy --release --workspace --all-targets --locked -- -D warnings

step "Build (release profile, one build for tests and binary)"
timeout 2700 cargo build --release --workspace --all-targets --locked

step "Rust unit and integration tests"
timeout 900 cargo test --release --workspace --locked

step "Conformance: the real mlflow client against plinth server"
export PLINTH_BIN="$CARGO_TARGET_DIR/release/plinth"
# The browser tests save a screenshot of each main page here.
export PLINTH_UI_SCREENSHOTS="${PLINTH_UI_SCREENSHOTS:-$CACHE/ui-screenshots}"
(cd tests/conformance &&
  timeout 1200 "$VENV/bin/python" -m pytest -q --timeout 300 -p no:cacheprovider -W ignore::DeprecationWarning .)

step "The same at scale: metadata in PostgreSQL, artifacts in S3 (Garage), throwaway servers on free ports"
SCALE_DIR="$(mktemp -d)"
trap 'scripts/pg.sh stop "$SCALE_DIR/pg"; scripts/garage.sh stop "$SCALE_DIR/s3"; rm -rf "$SCALE_DIR"' EXIT
PLINTH_TEST_POSTGRES="$(scripts/pg.sh start "$SCALE_DIR/pg")"
export PLINTH_TEST_POSTGRES
eval "$(scripts/garage.sh start "$SCALE_DIR/s3")"
# The whole workspace selected, so features unify as in the build above (no rebuild).
timeout 900 cargo test --release --workspace --locked --test postgres --test integration
timeout 900 cargo test --release --workspace --locked --lib -- s3_behaves_alike
# The shared server of the suite is three replicas behind nginx (REST and gRPC listeners).
(cd tests/conformance && PLINTH_TEST_REPLICAS=3 \
  timeout 1200 "$VENV/bin/python" -m pytest -q --timeout 300 -p no:cacheprovider -W ignore::DeprecationWarning .)
