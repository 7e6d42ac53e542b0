"""One sender alternating webhooks between two calltrail servers, so that the machine's drift
(disk, CPU frequency, neighbours) falls on both alike; prints each server's latency.

usage: python3 paired.py PORT_A PORT_B REQUESTS TOKEN
"""
import http.client
import json
import pathlib
import statistics
import sys
import time

port_a, port_b, requests, token = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
fixture = pathlib.Path(__file__).resolve().parents[2] / "tests/fixtures/doubletick/events/call-ended-incoming-recorded.json"
body = json.loads(fixture.read_text())
connections = {p: http.client.HTTPConnection("127.0.0.1", p) for p in (port_a, port_b)}
latencies = {port_a: [], port_b: []}
for i in range(requests):
    # Alternate which server goes first, so neither always follows the other.
    for port in (port_a, port_b) if i % 2 == 0 else (port_b, port_a):
        body["callId"] = f"paired-{i}"
        data = json.dumps(body)
        sent = time.perf_counter()
        connections[port].request(
            "POST",
            "/webhooks/doubletick",
            data,
            {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        response = connections[port].getresponse()
        response.read()
        latencies[port].append((time.perf_counter() - sent) * 1000)
        if response.status >= 300:
            sys.exit(f"port {port} answered {response.status}")
for port in (port_a, port_b):
    xs = sorted(latencies[port])
    print(
        f"port {port}: {len(xs)} requests, p50 {xs[len(xs) // 2]:.3f} ms, mean {statistics.mean(xs):.3f}, "
        f"p90 {xs[int(len(xs) * 0.9)]:.3f}, p99 {xs[int(len(xs) * 0.99)]:.3f}"
    )
