#!/usr/bin/env bash
# Paired latency of one GraphQL page (the first 50 calls, six fields) from two calltrail
# binaries serving the same seeded SQLite file, requests interleaved (which goes first
# alternates), one keep-alive connection each, the first 200 of each dropped:
#   bash benches/paired/pages.sh BIN_A BIN_B [CALLS] [REQUESTS]
set -euo pipefail
A=$(realpath "$1"); B=$(realpath "$2"); CALLS=${3:-100000}; N=${4:-4000}
WORK=$(mktemp -d /tmp/calltrail-pages.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
export DATABASE_URL="sqlite://$WORK/pages.db?mode=rwc" RUST_LOG=warn
"$A" seed --calls "$CALLS" --seed 1 >/dev/null
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PA=$(port); PB=$(port)
"$A" serve --addr "127.0.0.1:$PA" >/dev/null 2>&1 &
sleep 1
"$B" serve --addr "127.0.0.1:$PB" >/dev/null 2>&1 &
for p in "$PA" "$PB"; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$p/health" >/dev/null && break; sleep 0.1; done
done
python3 - "$PA" "$PB" "$N" <<'PY'
import http.client, statistics, sys, time
q = b'{"query":"{ calls(first: 50) { nodes { callId customerName customerNumber durationSeconds endedAt anomalies } } }"}'
ports = {"A": int(sys.argv[1]), "B": int(sys.argv[2])}
conns = {k: http.client.HTTPConnection("127.0.0.1", p) for k, p in ports.items()}
times = {k: [] for k in ports}
for i in range(int(sys.argv[3])):
    for k in ("A", "B") if i % 2 == 0 else ("B", "A"):
        start = time.perf_counter()
        conns[k].request("POST", "/graphql", q, {"content-type": "application/json"})
        conns[k].getresponse().read()
        times[k].append((time.perf_counter() - start) * 1000)
for k, v in times.items():
    v = sorted(v[200:])
    print(f"{k}: p50 {v[len(v) // 2]:.3f} ms, p90 {v[int(len(v) * 0.9)]:.3f}, mean {statistics.mean(v):.3f}")
PY
