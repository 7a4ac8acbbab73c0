#!/usr/bin/env bash
# `redline baseline run` against a peer generator no one here wrote: oha (PEER=oha, the
# default; `cargo install oha`) or wrk2 (PEER=wrk2, `wrk -R`).
#
#   OHA=/path/to/oha REDLINE=target/release/redline bash benches/peer/run.sh [accuracy|ceiling]
#   PEER=wrk2 WRK2=/path/to/wrk2 REDLINE=target/release/redline bash benches/peer/run.sh [accuracy|ceiling]
#
# accuracy (default): the same fixed RATES on the same endpoint (Redline in front of an nginx
#   upstream), both generators back to back in one run, REPS times alternating which goes
#   first (oha only); p50/p99 of each. oha runs with `-q RATE --latency-correction`: each
#   request's latency counts from when oha's pacer released it, like Redline's. wrk2's latency is
#   printed twice: corrected (from the intended start, like Redline's) and uncorrected (from
#   when it actually wrote), since wrk2 schedules on millisecond timers and its corrected
#   numbers include up to ~1 ms of its own lateness.
# ENDPOINT=nginx measures nginx directly (the steadier endpoint: no proxy hop sharing the two
#   cores); the default is Redline's proxy in front of it. GEN_THREADS=N gives both generators
#   N runtime worker threads (oha --worker-threads, Redline TOKIO_WORKER_THREADS); default: one
#   per core.
# ceiling: each generator's own ceiling against a fast endpoint (nginx directly, a fixed
#   body): CEILING_RATES in turn, DURATION each; a rate is held when at least 95 % of it was
#   achieved. Prints one row per rate and generator.
#
# wrk2 is not packaged by Debian (its `wrk` has no -R); build it from
# https://github.com/giltene/wrk2 (`make`). Prints a Markdown table on stdout.
set -euo pipefail
REDLINE=${REDLINE:-target/release/redline}
PEER=${PEER:-oha}
if [ "$PEER" = wrk2 ]; then WRK2=${WRK2:?set WRK2 to a wrk2 binary}; else OHA=${OHA:-oha}; fi
MODE=${1:-accuracy}
REPS=${REPS:-1}
RATES=${RATES:-500 2000}
CEILING_RATES=${CEILING_RATES:-5000 10000 20000 40000 80000}
DURATION=${DURATION:-30}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-1}
cd "$(dirname "$0")/../.."
. benches/lib.sh
bench_need nginx curl python3
bench_workdir
UP=18480; RL=18481; ADMIN=18482
nginx_upstream "$UP"
"$REDLINE" run --upstream "http://127.0.0.1:$UP" --listen "127.0.0.1:$RL" --admin "127.0.0.1:$ADMIN" \
  --access-log off >/dev/null 2>&1 &
PIDS+=($!)
until curl -sf -o /dev/null "http://127.0.0.1:$RL/"; do sleep 0.1; done
URL="http://127.0.0.1:$RL/"
# ENDPOINT=nginx: the generators measure nginx itself, the steadier endpoint (no proxy hop).
[ "$MODE" = ceiling ] || [ "${ENDPOINT:-redline}" = nginx ] && URL="http://127.0.0.1:$UP/"
echo '{"version":1,"flows":[{"name":"hello","timeout":"5s","requests":[{"path":"/"}]}]}' > "$WORK/w.json"

wrk2_at() { # rate -> "p50 p99 achieved uncorrected-p50 uncorrected-p99" (ms)
  "$WRK2" -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -R"$1" --latency -U "$URL" > "$WORK/wrk.txt"
  awk '/Uncorrected Latency/{u=1}
       /^ *50\.000%/{ if (u) up50=$2; else p50=$2 } /^ *99\.000%/{ if (u) up99=$2; else p99=$2 }
       /Requests\/sec/{rps=$2}
       function ms(v){ if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
       END { printf "%.3f %.3f %.0f %.3f %.3f\n", ms(p50), ms(p99), rps, ms(up50), ms(up99) }' "$WORK/wrk.txt"
}
oha_at() { # rate -> "p50 p99 achieved" (ms)
  "$OHA" ${GEN_THREADS:+--worker-threads "$GEN_THREADS"} -z "${DURATION}s" -c "$CONNECTIONS" -q "$1" --latency-correction --no-tui \
    --output-format json "$URL" > "$WORK/oha.json"
  python3 - "$WORK/oha.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
print("%.3f %.3f %.0f" % (m["latency_ms"]["p50"], m["latency_ms"]["p99"], m["requests_per_sec"]))
PY
}
redline_at() { # rate -> "p50 p99 achieved"
  rm -rf "$WORK/out"
  env ${GEN_THREADS:+TOKIO_WORKER_THREADS=$GEN_THREADS} "$REDLINE" baseline run --target "$URL" --workload "$WORK/w.json" --rates "$1" \
    --step "${DURATION}s" --warmup 2s --connections "$CONNECTIONS" --max-rate 1000000 \
    --out "$WORK/out" >/dev/null 2>&1 || true
  python3 - "$WORK/out" <<'PY'
import json, sys, glob
doc = json.load(open(glob.glob(sys.argv[1] + "/*.json")[0]))
step = doc["steps"][-1]["flows"][0]
print("%.3f %.3f %.0f %.3f" % (step["p50_ms"], step["p99_ms"], step["achieved_rps"],
                              doc["steps"][-1]["send_lag_ms"]))
PY
}

peer_at() { # rate -> "p50 p99 achieved" (ms) of the peer
  if [ "$PEER" = oha ]; then oha_at "$1"; else wrk2_at "$1" | cut -d' ' -f1-3; fi
}
if [ "$MODE" = ceiling ]; then
  echo "| offered (req/s) | $PEER achieved | $PEER p99 ms | redline achieved | redline p99 ms | redline send lag ms |"
  echo "|---|---|---|---|---|---|"
  for r in $CEILING_RATES; do
    read -r _ pp99 prps < <(peer_at "$r")
    read -r _ rp99 rrps rlag < <(redline_at "$r")
    echo "| $r | $prps | $pp99 | $rrps | $rp99 | $rlag |"
  done
  exit 0
fi
if [ "$PEER" = oha ]; then
  echo "| rep | rate (req/s) | oha p50 ms | redline p50 ms | oha p99 ms | redline p99 ms | oha achieved | redline achieved |"
  echo "|---|---|---|---|---|---|---|---|"
  for rep in $(seq "$REPS"); do
    for r in $RATES; do
      # Alternate which generator goes first, so neither always meets a warmer machine.
      if [ $((rep % 2)) = 1 ]; then
        read -r op50 op99 orps < <(oha_at "$r"); read -r rp50 rp99 rrps _ < <(redline_at "$r")
      else
        read -r rp50 rp99 rrps _ < <(redline_at "$r"); read -r op50 op99 orps < <(oha_at "$r")
      fi
      echo "| $rep | $r | $op50 | $rp50 | $op99 | $rp99 | $orps | $rrps |"
    done
  done
  exit 0
fi
echo "| rate (req/s) | wrk2 p50 ms | redline p50 ms | wrk2 p99 ms | redline p99 ms | wrk2 uncorrected p50 / p99 ms | wrk2 achieved | redline achieved |"
echo "|---|---|---|---|---|---|---|---|"
for r in $RATES; do
  read -r wp50 wp99 wrps wup50 wup99 < <(wrk2_at "$r")
  read -r rp50 rp99 rrps _ < <(redline_at "$r")
  echo "| $r | $wp50 | $rp50 | $wp99 | $rp99 | $wup50 / $wup99 | $wrps | $rrps |"
done
