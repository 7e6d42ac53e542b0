#!/usr/bin/env bash
# Archive throughput and memory: N recordings of 1 MB from a local media host into the file
# store and into a local S3 server (moto), and the RSS growth while archiving one 200 MB
# recording. Needs a release build (`cargo build --release`), python3 and moto[server].
# Usage: bash benches/recordings.sh [N]   (CALLTRAIL_BIN=another binary)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100}
BIN=${CALLTRAIL_BIN:-target/release/calltrail}
WORK=$(mktemp -d /tmp/calltrail-rec-bench.XXXXXX)
KEY=bench-key
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$WORK/media"
for i in $(seq 1 "$N"); do
  { printf 'ID3\x04\x00\x00\x00\x00\x00\x00'; head -c $((1024 * 1024 - 10)) /dev/urandom; } > "$WORK/media/r$i.mp3"
done
{ printf 'ID3\x04\x00\x00\x00\x00\x00\x00'; head -c $((200 * 1024 * 1024 - 10)) /dev/urandom; } > "$WORK/media/big.mp3"
MEDIA_PORT=$(port)
(cd "$WORK/media" && exec python3 -m http.server "$MEDIA_PORT" --bind 127.0.0.1 >/dev/null 2>&1) &
sleep 1

call() { # call_id url
  printf '{"event":"CALL_ENDED","callId":"%s","chatMessageId":"m","chatId":"c","wabaNumber":"918045671200","customerNumber":"919811122233","customerName":"Bench","customerId":"cu","callDirection":"INCOMING","callStatus":"END","failedReason":"","durationInSeconds":60,"callStartedAt":"2026-03-02T09:14:05.000Z","callEndedAt":"2026-03-02T09:15:05.000Z","pickedBy":"agent","rejectedBy":"","endedBy":"agent","recordingUrl":"%s","deviceId":"d"}' "$1" "$2"
}

archived() { # base
  curl -s "$1/graphql" -H 'content-type: application/json' \
    -d '{"query":"{ callStats { archivedRecordings } }"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["callStats"]["archivedRecordings"])'
}

start() { # name recordings-location -> sets PID BASE
  local p; p=$(port)
  BASE="http://127.0.0.1:$p"
  DATABASE_URL="sqlite://$WORK/$1.db?mode=rwc" CALLTRAIL_ADDR="127.0.0.1:$p" DOUBLETICK_API_KEY=$KEY \
    CALLTRAIL_RECORDINGS="$2" RUST_LOG=warn "$BIN" serve 2>>"$WORK/$1.log" &
  PID=$!
  for _ in $(seq 1 100); do curl -sf "$BASE/health" >/dev/null && return; sleep 0.1; done
  echo "server $1 did not start"; cat "$WORK/$1.log"; exit 1
}

throughput() { # name location
  start "$1" "$2"
  local t0; t0=$(date +%s.%N)
  for i in $(seq 1 "$N"); do
    call "$1_$i" "http://127.0.0.1:$MEDIA_PORT/r$i.mp3" | curl -sf -o /dev/null "$BASE/webhooks/doubletick" -H 'content-type: application/json' --data-binary @-
  done
  until [ "$(archived "$BASE")" -ge "$N" ]; do sleep 0.05; done
  local t1; t1=$(date +%s.%N)
  python3 -c "t=$t1-$t0; print(f'$1: {$N} x 1 MB archived in {t:.2f} s = {$N/t:.1f} recordings/s, {$N*1.048576/t:.1f} MB/s')"
  kill "$PID"; wait "$PID" 2>/dev/null || true
}

throughput file "file:$WORK/objects"

MOTO_PORT=$(port)
python3 -m moto.server -H 127.0.0.1 -p "$MOTO_PORT" >/dev/null 2>&1 &
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$MOTO_PORT" >/dev/null && break; sleep 0.1; done
curl -sf -X PUT "http://127.0.0.1:$MOTO_PORT/bench" >/dev/null
export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
throughput s3 "s3://bench/rec"

# The 200 MB recording, into each store: RSS growth from a cold start (the server's first
# webhook, GraphQL queries and archive job included), and from after one 1 MB recording was
# archived first (what archiving a large recording itself adds).
for target in file s3; do
  if [ $target = file ]; then loc="file:$WORK/objects-big"; else loc="s3://bench/big"; fi
  start "big_$target" "$loc"
  cold=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
  call warm_1 "http://127.0.0.1:$MEDIA_PORT/r1.mp3" | curl -sf -o /dev/null "$BASE/webhooks/doubletick" -H 'content-type: application/json' --data-binary @-
  until [ "$(archived "$BASE")" -ge 1 ]; do sleep 0.1; done
  warm=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
  call big_1 "http://127.0.0.1:$MEDIA_PORT/big.mp3" | curl -sf -o /dev/null "$BASE/webhooks/doubletick" -H 'content-type: application/json' --data-binary @-
  t0=$(date +%s.%N)
  until [ "$(archived "$BASE")" -ge 2 ]; do sleep 0.1; done
  t1=$(date +%s.%N)
  peak=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
  python3 -c "print(f'200 MB -> $target: archived in {$t1-$t0:.1f} s; RSS {$cold/1024:.1f} MiB at start, {$warm/1024:.1f} MiB after one 1 MB recording, peak {$peak/1024:.1f} MiB; growth {($peak-$cold)/1024:.1f} MiB from start, {($peak-$warm)/1024:.1f} MiB from warm')"
  kill "$PID"; wait "$PID" 2>/dev/null || true
done
