#!/usr/bin/env bash
# The calls export against the database's own export of the same columns, side by side.
#
#   benches/exports/compare.sh BINARY sqlite|postgres CALLS [ROUNDS]
#
# Seeds CALLS calls (`calltrail seed --seed 1`) into a fresh database, starts BINARY on it, then
# ROUNDS times (default 3) alternates: `GET /export/calls.csv` (every column, then the summary
# columns) through curl, and `sqlite3 -csv` / `psql \copy ... to stdout csv` of the same columns.
# Prints wall time, rows/s, bytes and the server's peak RSS. Drops the database at the end.
# With CEILING set to the built `export_ceiling` bench (`cargo bench --bench export_ceiling
# --no-run` names it), each round also reads the six columns through the driver alone.
set -euo pipefail
binary=$(realpath "$1"); backend=$2; calls=$3; rounds=${4:-3}
admin=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
case $backend in
  sqlite) url="sqlite://$work/bench.db?mode=rwc" ;;
  postgres)
    db=calltrail_bench_export
    psql -q "$admin" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
    url="${admin%/*}/$db" ;;
  *) echo "backend: sqlite or postgres" >&2; exit 2 ;;
esac
cleanup() {
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
  wait 2>/dev/null || true
  [ "$backend" = postgres ] && psql -q "$admin" -c "DROP DATABASE IF EXISTS $db" || true
  rm -rf "$work"
}
trap cleanup EXIT

DATABASE_URL=$url RUST_LOG=warn "$binary" seed --calls "$calls" --seed 1 --without-events >/dev/null
# The seed writes its calls in random end-time order; webhooks write them as the calls end, so a
# real table's rows lie on disk in end-time order. On PostgreSQL an export (a keyset page after
# another in `ended_at` order) reads the table's pages in that order: from the seed's random
# order every row is another page read (40 ms a page of 2 000 instead of 2 ms at 1M calls).
# CLUSTER puts the seeded rows where webhooks would have. (SQLite's rows are kept in id order,
# which the seed cannot change without other ids; its export and sqlite3's own read them alike.)
if [ "$backend" = postgres ]; then
  psql -q "$url" -c "CLUSTER calls USING idx_calls_ended_at_covering" -c "ANALYZE calls"
fi
DATABASE_URL=$url CALLTRAIL_ADDR=127.0.0.1:$port RUST_LOG=warn "$binary" serve 2>"$work/server.log" &
server=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done

all="call_id, status, direction, customer_id, customer_name, customer_number, waba_number, picked_by, ended_by, rejected_by, device_id, chat_id, chat_message_id, channel, channel_number, pstn_from, pstn_to, failed_reason, started_at, ended_at, duration_seconds, recording_url, is_new_caller, is_chat_assigned, not_picked_count, anomalies, received_at, updated_at, revision, raw_content_type, raw_payload"
summary="call_id, ended_at, duration_seconds, picked_by, direction, waba_number"
summary_fields="callId,endedAt,durationSeconds,pickedBy,direction,wabaNumber"
order="ORDER BY ended_at DESC, id DESC"

timed() { # label, command...: prints label, seconds, bytes
  local label=$1; shift
  local start end bytes
  start=$(date +%s.%N)
  bytes=$("$@" | wc -c)
  end=$(date +%s.%N)
  python3 -c "import sys; s=$end-$start; print(f'{sys.argv[1]:<34} {s:7.2f} s  {$calls/s:>9,.0f} rows/s  {$bytes/1e6:8.1f} MB')" "$label"
}
db_export() { # columns
  case $backend in
    sqlite) sqlite3 -csv -header "$work/bench.db" "SELECT $1 FROM calls $order" ;;
    postgres) psql -q "$url" -c "\\copy (SELECT $1 FROM calls $order) to stdout csv header" ;;
  esac
}
echo "$backend, $calls calls, $(nproc) cores, $(date -u +%FT%TZ)"
for round in $(seq 1 "$rounds"); do
  echo "round $round"
  timed "calltrail calls.csv, every column" curl -sf "http://127.0.0.1:$port/export/calls.csv"
  timed "database's own, every column" db_export "$all"
  timed "calltrail calls.csv, 6 columns" curl -sf "http://127.0.0.1:$port/export/calls.csv?fields=$summary_fields"
  timed "database's own, 6 columns" db_export "$summary"
  [ -n "${CEILING:-}" ] && DATABASE_URL=$url "$CEILING"
  timed "calltrail calls.ndjson, every column" curl -sf "http://127.0.0.1:$port/export/calls.ndjson"
done
echo "server peak RSS: $(grep VmHWM /proc/$server/status | awk '{print $2/1024 " MiB"}')"
