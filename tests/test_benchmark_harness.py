"""The benchmarks' reading of wrk's report (pure parsing, no load)."""

from __future__ import annotations

from benchmarks.harness import parse_wrk

REPORT = """\
Running 10s test @ http://127.0.0.1:41234/auth/login
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   290.52ms   59.99ms 500.00ms   71.50%
    Req/Sec    27.43     10.02    50.00     62.99%
  Latency Distribution
     50%  287.11ms
     75%  320.40ms
     90%  370.02ms
     99%    1.20s
  274 requests in 10.01s, 120.35KB read
  Non-2xx or 3xx responses: 2
Requests/sec:     27.37
Transfer/sec:     12.02KB
"""


def test_percentiles_come_from_the_distribution_not_from_a_spread_ending_in_50_percent() -> None:
    result = parse_wrk(REPORT)
    assert (result.p50_ms, result.p99_ms) == (287.11, 1200.0)
    assert (result.requests_per_second, result.requests, result.errors) == (27.37, 274, 2)
