#!/usr/bin/env bash
# Load benchmark: direct vs nginx vs Redline (metrics only) vs Redline (full telemetry: every span,
# the metrics and every access record as OTLP logs, all to the same rotel), in one run.
#
# Starts an upstream (nginx returning a small fixed body), an equivalent nginx reverse proxy
# (upstream keep-alive pool, access log off, WORKERS worker processes) and Redline with the same
# number of worker threads, then measures each target on loopback, interleaved, REPS times:
#   (a) throughput: wrk, CONNS connections, DURATION seconds
#   (b) latency p50/p99/p99.9 at fixed rates of 1,000 and 5,000 requests/s (open loop, loadgen)
#   (c) peak RSS, and CPU seconds (total and user) per 100,000 requests during (a), for the target
#       and for the whole machine (and the collector's, for the full-telemetry row)
# plus Redline's RSS with 1,000 open keep-alive client connections.
# Prints a Markdown report (medians over REPS, ratios to nginx) on stdout.
#
# Usage: bash benches/load/run.sh            (REPS=3 DURATION=10 CONNS=50 WORKERS=2 by default)
# Needs: nginx, wrk and curl (Debian: nginx-light, wrk, curl; installed if missing and root);
#        rotel-agent for the full-telemetry row (pip install rotel), else that row is skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."

