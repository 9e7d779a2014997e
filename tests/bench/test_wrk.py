"""bench/wrk.py: the request travels intact to wrk, and wrk's report is read right."""

from __future__ import annotations

import sys

import pytest

from bench import servers, wrk
from bench.loadgen import multipart
from tests.serving import ROOT

SAMPLE = """Running 4s test @ http://127.0.0.1:1/swap
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    12.63ms    4.10ms  40.1ms   80.00%
  Latency Distribution
     50%   12.63ms
     75%   14.10ms
     90%   16.02ms
     99%  850.00us
  2462 requests in 4.00s, 1.90MB read
  Non-2xx or 3xx responses: 3
Requests/sec:    615.61
Transfer/sec:    486.00KB
"""


def test_the_report_is_parsed_with_units() -> None:
    result = wrk.parse(SAMPLE)
    assert result.requests_per_s == 615.61 and result.requests == 2462 and result.errors == 3
    assert result.p50_ms == 12.63 and result.p99_ms == 0.85


def test_binary_bodies_are_escaped_byte_for_byte() -> None:
    script = wrk.lua_script("POST", b'\x00\xff"\\a', "multipart/form-data; boundary=x")
    assert 'wrk.body = "\\000\\255\\034\\092\\097"' in script and 'wrk.method = "POST"' in script


@pytest.mark.skipif(wrk.WRK is None, reason="wrk is not installed (apt-get install wrk): the live wrk test NOT run")
def test_wrk_posts_real_swaps_that_the_service_answers() -> None:
    first, second = sorted((ROOT / "models" / "colormnist-digit" / "examples").glob("*.png"))[:2]
    body, ctype = multipart(
        [
            ("z1_image", "a.png", first.read_bytes(), "image/png"),
            ("z2_image", "b.png", second.read_bytes(), "image/png"),
        ]
    )
    command, env = servers.ours()
    with servers.start(command, env, cores=None) as running:
        result = wrk.run_wrk(f"http://127.0.0.1:{running.port}/swap", body, ctype, concurrency=2, seconds=1)
        metrics = running.get("/metrics")
    assert result.errors == 0 and result.requests > 10  # every swap answered 2xx
    assert 'route="/swap",status="200"' in metrics


@pytest.mark.skipif(wrk.WRK is None, reason="wrk is not installed (apt-get install wrk): the live wrk test NOT run")
def test_the_bench_measures_with_wrk_and_refuses_failed_requests() -> None:
    from bench.workloads import Workload, measure, workloads

    command = [sys.executable, "-m", "uvicorn", "bench.trivial_app:app", "--port", "{port}", "--log-level", "warning"]
    with servers.start(command, {}, cores=None) as running:
        point = measure(running.port, workloads()["trivial"], concurrency=2, seconds=1, reps=1)
        assert point["client"] == "wrk" and point["requests"] > 10 and point["p50_ms"] <= point["p99_ms"]
        with pytest.raises(RuntimeError, match="failed requests"):
            measure(running.port, Workload("/trivial", b"", "text/plain"), concurrency=2, seconds=1, reps=1)
