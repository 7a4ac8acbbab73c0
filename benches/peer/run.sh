#!/usr/bin/env bash
# Accuracy of `redline baseline run` against a peer no one here wrote (wrk2, `wrk -R`):
# the same fixed rates on the same endpoint (Redline in front of an nginx upstream), in one
# run, then each generator's ceiling (highest rate it holds) against that endpoint.
#
#   WRK2=/path/to/wrk2 REDLINE=target/release/redline bash benches/peer/run.sh
#
# wrk2 is not packaged by Debian (its `wrk` has no -R); build it from
# https://github.com/giltene/wrk2 (`make`). Prints a Markdown table on stdout.
set -euo pipefail
REDLINE=${REDLINE:-target/release/redline}
WRK2=${WRK2:?set WRK2 to a wrk2 binary}
RATES=${RATES:-500 2000}
DURATION=${DURATION:-30}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/up.pid" ] && kill "$(cat "$WORK/up.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
UP=18480; RL=18481; ADMIN=18482
cat > "$WORK/up.conf" <<CONF
worker_processes 1; pid $WORK/up.pid; error_log $WORK/up.err warn; daemon on;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $WORK/b; proxy_temp_path $WORK/p;
  fastcgi_temp_path $WORK/f; uwsgi_temp_path $WORK/u; scgi_temp_path $WORK/s;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { return 200 'hello from upstream\n'; } } }
CONF
"$NGINX" -c "$WORK/up.conf" -p "$WORK"
"$REDLINE" run --upstream "http://127.0.0.1:$UP" --listen "127.0.0.1:$RL" --admin "127.0.0.1:$ADMIN" \
  --access-log off >/dev/null 2>&1 &
PIDS+=($!)
until curl -sf -o /dev/null "http://127.0.0.1:$RL/"; do sleep 0.1; done
URL="http://127.0.0.1:$RL/"
echo '{"version":1,"flows":[{"name":"hello","timeout":"5s","requests":[{"path":"/"}]}]}' > "$WORK/w.json"

wrk2_at() { # rate -> "p50 p99" in ms
  "$WRK2" -t1 -c32 -d"${DURATION}s" -R"$1" --latency "$URL" > "$WORK/wrk.txt"
  awk '/^ *50\.000%/{p50=$2} /^ *99\.000%/{p99=$2} /Requests\/sec/{rps=$2}
       function ms(v){ if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
       END { printf "%.3f %.3f %.0f\n", ms(p50), ms(p99), rps }' "$WORK/wrk.txt"
}
redline_at() { # rate -> "p50 p99 achieved"
  rm -rf "$WORK/out"
  "$REDLINE" baseline run --target "$URL" --workload "$WORK/w.json" --rates "$1" \
    --step "${DURATION}s" --warmup 2s --out "$WORK/out" >/dev/null 2>&1 || true
  python3 - "$WORK/out" <<'PY'
import json, sys, glob
doc = json.load(open(glob.glob(sys.argv[1] + "/*.json")[0]))
step = doc["steps"][-1]["flows"][0]
print("%.3f %.3f %.0f" % (step["p50_ms"], step["p99_ms"], step["achieved_rps"]))
PY
}

echo "| rate (req/s) | wrk2 p50 ms | redline p50 ms | wrk2 p99 ms | redline p99 ms | wrk2 achieved | redline achieved |"
echo "|---|---|---|---|---|---|---|"
for r in $RATES; do
  read -r wp50 wp99 wrps < <(wrk2_at "$r")
  read -r rp50 rp99 rrps < <(redline_at "$r")
  echo "| $r | $wp50 | $rp50 | $wp99 | $rp99 | $wrps | $rrps |"
done
