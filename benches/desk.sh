#!/usr/bin/env bash
# Reviewer desk: the server time of each page over 1M seeded calls. Seeds the calls (unless
# DESK_DB names an SQLite file already seeded), signs in with a reviewer key like a browser
# (cookie and CSRF token), then asks each page N times (5 if it takes over a second) after 3
# warm-ups and prints p50, p95 and max of curl's time_total (the request sent until the last
# byte, over loopback) as a Markdown table. Every page writes its access-log row before it answers: that commit is part
# of each figure. Needs a release build (`cargo build --release`), curl and python3.
# Usage: bash benches/desk.sh [N]   (CALLS=1000000; DATABASE_URL=postgres://... for
# PostgreSQL, dropped and seeded afresh; DESK_DB=file.db; CALLTRAIL_BIN=another binary)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-50}
BIN=${CALLTRAIL_BIN:-target/release/calltrail}
CALLS=${CALLS:-1000000}
WORK=$(mktemp -d /tmp/calltrail-desk-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if [ -n "${DATABASE_URL:-}" ]; then
  DB=$DATABASE_URL
  name=${DB##*/}; name=${name%%\?*}
  psql "${DB%/*}/postgres" -qc "DROP DATABASE IF EXISTS \"$name\"" >/dev/null
  DATABASE_URL=$DB RUST_LOG=warn "$BIN" seed --calls "$CALLS"
else
  DB_FILE=${DESK_DB:-$WORK/desk.db}
  DB="sqlite://$DB_FILE?mode=rwc"
  if [ ! -s "$DB_FILE" ]; then DATABASE_URL=$DB RUST_LOG=warn "$BIN" seed --calls "$CALLS"; fi
fi
KEY=$(DATABASE_URL=$DB RUST_LOG=warn "$BIN" keys create --name "desk bench" --role reviewer | tail -1)
PORT=$(port)
BASE="http://127.0.0.1:$PORT"
DATABASE_URL=$DB CALLTRAIL_ADDR="127.0.0.1:$PORT" RUST_LOG=warn "$BIN" serve 2>"$WORK/serve.log" &
for _ in $(seq 1 100); do curl -sf "$BASE/health" >/dev/null && break; sleep 0.1; done

JAR=$WORK/cookies
curl -sf -c "$JAR" -b "$JAR" "$BASE/" >"$WORK/sign-in.html"
CSRF=$(grep -o 'name="csrf" value="[^"]*"' "$WORK/sign-in.html" | head -1 | sed 's/.*value="//; s/"$//')
signed=$(curl -s -c "$JAR" -b "$JAR" -o /dev/null -w '%{http_code}' "$BASE/sign-in" \
  --data-urlencode "key=$KEY" --data-urlencode "csrf=$CSRF")
[ "$signed" = 303 ] || { echo "sign-in answered $signed"; exit 1; }

TZ_Q='tz=Asia%2FKolkata'
TODAY=$(date -u +%F)
MONTH_AGO=$(date -u -d '30 days ago' +%F)
DAY=$(date -u -d '10 days ago' +%F)
CALL=seed1_000500000
GQL="{\"query\":\"{ call(callId: \\\"$CALL\\\") { callId customerName } }\"}"
pages=(
  "baseline: GraphQL call by id with its access-log row|/graphql|bearer"
  "sign-in page (signed out)|/|none"
  "find: every call, newest first|/calls?$TZ_Q|jar"
  "find: one customer, number as typed|/calls?customer=%2B91+90000-00037&$TZ_Q|jar"
  "find: one agent, 30 days|/calls?agent=919700000001&from=$MONTH_AGO&to=$TODAY&$TZ_Q|jar"
  "find: short calls not yet reviewed, oldest first|/calls?length=short&unreviewed=1&sort=oldest&$TZ_Q|jar"
  "find: customer name contains \"customer 4242\"|/calls?name=customer+4242&$TZ_Q|jar"
  "find: customer name contains \"customer 4\" (common: over 200 customers)|/calls?name=customer+4&$TZ_Q|jar"
  "find: customer name contains \"customer 4242\", 30 days|/calls?name=customer+4242&from=$MONTH_AGO&to=$TODAY&$TZ_Q|jar"
  "a call|/calls/$CALL?$TZ_Q|jar"
  "an agent's day|/agents/919700000001/$DAY?$TZ_Q|jar"
  "review queue|/queue?$TZ_Q|jar"
)
echo "| page | status | runs | p50 ms | p95 ms | max ms |"
echo "|---|---|---|---|---|---|"
for entry in "${pages[@]}"; do
  IFS='|' read -r label path auth <<<"$entry"
  cookies=()
  [ "$auth" = jar ] && cookies=(-b "$JAR")
  if [ "$auth" = bearer ]; then
    cookies=(-H "authorization: Bearer $KEY" -H 'content-type: application/json' --data-binary "$GQL")
  fi
  status=$(curl -s -o /dev/null -w '%{http_code}' "${cookies[@]}" "$BASE$path")
  for _ in 1 2; do curl -s -o /dev/null "${cookies[@]}" "$BASE$path"; done
  warm=$(curl -s -o /dev/null -w '%{time_total}' "${cookies[@]}" "$BASE$path")
  runs=$N
  # A page slower than a second is asked 5 times, not N.
  python3 -c "import sys; sys.exit(0 if float('$warm') > 1 else 1)" && runs=5
  for _ in $(seq 1 "$runs"); do
    curl -s -o /dev/null -w '%{time_total}\n' "${cookies[@]}" "$BASE$path"
  done >"$WORK/times"
  python3 - "$label" "$status" "$WORK/times" <<'PY'
import sys
label, status, path = sys.argv[1:4]
t = sorted(float(x) * 1000 for x in open(path))
pick = lambda q: t[min(len(t) - 1, int(q * len(t)))]
print(f"| {label} | {status} | {len(t)} | {pick(0.5):.1f} | {pick(0.95):.1f} | {t[-1]:.1f} |")
PY
done
