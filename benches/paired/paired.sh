#!/bin/bash
# Paired latency of two calltrail binaries for a lone sender (see BENCHMARKS.md):
#   benches/paired/paired.sh BIN_A BIN_B sqlite|postgres [REQUESTS]
# Each binary serves its own fresh database (SQLite files under /tmp, or PostgreSQL databases
# paired_a / paired_b at BENCH_PG_URL's server); both are dropped afterwards.
set -euo pipefail
A=$1; B=$2; BACKEND=$3; N=${4:-2000}
HERE=$(cd "$(dirname "$0")" && pwd)
TOKEN=paired-bench-token-0123456789
ADMIN=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
cleanup() {
  kill "${PA:-}" "${PB:-}" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ "$BACKEND" = postgres ]; then
    for d in a b; do psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS paired_$d" 2>/dev/null; done
  else
    rm -f /tmp/calltrail_paired_[ab].db*
  fi
}
trap cleanup EXIT
if [ "$BACKEND" = postgres ]; then
  for d in a b; do psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS paired_$d" -c "CREATE DATABASE paired_$d" 2>/dev/null; done
  URL_A="${ADMIN%/*}/paired_a"; URL_B="${ADMIN%/*}/paired_b"
else
  rm -f /tmp/calltrail_paired_[ab].db*
  URL_A="sqlite:///tmp/calltrail_paired_a.db?mode=rwc"; URL_B="sqlite:///tmp/calltrail_paired_b.db?mode=rwc"
fi
CALLTRAIL_WEBHOOK_TOKEN=$TOKEN RUST_LOG=warn "$A" serve --addr 127.0.0.1:18081 --database-url "$URL_A" >/dev/null 2>&1 & PA=$!
CALLTRAIL_WEBHOOK_TOKEN=$TOKEN RUST_LOG=warn "$B" serve --addr 127.0.0.1:18082 --database-url "$URL_B" >/dev/null 2>&1 & PB=$!
for _ in $(seq 100); do
  curl -sf 127.0.0.1:18081/health >/dev/null && curl -sf 127.0.0.1:18082/health >/dev/null && break
  sleep 0.2
done
echo "A = $A on :18081, B = $B on :18082, $BACKEND"
python3 "$HERE/paired.py" 18081 18082 "$N" "$TOKEN"
