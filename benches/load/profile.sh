#!/usr/bin/env bash
# Instruction profile of Redline's request path: callgrind counts instructions, not seconds, so the
# figure is repeatable whatever else the machine is doing (use it to compare builds).
#
# Starts an nginx upstream answering a small fixed body, Redline (metrics only, access log off,
# ONE worker thread) under `valgrind --tool=callgrind`, warms it up, zeroes the counters, sends
# N requests (loadgen, 4 keep-alive connections, 400 req/s), dumps, and prints instructions and
# allocator calls per request. The callgrind file is kept for callgrind_annotate.
#
# Usage: bash benches/load/profile.sh [label]     (REDLINE=/path LOADGEN=/path to reuse builds)
# Needs: valgrind, nginx (Debian: valgrind, nginx-light).
set -euo pipefail
cd "$(dirname "$0")/../.."
LABEL=${1:-current}
. benches/lib.sh
bench_need nginx valgrind
bench_build
bench_workdir
OUT=${OUT:-target/profile}; mkdir -p "$OUT"
UP=${BASE_PORT:-18400}; RL=$((UP + 1))
nginx_upstream "$UP"
cat > "$WORK/rl.yaml" <<CONF
upstream: http://127.0.0.1:$UP
telemetry: { access_log: off }
flows:
  - name: home
    match: "GET /"
CONF
TOKIO_WORKER_THREADS=1 REDLINE_LOG=warn valgrind --tool=callgrind \
  --callgrind-out-file="$OUT/callgrind.$LABEL.out" "$REDLINE" run --config "$WORK/rl.yaml" \
  --listen 127.0.0.1:$RL --admin 127.0.0.1:$((RL + 1)) 2>"$WORK/vg.err" &
VG=$!; PIDS+=("$VG")
for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$RL") 2>/dev/null && break; sleep 0.2; done
"$LOADGEN" --url "http://127.0.0.1:$RL/" --connections 4 --duration 3 >/dev/null # warm-up
callgrind_control -z "$VG" >/dev/null
N_JSON=$("$LOADGEN" --url "http://127.0.0.1:$RL/" --connections 4 --rate 400 --duration 10)
callgrind_control -d "$VG" >/dev/null
kill -INT "$VG"; wait "$VG" || true
python3 - "$OUT/callgrind.$LABEL.out.1" "$N_JSON" "$LABEL" <<'PY'
import json, re, sys, collections
path, run, label = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
n = run["requests"]
names, calls, total, pending = {}, collections.Counter(), 0, None
for line in open(path, errors="replace"):
    if line.startswith(("summary:", "totals:")):
        total = int(line.split()[1])
    m = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?", line)
    if m:
        kind, id_, name = m.groups()
        if name:
            names[id_] = name.strip()
        pending = names.get(id_) if kind == "cfn" else None
        continue
    if line.startswith("calls=") and pending:
        calls[pending] += int(line.split("=")[1].split()[0])
        pending = None
def per(k):
    return sum(v for nm, v in calls.items() if nm == k or nm.startswith(k + "'")) / n
print(f"{label}: {n} requests ({run['errors']} errors): {total / n:,.0f} instructions/request, "
      f"{per('malloc'):.2f} malloc, {per('realloc'):.2f} realloc, {per('free'):.2f} free per request")
PY