REPS=${REPS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
WORKERS=${WORKERS:-2}
RATES=${RATES:-"1000 5000"}
BASE=${BASE_PORT:-18100}

. benches/lib.sh
bench_need nginx wrk curl
bench_build   # REDLINE=/path LOADGEN=/path reuse prebuilt binaries (e.g. to compare builds)
bench_workdir

UP=$BASE; NGX=$((BASE + 1)); RL=$((BASE + 2)); RLF=$((BASE + 3)); OTLP=$((BASE + 4))

nginx_upstream "$UP"
nginx_conf px "$WORKERS" "upstream app { server 127.0.0.1:$UP; keepalive 128; }
  server { listen 127.0.0.1:$NGX; location / { proxy_pass http://app; proxy_http_version 1.1;
    proxy_set_header Connection \"\"; proxy_set_header Host \$host;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } }"

cat > "$WORK/redline.yaml" <<EOF
upstream: http://127.0.0.1:$UP
telemetry: { access_log: off }
flows:
  - name: home
    match: "GET /"
EOF
TOKIO_WORKER_THREADS=$WORKERS REDLINE_LOG=warn "$REDLINE" run --config "$WORK/redline.yaml" \
  --listen 127.0.0.1:$RL --admin 127.0.0.1:$((RL + 100)) >/dev/null 2>"$WORK/rl.err" &
PIDS+=($!); RL_PID=$!

FULL=""
ROTEL=$(rotel_path)
if [ -n "$ROTEL" ] && [ -x "$ROTEL" ]; then
  # Its default pid file is global (/tmp/rotel-agent.pid): keep ours private so runs cannot collide.
  "$ROTEL" start --exporter blackhole --otlp-grpc-endpoint 127.0.0.1:$((OTLP + 10)) \
    --otlp-http-endpoint 127.0.0.1:$OTLP --pid-file "$WORK/rotel.pid" \
    --log-file "$WORK/rotel.log" >/dev/null 2>&1 &
  PIDS+=($!); COLLECTOR_PID=$!
  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$OTLP OTEL_TRACES_SAMPLER=always_on OTEL_LOGS_EXPORTER=otlp \
    TOKIO_WORKER_THREADS=$WORKERS REDLINE_LOG=warn "$REDLINE" run --config "$WORK/redline.yaml" \
    --listen 127.0.0.1:$RLF --admin 127.0.0.1:$((RLF + 100)) >/dev/null 2>"$WORK/rlf.err" &
  PIDS+=($!); RLF_PID=$!
  FULL=1
fi

# EXTRA="label=/path/to/redline ..." adds more Redline builds (metrics only) to the same run,
# e.g. an allocator or before/after comparison. "label=BIN@CONFIG[@WRK_LUA]" runs BIN with its
# own CONFIG instead, in which __UPSTREAM__ becomes the upstream's URL, __DATA_DIR__ a fresh
# directory and __JWT_DIR__ $JWT_DIR (see benches/load/jwt_tokens.py); WRK_LUA is a wrk script
# for that target, and loadgen sends the headers of ${WRK_LUA%.lua}.headers when it exists.
JWT_DIR=$(realpath -m "${JWT_DIR:-target/bench-jwt}")
EXTRA_PORT=$((BASE + 20)); declare -A EXTRA_PID EXTRA_PORTS WRK_ARGS LG_ARGS
for spec in ${EXTRA:-}; do
  label=${spec%%=*}; rest=${spec#*=}
  IFS=@ read -r bin config lua <<<"$rest"
  conf=$WORK/redline.yaml
  if [ -n "$config" ]; then
    conf=$WORK/$label.yaml; mkdir -p "$WORK/$label-data"
    sed -e "s|__UPSTREAM__|http://127.0.0.1:$UP|g" -e "s|__DATA_DIR__|$WORK/$label-data|g" \
      -e "s|__JWT_DIR__|$JWT_DIR|g" "$config" > "$conf"
  fi
  if [ -n "$lua" ]; then
    WRK_ARGS[$label]="-s $lua"
    [ -f "${lua%.lua}.headers" ] && LG_ARGS[$label]="--header-lines ${lua%.lua}.headers"
  fi
  TOKIO_WORKER_THREADS=$WORKERS REDLINE_LOG=warn "$bin" run --config "$conf" \
    --listen 127.0.0.1:$EXTRA_PORT --admin 127.0.0.1:$((EXTRA_PORT + 100)) >/dev/null 2>"$WORK/$label.err" &
  PIDS+=($!); EXTRA_PID[$label]=$!; EXTRA_PORTS[$label]=$EXTRA_PORT; EXTRA_PORT=$((EXTRA_PORT + 1))
done
# Wait (bounded) until every listener accepts connections.
wait_port() { for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing listening on port $1" >&2; return 1; }
for p in $UP $NGX $RL; do wait_port "$p"; done
if [ -n "$FULL" ]; then wait_port "$OTLP"; wait_port "$RLF"; fi
for label in "${!EXTRA_PORTS[@]}"; do wait_port "${EXTRA_PORTS[$label]}"; done

declare -A URL PIDOF
URL[direct]=http://127.0.0.1:$UP/;   PIDOF[direct]=$(cat "$WORK/up.pid")
URL[nginx]=http://127.0.0.1:$NGX/;   PIDOF[nginx]=$(cat "$WORK/px.pid")
URL[redline]=http://127.0.0.1:$RL/;  PIDOF[redline]=$RL_PID
TARGETS="direct nginx redline"
if [ -n "$FULL" ]; then URL[redline_full]=http://127.0.0.1:$RLF/; PIDOF[redline_full]=$RLF_PID; TARGETS="$TARGETS redline_full"; fi
for label in "${!EXTRA_PORTS[@]}"; do
  URL[$label]=http://127.0.0.1:${EXTRA_PORTS[$label]}/; PIDOF[$label]=${EXTRA_PID[$label]}; TARGETS="$TARGETS $label"
done

# All PIDs of a target: nginx master plus its workers.
pids_of() { local p=${PIDOF[$1]}; echo "$p $(pgrep -P "$p" || true)"; }
# User and system CPU ticks of a target, summed over its processes.
cpu_ticks() { local u=0 s=0; for p in $(pids_of "$1"); do
  [ -r /proc/$p/stat ] && read -r pu ps < <(awk '{print $14, $15}' /proc/$p/stat) \
    && u=$((u + pu)) && s=$((s + ps)); done; echo "$u $s"; }
rss_kib() { local r=0; for p in $(pids_of "$1"); do
  v=$(awk '/^VmHWM:/{print $2}' /proc/$p/status 2>/dev/null || echo 0); r=$((r + ${v:-0})); done; echo $r; }
HZ=$(getconf CLK_TCK)
# Busy CPU ticks of the whole machine (every process: load generator, upstream, proxy, collector).
machine_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
per_100k() { awk -v a="$1" -v b="$2" -v hz="$HZ" -v n="$3" 'BEGIN{printf "%.3f", (a - b) / hz / n * 100000}'; }

# Per-target extra arguments (EXTRA's WRK_LUA), unquoted on purpose: empty or "FLAG PATH".
wrk_args() { echo "${WRK_ARGS[$1]:-}"; }
lg_args() { echo "${LG_ARGS[$1]:-}"; }
for t in $TARGETS; do "$LOADGEN" --url "${URL[$t]}" --connections 8 --duration 2 $(lg_args "$t") >/dev/null; done # warm-up

RES="$WORK/results.tsv"; : > "$RES"
for rep in $(seq 1 "$REPS"); do
  for t in $TARGETS; do
    before=$(cpu_ticks "$t"); m0=$(machine_ticks)
    [ "$t" = redline_full ] && c0=$(awk '{print $14 + $15}' "/proc/$COLLECTOR_PID/stat")
    out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" $(wrk_args "$t") "${URL[$t]}")
    # Non-2xx answers (a token refused, say) would make the row measure the wrong thing.
    if grep -q "Non-2xx" <<<"$out"; then echo "$t: $(grep Non-2xx <<<"$out")" >&2; fi
    after=$(cpu_ticks "$t"); m1=$(machine_ticks)
    [ "$t" = redline_full ] && c1=$(awk '{print $14 + $15}' "/proc/$COLLECTOR_PID/stat")
    rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
    total=$(awk '/requests in/{print $1}' <<<"$out")
    # CPU seconds per 100k requests: total, then its user part (the rest is the kernel's).
    cpu=$(awk -v a="$after" -v b="$before" -v hz="$HZ" -v n="$total" 'BEGIN{split(a, x, " ");
      split(b, y, " "); u=(x[1]-y[1])/hz/n*100000; s=(x[2]-y[2])/hz/n*100000;
      printf "%.3f\t%.3f", u+s, u}')
    echo -e "$rep\t$t\tthroughput\t$rps\t$cpu\t$(rss_kib "$t")\t$(per_100k "$m1" "$m0" "$total")" >> "$RES"
    if [ "$t" = redline_full ]; then
      echo -e "$rep\t$t\tcollector\t$(per_100k "$c1" "$c0" "$total")" >> "$RES"
    fi
    for rate in $RATES; do
      j=$("$LOADGEN" --url "${URL[$t]}" --connections "$CONNS" --rate "$rate" --duration "$DURATION" $(lg_args "$t"))
      p=$(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d['p50_us'], d['p99_us'], d['p999_us'], d['errors'], sep='\\t')" "$j")
      echo -e "$rep\t$t\trate$rate\t$p" >> "$RES"
    done
  done
done

# Each Redline build with 1,000 keep-alive connections open at once (RSS sampled every 0.2 s).
for t in redline "${!EXTRA_PORTS[@]}"; do
  "$LOADGEN" --url "${URL[$t]}" --connections 1000 --rate 2000 --duration 5 $(lg_args "$t") >/dev/null &
  lg=$!; peak=0
  while kill -0 $lg 2>/dev/null; do
    v=$(awk '/^VmRSS:/{print $2}' "/proc/${PIDOF[$t]}/status"); [ "$v" -gt "$peak" ] && peak=$v; sleep 0.2
  done
  echo -e "0\t$t\tconn1000\t$peak" >> "$RES"
done

# "Full telemetry" means every span exported: a row whose spans were dropped (queue full because
# the collector fell behind) did less work, so the report says how many were.
declare -A ADMIN
ADMIN[redline]=$((RL + 100)); [ -n "$FULL" ] && ADMIN[redline_full]=$((RLF + 100))
for label in "${!EXTRA_PORTS[@]}"; do ADMIN[$label]=$((EXTRA_PORTS[$label] + 100)); done
for t in "${!ADMIN[@]}"; do
  d=$(curl -s "http://127.0.0.1:${ADMIN[$t]}/metrics" \
    | awk '/^redline_telemetry_dropped_total\{signal="traces"\}/{print $2}')
  echo -e "0\t$t\tdropped\t${d:-0}" >> "$RES"
  a=$(curl -s "http://127.0.0.1:${ADMIN[$t]}/metrics" | awk '/^redline_audit_dropped_total /{print $2}')
  [ -n "$a" ] && echo -e "0\t$t\taudit_dropped\t$a" >> "$RES"
done

python3 - "$RES" "$TARGETS" "$REPS" "$DURATION" "$CONNS" "$WORKERS" <<'PY'
import sys, statistics as st
res, targets, reps, dur, conns, workers = sys.argv[1], sys.argv[2].split(), *sys.argv[3:]
rows = [l.rstrip("\n").split("\t") for l in open(res)]
def med(t, kind, col):
    v = [float(r[col]) for r in rows if r[1] == t and r[2] == kind]
    return st.median(v) if v else float("nan")
print(f"| target | req/s ({conns} conns, {dur}s) | vs nginx | CPU s / 100k req | of which user | peak RSS MiB | machine CPU s / 100k req |")
print("|---|---|---|---|---|---|---|")
for t in targets:
    rps = med(t, "throughput", 3)
    print(f"| {t} | {rps:,.0f} | {rps / med('nginx', 'throughput', 3):.2f}x | {med(t, 'throughput', 4):.2f} | {med(t, 'throughput', 5):.2f} | {med(t, 'throughput', 6) / 1024:.1f} | {med(t, 'throughput', 7):.2f} |")
if "redline_full" in targets:
    # On a saturated machine throughput is cores / machine CPU per request, so the collector's
    # share bounds the full/metrics ratio even if Redline's own telemetry cost nothing.
    m, c = med("redline", "throughput", 7), med("redline_full", "collector", 3)
    ratio = med("redline_full", "throughput", 3) / med("redline", "throughput", 3)
    print(f"\nredline_full / redline throughput: {ratio:.2f}x. The collector (rotel, same cores) used {c:.2f} CPU s / 100k req;"
          f" with that alone added to redline's machine CPU the ratio would be {m / (m + c):.2f}x.")
rates = sorted({r[2] for r in rows if r[2].startswith("rate")}, key=lambda k: int(k[4:]))
print()
print("| target | rate | p50 ms | p99 ms | p99.9 ms | errors |")
print("|---|---|---|---|---|---|")
for kind in rates:
    for t in targets:
        print(f"| {t} | {kind[4:]}/s | {med(t, kind, 3) / 1000:.3f} | {med(t, kind, 4) / 1000:.3f} | {med(t, kind, 5) / 1000:.3f} | {med(t, kind, 6):.0f} |")
for r in rows:
    if r[2] == "conn1000":
        print(f"\n{r[1]}: RSS with 1,000 keep-alive connections open: {int(r[3]) / 1024:.1f} MiB")
drops = ", ".join(f"{r[1]} {float(r[3]):.0f}" for r in rows if r[2] == "dropped")
if drops:
    print(f"\nSpans dropped over the whole run (redline_telemetry_dropped_total): {drops}.")
audit = ", ".join(f"{r[1]} {float(r[3]):.0f}" for r in rows if r[2] == "audit_dropped")
if audit:
    # A row that dropped audit records wrote fewer than it served.
    print(f"\nAudit records dropped (redline_audit_dropped_total): {audit}.")
print(f"\nMedians over {reps} interleaved repetitions; {workers} workers for nginx and Redline.")
PY
