"""The benchmarks' pure logic: reading wrk's report, judging rounds (no load)."""

from __future__ import annotations

from benchmarks.harness import Rounds, parse_wrk

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


def test_rounds_judge_the_median_of_the_ratios_and_report_their_span() -> None:
    # Each round's ratio is against its own baseline: the rounds' ratios are 0.5, 0.4 and
    # 0.6, so the median ratio is 0.5, not the ratio of the medians (20 / 50 = 0.4).
    rounds = Rounds(values=[20.0, 20.0, 30.0], baselines=[40.0, 50.0, 50.0])
    assert rounds.ratios == [0.5, 0.4, 0.6]
    assert (rounds.ratio, rounds.value, rounds.baseline) == (0.5, 20.0, 50.0)
    assert (
        rounds.spread(percent=True) == "the median of 3 rounds, whose ratios spanned 40.0% to 60.0%"
    )
    assert rounds.spread(percent=False).endswith("spanned 0.40x to 0.60x")


def test_each_tracing_setting_is_compared_with_the_runs_with_tracing_off_either_side() -> None:
    from benchmarks.tracing import chain

    # The machine slows from 100 to 60 over the round; each setting costs half its rate. A
    # baseline from the round's start would put the second at 35 / 100 = 35%.
    offs = iter([100.0, 80.0, 60.0])
    calls: list[str] = []

    def rate(mode: str) -> float:
        calls.append(mode)
        return next(offs) if mode == "off" else {"first": 45.0, "second": 35.0}[mode]

    rounds = {"first": Rounds([], []), "second": Rounds([], [])}
    chain(("first", "second"), rate, rounds)
    assert calls == ["off", "first", "off", "second", "off"]
    assert (rounds["first"].baselines, rounds["second"].baselines) == ([90.0], [70.0])
    assert rounds["first"].ratios == rounds["second"].ratios == [0.5]


def test_a_section_measured_again_replaces_its_own_and_says_when() -> None:
    from benchmarks.__main__ import splice

    results = "# Benchmark results\n\nintro\n\n## A\n\nold a\n\n## B\n\nold b\n"
    again = splice(results, ["## A", "", "new a"])
    assert "old a" not in again and "old b" in again
    assert again.index("new a") < again.index("## B")
    assert "This section was measured" in again.split("## B")[0]
    added = splice(again, ["## C", "", "c"])
    assert added.startswith(again.rstrip("\n")) and added.endswith("c\n")
    last = splice(results, ["## B", "", "new b"])
    assert last.endswith("new b\n") and "old a" in last


def test_a_section_in_rounds_keeps_each_rows_median_round_and_judges_it() -> None:
    from benchmarks.auth import Row, in_rounds

    figures = iter([(0.20, 9.0), (0.40, 30.0), (0.30, 12.0)])

    def once() -> list[Row]:
        ratio, p99 = next(figures)
        return [
            Row("writes (req/s)", "100", "bare 400", f"{ratio:.0%}", ">= 25%", ratio >= 0.25),
            Row("p99 (ms)", f"{p99:.1f}", "p50 3 ms", "-", "< 20", p99 < 20),
        ]

    writes, p99 = in_rounds(once, 3)
    assert (writes.ratio, writes.met) == ("30%", True)  # the rounds' 20% would have failed
    assert writes.baseline == "bare 400; the median of 3 rounds, whose ratios spanned 20% to 40%"
    assert (p99.value, p99.met) == ("12.0", True)
    assert p99.baseline.endswith("whose values spanned 9.0 to 30.0")


def test_a_row_is_judged_on_what_its_target_names() -> None:
    from benchmarks.auth import Row

    ratio = Row("logins", "29", "raw 31", "96%", ">= 85%", True)
    value = Row("1000 students to Ready (s)", "5.1", "bare 3.6 s", "1.40x", "< 30 s", True)
    shown = Row("writes", "1020", "bare 14000", "4%", "-", True)
    floor = Row("drain (events/s)", "11670", "bare 296220", "4%", ">= 1,000", True)
    assert [row.judged for row in (ratio, value, shown, floor)] == [96.0, 5.1, 4.0, 11670.0]
