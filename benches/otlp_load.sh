#!/usr/bin/env bash
# OTLP export under load: does tracing every request cost throughput or tail latency?
#
# One nginx upstream (small fixed body) and four Redline release builds in front of it:
#   off        no OTLP endpoint (telemetry off; /metrics only)
#   http       100 % sampling (always_on), spans + metrics over OTLP/HTTP protobuf to rotel
#   grpc       the same over OTLP/gRPC to rotel
#   blackhole  100 % sampling to a collector that accepts TCP and never answers
# Measured per target, interleaved, REPS times (medians reported):
#   (a) wrk, CONNS connections for DURATION s: req/s and wrk's p99 (closed loop, at saturation)
#   (b) open-loop fixed rate RATE req/s (benches/load/loadgen): p50 / p99 / p99.9
#   (c) spans dropped by Redline (redline_telemetry_dropped_total) during (a) and (b)
# Goals (issue 3): http >= 80 % of off's throughput; blackhole p99 within 10 % of off.
#
# Usage: bash benches/otlp_load.sh    (REPS=3 DURATION=10 CONNS=50 RATE=2000 WORKERS=2)
# Needs: nginx, wrk (Debian: nginx-light, wrk) and rotel (python3 -m pip install rotel==0.0.1a15).
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${REPS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
RATE=${RATE:-2000}
WORKERS=${WORKERS:-2}
BASE=${BASE_PORT:-18300}

. benches/lib.sh
bench_need nginx wrk curl
ROTEL=$(rotel_path)
[ -x "$ROTEL" ] || { echo "rotel-agent not found: python3 -m pip install rotel==0.0.1a15" >&2; exit 2; }
bench_build
bench_workdir

UP=$BASE; OTLP_HTTP=$((BASE + 1)); OTLP_GRPC=$((BASE + 2)); HOLE=$((BASE + 3))
nginx_upstream "$UP"

"$ROTEL" start --exporter blackhole --otlp-http-endpoint 127.0.0.1:$OTLP_HTTP \
  --otlp-grpc-endpoint 127.0.0.1:$OTLP_GRPC --pid-file "$WORK/rotel.pid" \
  --log-file "$WORK/rotel.log" >/dev/null 2>&1 &
PIDS+=($!)

# Accepts connections and never reads or answers: a hung collector.
python3 - "$HOLE" <<'PY' &
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1024)
held = []
while True:
    held.append(s.accept()[0])
PY
PIDS+=($!)

cat > "$WORK/redline.yaml" <<EOF
upstream: http://127.0.0.1:$UP
telemetry: { access_log: off }
flows:
  - name: home
    match: "GET /"
EOF

declare -A PORT PID
start_redline() { # name port env...
  local name=$1 port=$2; shift 2
  env "$@" TOKIO_WORKER_THREADS=$WORKERS REDLINE_LOG=warn "$REDLINE" run --config "$WORK/redline.yaml" \
    --listen 127.0.0.1:$port --admin 127.0.0.1:$((port + 100)) >/dev/null 2>"$WORK/$name.err" &
  PIDS+=($!); PID[$name]=$!; PORT[$name]=$port
}
ALWAYS=(OTEL_TRACES_SAMPLER=always_on OTEL_METRIC_EXPORT_INTERVAL=10000)
start_redline off $((BASE + 10))
start_redline http $((BASE + 11)) "${ALWAYS[@]}" OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$OTLP_HTTP
start_redline grpc $((BASE + 12)) "${ALWAYS[@]}" OTEL_EXPORTER_OTLP_PROTOCOL=grpc \
  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$OTLP_GRPC
start_redline blackhole $((BASE + 13)) "${ALWAYS[@]}" OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$HOLE
TARGETS="off http grpc blackhole"
sleep 1

dropped() { # spans dropped so far by target $1
  curl -s "http://127.0.0.1:$((PORT[$1] + 100))/metrics" |
    awk '/^redline_telemetry_dropped_total\{signal="traces"\}/{print $2}'
}
rss_kib() { awk '/^VmHWM:/{print $2}' "/proc/${PID[$1]}/status"; }

for t in $TARGETS; do "$LOADGEN" --url "http://127.0.0.1:${PORT[$t]}/" --connections 8 --duration 2 >/dev/null; done

RES="$WORK/results.tsv"; : > "$RES"
for rep in $(seq 1 "$REPS"); do
  for t in $TARGETS; do
    url="http://127.0.0.1:${PORT[$t]}/"
    d0=$(dropped "$t")
    out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "$url")
    rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
    total=$(awk '/requests in/{print $1}' <<<"$out")
    p99=$(awk '$1=="99%"{v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
    d1=$(dropped "$t")
    j=$("$LOADGEN" --url "$url" --connections "$CONNS" --rate "$RATE" --duration "$DURATION")
    lat=$(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(*[d[k] for k in ('p50_us', 'p99_us', 'p999_us', 'errors', 'requests')], sep='\t')" "$j")
    d2=$(dropped "$t")
    echo -e "$rep\t$t\t$rps\t$p99\t$total\t$d0\t$d1\t$d2\t$lat\t$(rss_kib "$t")" >> "$RES"
  done
done

python3 - "$RES" "$TARGETS" "$REPS" "$DURATION" "$CONNS" "$RATE" "$WORKERS" <<'PY'
import sys, statistics as st
res, targets, reps, dur, conns, rate, workers = sys.argv[1], sys.argv[2].split(), *sys.argv[3:]
rows = [l.rstrip("\n").split("\t") for l in open(res)]
def col(t, i):
    return [float(r[i]) for r in rows if r[1] == t]
def med(t, i):
    return st.median(col(t, i))
base_rps, base_p99 = med("off", 2), med("off", 3)
print(f"| target | req/s ({conns} conns) | vs off | wrk p99 ms | spans dropped (wrk run) | p50 ms @{rate}/s | p99 ms @{rate}/s | p99.9 ms @{rate}/s | vs off p99 @{rate}/s | spans dropped (fixed rate) | peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
base_rate_p99 = med("off", 9)
for t in targets:
    total = med(t, 4)
    wrk_drop = st.median([float(r[6]) - float(r[5]) for r in rows if r[1] == t])
    rate_drop = st.median([float(r[7]) - float(r[6]) for r in rows if r[1] == t])
    spans = 2 * total
    print(f"| {t} | {med(t, 2):,.0f} | {med(t, 2) / base_rps:.2f}x | {med(t, 3):.2f} | "
          f"{wrk_drop:,.0f} ({100 * wrk_drop / spans if t != 'off' else 0:.1f} %) | {med(t, 8) / 1000:.3f} | {med(t, 9) / 1000:.3f} | "
          f"{med(t, 10) / 1000:.3f} | {med(t, 9) / base_rate_p99:.2f}x | {rate_drop:,.0f} | {med(t, 13) / 1024:.1f} |")
print(f"\nMedians over {reps} interleaved repetitions of {dur} s each; Redline with {workers} worker threads; "
      f"wrk -t2 -c{conns}; fixed rate by benches/load/loadgen (open loop, {conns} connections).")
PY
