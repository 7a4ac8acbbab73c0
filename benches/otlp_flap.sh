#!/usr/bin/env bash
# Proxy latency while the OTLP collector flaps: Redline's p50/p99/p99.9 at a fixed request rate
# with a healthy collector vs one that answers 503 + `Retry-After: 1` for one second in every two.
#
# Redline exports everything (every span, metrics every second, every access record as an OTLP
# log) to a small Python OTLP/HTTP endpoint written by this script. Healthy, it answers 200 to
# every export; flapping, it refuses every export that arrives in an even second of the clock,
# so Redline's retries (with the asked-for delay, bounded by the export timeout) run during the
# load. The two phases are interleaved REPS times against the same processes; the report gives
# medians, the exports the collector refused, and Redline's own retry and drop counters for the
# phase (redline_telemetry_retries_total, redline_telemetry_dropped_total, all signals). The
# claim it tests: retries under a flapping collector never raise proxy p99 beyond noise, i.e.
# the flapping p99 stays within the spread of the healthy p99s.
#
# Usage: bash benches/otlp_flap.sh        (REPS=3 DURATION=20 RATE=1000 CONNS=50 WORKERS=2)
# Needs: nginx (the upstream), curl, python3. REDLINE=/path LOADGEN=/path reuse prebuilt
# binaries; otherwise release builds are made (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${REPS:-3}
DURATION=${DURATION:-20}
RATE=${RATE:-1000}
CONNS=${CONNS:-50}
WORKERS=${WORKERS:-2}
BASE=${BASE_PORT:-18300}

. benches/lib.sh
bench_need nginx curl python3
bench_build
bench_workdir

UP=$BASE; RL=$((BASE + 1)); ADMIN=$((BASE + 2)); OTLP=$((BASE + 3))
nginx_upstream "$UP"

# The collector: OTLP/HTTP, empty (valid) protobuf answers; `flap` in the mode file makes it
# refuse during even seconds. GET /stats gives its counts.
cat > "$WORK/collector.py" <<'PY'
import http.server, json, sys, threading, time
port, mode_file = int(sys.argv[1]), sys.argv[2]
counts, lock = {"ok": 0, "refused": 0}, threading.Lock()

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, headers, body=b""):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with lock:
            body = json.dumps(counts).encode()
        self.answer(200, [("Content-Type", "application/json")], body)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(mode_file) as f:
            flapping = f.read().strip() == "flap"
        down = flapping and int(time.time()) % 2 == 0
        with lock:
            counts["refused" if down else "ok"] += 1
        if down:
            self.answer(503, [("Retry-After", "1")])
        else:
            self.answer(200, [("Content-Type", "application/x-protobuf")])

http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
PY
echo healthy > "$WORK/mode"
python3 "$WORK/collector.py" "$OTLP" "$WORK/mode" &
PIDS+=($!)

cat > "$WORK/redline.yaml" <<EOF
upstream: http://127.0.0.1:$UP
telemetry: { access_log: off }
flows:
  - name: home
    match: "GET /"
EOF
OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$OTLP OTEL_TRACES_SAMPLER=always_on OTEL_LOGS_EXPORTER=otlp \
  OTEL_METRIC_EXPORT_INTERVAL=1000 TOKIO_WORKER_THREADS=$WORKERS REDLINE_LOG=warn \
  "$REDLINE" run --config "$WORK/redline.yaml" --listen 127.0.0.1:$RL --admin 127.0.0.1:$ADMIN \
  >/dev/null 2>"$WORK/redline.err" &
PIDS+=($!)

wait_port() { for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing listening on port $1" >&2; return 1; }
for p in $UP $OTLP $RL $ADMIN; do wait_port "$p"; done

# Sum of a counter family over its series (all signals).
counter() { curl -s "http://127.0.0.1:$ADMIN/metrics" \
  | awk -v f="$1" 'index($0, f "{") == 1 {s += $2} END {printf "%d", s}'; }
refused() { curl -s "http://127.0.0.1:$OTLP/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)['refused'])"; }

"$LOADGEN" --url "http://127.0.0.1:$RL/" --connections 8 --duration 2 >/dev/null # warm-up

RES="$WORK/results.tsv"; : > "$RES"
for rep in $(seq 1 "$REPS"); do
  for phase in healthy flapping; do
    [ "$phase" = flapping ] && echo flap > "$WORK/mode" || echo healthy > "$WORK/mode"
    r0=$(counter redline_telemetry_retries_total); d0=$(counter redline_telemetry_dropped_total); x0=$(refused)
    j=$("$LOADGEN" --url "http://127.0.0.1:$RL/" --connections "$CONNS" --rate "$RATE" --duration "$DURATION")
    r1=$(counter redline_telemetry_retries_total); d1=$(counter redline_telemetry_dropped_total); x1=$(refused)
    p=$(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d['p50_us'], d['p99_us'], d['p999_us'], d['errors'], sep='\t')" "$j")
    echo -e "$rep\t$phase\t$p\t$((x1 - x0))\t$((r1 - r0))\t$((d1 - d0))" >> "$RES"
  done
done

python3 - "$RES" "$REPS" "$DURATION" "$RATE" "$CONNS" "$WORKERS" <<'PY'
import sys, statistics as st
res, reps, dur, rate, conns, workers = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(res)]
def col(phase, i):
    return [float(r[i]) for r in rows if r[1] == phase]
print(f"| collector | p50 ms | p99 ms | p99.9 ms | errors | exports refused (503) | retries | dropped |")
print("|---|---|---|---|---|---|---|---|")
for phase in ("healthy", "flapping"):
    m = lambda i: st.median(col(phase, i))
    print(f"| {phase} | {m(2) / 1000:.3f} | {m(3) / 1000:.3f} | {m(4) / 1000:.3f} | {m(5):.0f} | {m(6):.0f} | {m(7):.0f} | {m(8):.0f} |")
healthy, flapping = col("healthy", 3), col("flapping", 3)
print(f"\np99 flapping / healthy (medians): {st.median(flapping) / st.median(healthy):.2f}x;"
      f" healthy p99 over the repetitions: {min(healthy) / 1000:.3f} to {max(healthy) / 1000:.3f} ms,"
      f" flapping: {min(flapping) / 1000:.3f} to {max(flapping) / 1000:.3f} ms.")
print(f"\nMedians over {reps} interleaved repetitions of {dur} s at {rate} requests/s ({conns} connections),"
      f" {workers} Redline workers; every span, access record and (each second) the metrics exported.")
PY
