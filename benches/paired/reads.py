"""Two read benchmarks against running calltrail servers (see BENCHMARKS.md, "Reads").

usage:
  python3 reads.py contention PORT TOKEN SECONDS [KEY]
      8 clients loop a heavy callStats (per agent per New York day with a percentile, bounds off
      the rollup grid) while one sender posts a webhook every 20 ms; prints the webhooks' p50/p99
      with and without the readers, and any non-2xx.
  python3 reads.py access-log PORT_LOGGED KEY PORT_OPEN REQUESTS
      the same identity-returning query alternately to a server where it is authenticated (so
      written to the access log before it is answered) and to one with no keys (open loopback,
      not logged); prints each one's latency.
"""
import http.client
import json
import statistics
import sys
import threading
import time
import uuid

HEAVY = {
    "query": "query($from: DateTime!) { callStats(groupBy: [PICKED_BY, DAY], timeZone: \"America/New_York\", "
    "filter: { endedAt: { from: $from } }) { groups { stats { count p90: durationPercentile(p: 0.9) } } } }",
    "variables": {"from": "2000-01-01T00:00:07Z"},
}
IDENTITY = {"query": "query Page { calls(first: 20) { nodes { callId customerName customerNumber } } }"}


def post(conn, path, body, headers):
    started = time.perf_counter()
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **headers})
    response = conn.getresponse()
    response.read()
    return response.status, (time.perf_counter() - started) * 1000


def webhook_body(i, run):
    return {
        "event": "CALL_ENDED", "callId": f"bench-{run}-{i}", "chatMessageId": f"m{i}", "chatId": "c",
        "wabaNumber": "918045671200", "customerNumber": f"9198{i:08}", "customerName": "Bench",
        "customerId": f"cust{i}", "callDirection": "INCOMING", "callStatus": "END", "failedReason": "",
        "durationInSeconds": 42, "callStartedAt": "2026-11-30T10:00:00.000Z",
        "callEndedAt": "2026-11-30T10:00:42.000Z", "pickedBy": "agent", "rejectedBy": "",
        "endedBy": "agent", "recordingUrl": "", "deviceId": "d",
    }


def steady_webhooks(port, token, seconds):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    run = uuid.uuid4().hex[:8]
    latencies, bad, i = [], 0, 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        tick = time.monotonic()
        status, ms = post(conn, "/webhooks/doubletick", webhook_body(i, run), {"Authorization": f"Bearer {token}"})
        latencies.append(ms)
        bad += status // 100 != 2
        i += 1
        time.sleep(max(0.0, 0.020 - (time.monotonic() - tick)))
    return latencies, bad


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round((len(values) - 1) * p))]


def contention(port, token, seconds, key):
    alone, bad_alone = steady_webhooks(port, token, 5)
    stop = threading.Event()
    reads = [0]
    headers = {"Authorization": f"Bearer {key}"} if key else {}

    def reader():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while not stop.is_set():
            status, _ = post(conn, "/graphql", HEAVY, headers)
            reads[0] += status == 200

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    loaded, bad = steady_webhooks(port, token, seconds)
    stop.set()
    for t in threads:
        t.join()
    print(f"alone: {len(alone)} webhooks, p50 {pct(alone, .5):.1f} ms, p99 {pct(alone, .99):.1f} ms, {bad_alone} not 2xx")
    print(f"with 8 readers ({reads[0]} heavy reads answered): {len(loaded)} webhooks, "
          f"p50 {pct(loaded, .5):.1f} ms, p99 {pct(loaded, .99):.1f} ms, {bad} not 2xx")


def access_log(port_logged, key, port_open, requests):
    logged = http.client.HTTPConnection("127.0.0.1", port_logged)
    opened = http.client.HTTPConnection("127.0.0.1", port_open)
    times = {"logged": [], "open": []}
    for i in range(requests):
        order = [("logged", logged, {"Authorization": f"Bearer {key}"}), ("open", opened, {})]
        for name, conn, headers in order if i % 2 == 0 else order[::-1]:
            status, ms = post(conn, "/graphql", IDENTITY, headers)
            assert status == 200, status
            times[name].append(ms)
    for name, values in times.items():
        print(f"{name}: p50 {statistics.median(values):.3f} ms, p99 {pct(values, .99):.3f} ms over {len(values)}")


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "contention":
        contention(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else None)
    else:
        access_log(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
