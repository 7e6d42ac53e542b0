#!/usr/bin/env bash
# Evidence bundle: time and memory of a bundle of N calls of one customer, each with a recording
# of 200 KB to 1 MB (random bytes behind an MP3 header, sizes spread evenly), archived first from
# a local media host into the file store. Measures GET /export/evidence.zip (a reviewer key;
# full speed, then a client reading at 20 MB/s), the server's RSS before and its peak while
# streaming (VmHWM, reset just before through /proc/<pid>/clear_refs), `calltrail evidence`
# (wall time, max RSS) and `calltrail verify-bundle` on the result.
# Needs a release build (`cargo build --release`), python3, curl and GNU time; run as root (for
# clear_refs) with nothing else running.
# Usage: bash benches/bundle.sh [N]   (CALLTRAIL_BIN=another binary; BENCH_DATABASE_URL=a new
# PostgreSQL database, e.g. postgres://postgres@127.0.0.1:5432/bundle_bench, instead of SQLite)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
BIN=${CALLTRAIL_BIN:-target/release/calltrail}
WORK=$(mktemp -d /tmp/calltrail-bundle-bench.XXXXXX)
CUSTOMER=919811100001
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mib() { python3 -c "print(f'{$1/1024:.1f}')"; }

mkdir -p "$WORK/media"
total=0
for i in $(seq 1 "$N"); do
  size=$(( 200 * 1024 + (i * 7919) % (824 * 1024) ))
  { printf 'ID3\x04\x00\x00\x00\x00\x00\x00'; head -c $((size - 10)) /dev/urandom; } > "$WORK/media/r$i.mp3"
  total=$((total + size))
done
echo "recordings: $N, $(python3 -c "print(f'{$total/1048576:.0f}')") MiB in all"
MEDIA_PORT=$(port)
(cd "$WORK/media" && exec python3 -m http.server "$MEDIA_PORT" --bind 127.0.0.1 >/dev/null 2>&1) &
sleep 1

export DATABASE_URL="${BENCH_DATABASE_URL:-sqlite://$WORK/bundle.db?mode=rwc}" CALLTRAIL_RECORDINGS="file:$WORK/objects"
echo "database: ${DATABASE_URL%%:*}"
export DOUBLETICK_API_KEY=bench-key RUST_LOG=warn
"$BIN" migrate
KEY=$("$BIN" keys create --name bench --role reviewer | tail -n 1)
P=$(port)
BASE="http://127.0.0.1:$P"
CALLTRAIL_ADDR="127.0.0.1:$P" "$BIN" serve 2>>"$WORK/serve.log" &
PID=$!
for _ in $(seq 1 100); do curl -sf "$BASE/health" >/dev/null && break; sleep 0.1; done

for i in $(seq 1 "$N"); do
  minute=$(( i % 60 )); hour=$(( (i / 60) % 24 )); day=$(( 1 + i / 1440 ))
  at=$(printf '2026-03-%02dT%02d:%02d:00.000Z' "$day" "$hour" "$minute")
  printf '{"event":"CALL_ENDED","callId":"bundle_%05d","chatMessageId":"m%d","chatId":"c","wabaNumber":"918045671200","customerNumber":"%s","customerName":"Bench","customerId":"cu","callDirection":"INCOMING","callStatus":"END","failedReason":"","durationInSeconds":60,"callStartedAt":"%s","callEndedAt":"%s","pickedBy":"agent%d","rejectedBy":"","endedBy":"agent","recordingUrl":"http://127.0.0.1:%s/r%d.mp3","deviceId":"d"}' \
    "$i" "$i" "$CUSTOMER" "$at" "$at" $((i % 7)) "$MEDIA_PORT" "$i" |
    curl -sf -o /dev/null "$BASE/webhooks/doubletick" -H 'content-type: application/json' --data-binary @-
done
archived() {
  curl -s "$BASE/graphql" -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
    -d '{"query":"{ callStats { archivedRecordings } }"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["callStats"]["archivedRecordings"])'
}
until [ "$(archived)" -ge "$N" ]; do sleep 0.2; done
echo "archived $N recordings"

bundle() { # label curl-args...
  local label=$1; shift
  local before; before=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
  echo 5 > "/proc/$PID/clear_refs"
  local t0; t0=$(date +%s.%N)
  curl -sf "$@" -H "Authorization: Bearer $KEY" -o "$WORK/http.zip" \
    "$BASE/export/evidence.zip?customerNumber=$CUSTOMER&endedAtFrom=2026-03-01T00:00:00Z&endedAtTo=2026-04-01T00:00:00Z"
  local t1; t1=$(date +%s.%N)
  local peak; peak=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
  local bytes; bytes=$(stat -c %s "$WORK/http.zip")
  python3 -c "t=$t1-$t0; print(f'GET /export/evidence.zip ($label): {$bytes/1048576:.0f} MiB in {t:.2f} s = {$bytes/1048576/t:.0f} MiB/s; server RSS {$before/1024:.1f} MiB before, peak {$peak/1024:.1f} MiB while streaming (+{($peak-$before)/1024:.1f})')"
}
bundle "full speed"
bundle "full speed, again"
bundle "client at 20 MB/s" --limit-rate 20M

kill "$PID"; wait "$PID" 2>/dev/null || true
/usr/bin/time -f '%e %M' -o "$WORK/cli.time" "$BIN" evidence --customer-number "$CUSTOMER" \
  --from 2026-03-01T00:00:00Z --to 2026-04-01T00:00:00Z --out "$WORK/cli.zip"
read -r secs kb < "$WORK/cli.time"
echo "calltrail evidence: $secs s, max RSS $(mib "$kb") MiB"
/usr/bin/time -f '%e %M' -o "$WORK/verify.time" "$BIN" verify-bundle "$WORK/http.zip" | grep -E '^(ok|DIFFERS|verified)'
read -r secs kb < "$WORK/verify.time"
echo "calltrail verify-bundle: $secs s, max RSS $(mib "$kb") MiB"
