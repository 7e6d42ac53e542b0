#!/usr/bin/env bash
# What one implausible call (year 0001) costs a time-bucketed question: calls per day over
# everything, in America/New_York, on N seeded calls in SQLite, median of R runs, before and
# after one CALL_ENDED of year 0001 arrives. Give the binary to measure (an earlier build to
# compare): bash benches/implausible.sh [BIN] [N] [R]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-target/release/calltrail}"); N=${2:-100000}; R=${3:-15}
WORK=$(mktemp -d /tmp/calltrail-implausible.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export DATABASE_URL="sqlite://$WORK/bench.db?mode=rwc" RUST_LOG=warn
"$BIN" seed --calls "$N" --seed 1 >/dev/null
CALLTRAIL_ADDR=127.0.0.1:$PORT "$BIN" serve 2>"$WORK/log" &
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
Q='{"query":"{ callStats(groupBy: [DAY], timeZone: \"America/New_York\") { total { count } } }"}'
median() {
  for _ in 1 2 3; do curl -s -o /dev/null "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' -d "$Q"; done
  for _ in $(seq 1 "$R"); do
    curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' -d "$Q"
  done | sort -n | awk '{a[NR]=$1} END {printf "%.1f ms", a[int((NR+1)/2)]*1000}'
}
echo "$N calls: $(median) per question"
curl -s -o /dev/null "http://127.0.0.1:$PORT/webhooks/doubletick" -H 'content-type: application/json' -d '{"event":"CALL_ENDED","callId":"call_year_0001","wabaNumber":"918045671200","customerNumber":"919811122233","callDirection":"INCOMING","callStatus":"END","durationInSeconds":60,"callStartedAt":"0001-01-01T00:00:00.000Z","callEndedAt":"0001-01-01T00:01:00.000Z"}'
echo "with one call in year 0001: $(median) per question"
