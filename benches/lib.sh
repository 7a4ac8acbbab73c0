# Shared by the benchmark scripts (sourced from the repository root, never run): the tools they
# need, the release builds, a private work directory cleaned up on exit, and nginx instances.

# bench_need TOOL...: exits 2 unless every tool is on PATH (or in /usr/sbin). As root, missing
# Debian-packaged tools are installed first (nginx as nginx-light).
bench_need() {
  local missing=() tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    local pkgs=("${missing[@]/#nginx/nginx-light}")
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
  else
    echo "install first: ${missing[*]}" >&2
    exit 2
  fi
}

# bench_build: sets REDLINE and LOADGEN, building them unless both are given (REDLINE=/path
# LOADGEN=/path compare or reuse builds). Two commands: built together, the binary would get the
# load generator's dev-dependency features and differ (0.5 MB larger) from what
# `cargo build --release` ships.
bench_build() {
  if [ -z "${REDLINE:-}" ] || [ -z "${LOADGEN:-}" ]; then
    cargo build --release --quiet --bin redline && cargo build --release --quiet --example loadgen
  fi
  REDLINE=${REDLINE:-target/release/redline}
  LOADGEN=${LOADGEN:-target/release/examples/loadgen}
}

# bench_workdir: sets WORK (a fresh directory) and PIDS (append every background process); on
# exit kills those and every daemon that left a pid file in WORK (nginx, rotel), then removes it.
bench_workdir() {
  WORK=$(mktemp -d)
  PIDS=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  local p f
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in "$WORK"/*.pid; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
  rm -rf "$WORK"
}

# nginx_conf NAME WORKERS HTTP-BODY: starts a daemon nginx (pid in $WORK/NAME.pid) with access
# logging off, keep-alive without a request limit and HTTP-BODY inside its `http` block.
nginx_conf() {
  local nginx
  nginx=$(command -v nginx || echo /usr/sbin/nginx)
  cat > "$WORK/$1.conf" <<EOF
worker_processes $2;
pid $WORK/$1.pid;
error_log $WORK/$1.err warn;
daemon on;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/$1-body; proxy_temp_path $WORK/$1-proxy;
  fastcgi_temp_path $WORK/$1-fcgi; uwsgi_temp_path $WORK/$1-uwsgi; scgi_temp_path $WORK/$1-scgi;
  keepalive_requests 1000000;
  $3
}
EOF
  "$nginx" -c "$WORK/$1.conf" -p "$WORK"
}

# nginx_upstream PORT: the upstream every benchmark proxies to, one worker answering a small
# fixed body; its pid is in $WORK/up.pid.
nginx_upstream() {
  nginx_conf up 1 "server { listen 127.0.0.1:$1; location / { return 200 'hello from upstream\n'; } }"
}

# rotel_path: prints the rotel-agent binary (pip installs it inside the package directory, not
# always on PATH), or nothing.
rotel_path() {
  command -v rotel-agent || python3 -c \
    "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))" 2>/dev/null || true
}
