#!/usr/bin/env bash
# Screenshots of every desk page over 1M seeded calls (docs/desk.md, README): calltrail seeds
# the calls, serves a real 4 s MP3 as one call's recording link so that call's player has an
# archived recording, and tests/node/screenshots.mjs drives headless Chromium through the pages.
# Needs a release build (`cargo build --release`), python3, node 20 with `npm ci --prefix
# tests/node`, and Debian's Chromium at /usr/bin/chromium.
# Usage: bash docs/screenshots/make.sh   (CALLS=1000000; DESK_DB=file.db reuses a seeded SQLite
# file, seeding it first when it is missing; CALLTRAIL_BIN=another binary)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${CALLTRAIL_BIN:-target/release/calltrail}
CALLS=${CALLS:-1000000}
WORK=$(mktemp -d /tmp/calltrail-shots.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

DB_FILE=${DESK_DB:-$WORK/desk.db}
DB="sqlite://$DB_FILE?mode=rwc"
if [ ! -s "$DB_FILE" ]; then
  DATABASE_URL=$DB RUST_LOG=warn "$BIN" seed --calls "$CALLS"
fi

# A real MP3: 4 s of silence, MPEG-1 Layer III frames (as tests/kit/media.rs makes them).
mkdir -p "$WORK/media"
python3 - "$WORK/media/rec.mp3" <<'PY'
import sys
frame = bytes([0xFF, 0xFB, 0x90, 0xC0]) + bytes(417 - 4)
open(sys.argv[1], "wb").write(frame * ((4 * 44100 + 1151) // 1152))
PY
MEDIA_PORT=$(port)
(cd "$WORK/media" && exec python3 -m http.server "$MEDIA_PORT" --bind 127.0.0.1 >/dev/null 2>&1) &

REVIEWER=$(DATABASE_URL=$DB RUST_LOG=warn "$BIN" keys create --name "compliance desk" --role reviewer | tail -1)
ANALYST=$(DATABASE_URL=$DB RUST_LOG=warn "$BIN" keys create --name "BI analyst" --role analyst | tail -1)
PORT=$(port)
BASE="http://127.0.0.1:$PORT"
DATABASE_URL=$DB CALLTRAIL_ADDR="127.0.0.1:$PORT" DOUBLETICK_API_KEY=shots \
  CALLTRAIL_RECORDINGS="file:$WORK/objects" RUST_LOG=warn "$BIN" serve 2>"$WORK/serve.log" &
for _ in $(seq 1 100); do curl -sf "$BASE/health" >/dev/null && break; sleep 0.1; done

AGENT=919700000001
DAY=$(date -u -d '10 days ago' +%F)
CALL=desk_example_call
curl -sf -o /dev/null "$BASE/webhooks/doubletick" -H 'content-type: application/json' --data-binary @- <<JSON
{"event":"CALL_ENDED","callId":"$CALL","chatMessageId":"msg_1","chatId":"chat_1","wabaNumber":"918045671200",
 "customerNumber":"+91 98111-22233","customerName":"Meera Iyer","customerId":"customer_Qm3Tz8Lp2v",
 "callDirection":"INCOMING","callStatus":"END","failedReason":"","durationInSeconds":20,
 "callStartedAt":"${DAY}T05:29:40.000Z","callEndedAt":"${DAY}T05:30:00.000Z","pickedBy":"$AGENT",
 "rejectedBy":"","endedBy":"$AGENT","recordingUrl":"http://127.0.0.1:$MEDIA_PORT/rec.mp3","deviceId":"device_7c1a90"}
JSON
for _ in $(seq 1 200); do
  state=$(curl -s "$BASE/graphql" -H "authorization: Bearer $REVIEWER" -H 'content-type: application/json' \
    -d "{\"query\":\"{ call(callId: \\\"$CALL\\\") { recording { state } } }\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["call"]["recording"]["state"])')
  [ "$state" = ARCHIVED ] && break
  sleep 0.1
done
echo "recording of $CALL: $state"

CALLTRAIL_URL=$BASE REVIEWER_KEY=$REVIEWER ANALYST_KEY=$ANALYST CALL_ID=$CALL AGENT=$AGENT DAY=$DAY \
  CUSTOMER='+91 90000-00037' OUT=docs/screenshots node tests/node/screenshots.mjs
