"""The bench's parts: the load generator against a real server, the report, the baseline's weights.

No speed is asserted here (speed lives in ``make bench``); these tests check
that the harness measures what it says it measures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from bench import servers
from bench.loadgen import build_request, multipart, run_load
from bench.report import markdown, targets, write_report
from bench.workloads import batch_histogram, requests_for

ROOT = Path(__file__).resolve().parents[2]


def test_load_generator_counts_only_answered_requests_and_reads_statuses() -> None:
    command = [sys.executable, "-m", "uvicorn", "bench.trivial_app:app", "--port", "{port}", "--log-level", "warning"]
    with servers.start(command, {}, cores=None) as running:
        body, ctype = multipart([("image", "a.png", b"not really a png", "image/png")])
        good = run_load("127.0.0.1", running.port, build_request("POST", "/trivial", "x", body, ctype), 4, 0.5, 0.1)
        assert good.statuses.keys() == {200} and len(good.latencies) > 10
        assert 0 < good.percentile(50) <= good.percentile(99)
        missing = run_load("127.0.0.1", running.port, build_request("POST", "/trivial", "x", b"", ""), 2, 0.3, 0.1)
        assert missing.statuses.keys() == {422}  # no files: FastAPI's validation error, counted not hidden


def test_prebuilt_requests_are_what_the_service_accepts() -> None:
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings
    from tests.service.conftest import wait_ready

    settings = Settings(model_repository=ROOT / "models", default_model="colormnist-digit", device="cpu")
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        for name, raw in requests_for(1234).items():
            if name == "trivial":
                continue
            head, body = raw.split(b"\r\n\r\n", 1)
            lines = head.decode().split("\r\n")
            path = lines[0].split()[1]
            headers = dict(line.split(": ", 1) for line in lines[1:])
            r = client.post(path, content=body, headers={"Content-Type": headers["Content-Type"]})
            assert r.status_code == 200, (name, r.text)
            if name.startswith("encode"):
                expected = int(name[6:] or 1)
                assert len(r.json()["z1"]) == expected


def _fake_results() -> dict[str, object]:
    def rows(rps: float, p99: float) -> list[dict[str, float]]:
        return [
            {"concurrency": c, "requests_per_s": rps * c, "images_per_s": rps * c, "p50_ms": p99 / 2, "p99_ms": p99}
            for c in (1, 8, 32)
        ]

    service = {"encode": rows(100, 4), "swap": rows(50, 3), "encode64": [{**rows(10, 9)[0], "images_per_s": 640.0}]}
    ort: dict[str, object] = {
        f"{k}@{n}": {"images_per_s": 1000.0, "latency_ms_p50": 0.5, "latency_ms_p99": 1.0}
        for k in ("encode", "swap")
        for n in (1, 64)
    }
    ort["pipeline"] = {
        "swap@1": {"requests_per_s": 500.0, "images_per_s": 500.0, "latency_ms_p50": 2.0, "latency_ms_p99": 3.0},
        "encode@64": {"requests_per_s": 15.0, "images_per_s": 960.0, "latency_ms_p50": 66.0, "latency_ms_p99": 70.0},
    }
    return {
        "date": "today",
        "machine": {"cpus": 2, "processor": "x", "python": "3.11"},
        "settings": {"seconds": 1, "reps": 1, "client_core": [0], "server_cores": [1]},
        "wall_s": 1.0,
        "onnxruntime": ort,
        "trivial": {"trivial": rows(500, 1)},
        "ours_1_worker": service,
        "ours_2_workers": service,
        "pytorch_baseline": {"encode": rows(10, 30), "swap": rows(10, 40), "encode64": rows(1, 90)},
        "litserve": {"encode": rows(20, 30), "swap": rows(25, 40), "encode64": rows(1, 90)},
        "batching": {
            "on": {"requests_per_s": 300.0, "p50_ms": 1, "p99_ms": 2, "batch_size_histogram": {"1": 2.0, "8": 40.0}},
            "off": {"requests_per_s": 200.0, "p50_ms": 1, "p99_ms": 2, "batch_size_histogram": {"1": 50.0}},
        },
    }


def test_targets_are_ratios_of_the_right_figures(tmp_path: Path) -> None:
    results = _fake_results()
    checked = {t["target"]: t for t in targets(results)}
    peer = checked["/swap req/s at concurrency 8 >= 2x LitServe"]
    assert peer["ratio"] == 2.0 and peer["met"]  # 400 vs 200 req/s at concurrency 8
    ceiling = checked["/swap req/s at concurrency 8 >= 70 % of the in-process pipeline"]
    assert ceiling["ratio"] == 0.8 and ceiling["met"]  # 400 vs 500 req/s
    encode = checked["/encode of 64 images: images/s >= 70 % of the in-process pipeline for 64 images"]
    assert encode["ratio"] == 0.67 and not encode["met"]  # 640 vs 960 images/s: under 70 %
    latency = checked["/swap p99 at concurrency 1 <= in-process pipeline + trivial endpoint's p99 + 1 ms"]
    assert latency["reference"] == 4.0 and latency["margin_ms"] == -1.0 and latency["met"]  # 3 vs 2 + 1 + 1 ms
    paths = write_report(results, tmp_path)
    assert [p.name for p in paths] == ["results.json", "results.md", "results.png"]
    report = markdown(results)
    assert "| NO |" in report and "| litserve | swap | 8 | 200 |" in report and "| swap | 1 | 500.0 |" in report
    assert json.loads(paths[0].read_text())["targets"][0]["met"] is True
    del results["litserve"]  # a run with --no-peers: that target is left out, not failed
    assert all("LitServe" not in t["target"] for t in targets(results))


def test_batch_histogram_reads_one_network() -> None:
    text = (
        'twocode_batch_size_bucket{model="m",network="encoder",le="1"} 3\n'
        'twocode_batch_size_bucket{model="m",network="encoder",le="+Inf"} 7\n'
        'twocode_batch_size_bucket{model="m",network="decoder",le="1"} 99\n'
    )
    assert batch_histogram(text) == {"1": 3.0, "+Inf": 7.0}


def test_baseline_refuses_weights_of_another_model(tmp_path: Path) -> None:
    from bench.baseline_torch import load_weights

    folder = ROOT / "models" / "colormnist-digit"
    model = load_weights(folder, ROOT / "bench" / "weights" / "colormnist-digit.pt")
    state = {k: v + 0.05 * torch.randn_like(v) for k, v in model.state_dict().items()}
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(RuntimeError, match="is not the model"):
        load_weights(folder, tmp_path / "other.pt")


def test_rows_per_run_and_the_batching_report_read_the_right_figures() -> None:
    from bench.ray_batching import WORKLOADS, _with_sum, markdown, rows_per_run

    text = (
        'twocode_batch_size_bucket{model="m",network="encoder",le="+Inf"} 4\n'
        'twocode_batch_size_sum{model="m",network="encoder"} 30\n'
        'twocode_batch_size_sum{model="m",network="decoder"} 999\n'
    )
    assert rows_per_run(_with_sum(text)) == 7.5
    cell = {"requests_per_s": 1.0, "p50_ms": 2.0, "p99_ms": 3.0}
    cells = {f"{r}@{c}": dict(cell) for r, c in WORKLOADS} | {"encode@32": cell | {"encoder_rows_per_run": 7.5}}
    report = markdown({"ray": {"a": cells}, "process": {"b": cells}}, 3.0, 5)
    assert "## On Ray Serve" in report and "| a | 1.0, 2.0/3.0" in report and report.count("| 7.5 |") == 2


def test_serve_batch_app_puts_serve_batch_behind_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    serve = pytest.importorskip("ray.serve", reason="the ray extra is not installed")
    from fastapi.testclient import TestClient

    from bench.serve_batch_app import create_app
    from service.ray_batching import ServeBatcher
    from tests.service.conftest import wait_ready

    monkeypatch.setattr(serve, "get_replica_context", serve.get_replica_context)  # restored after the test
    monkeypatch.setenv("TWOCODE_MODEL_REPOSITORY", str(ROOT / "models"))
    monkeypatch.setenv("TWOCODE_DEVICE", "cpu")
    monkeypatch.setenv("TWOCODE_BATCHING", "serve")
    with TestClient(create_app()) as client:
        wait_ready(client)
        batchers = client.app.state.registry.models["colormnist-digit"].batchers  # type: ignore[attr-defined]
        assert all(isinstance(b, ServeBatcher) for b in batchers.values())
        png = sorted((ROOT / "models" / "colormnist-digit" / "examples").iterdir())[0].read_bytes()
        assert client.post("/encode", files=[("image", ("a.png", png))]).status_code == 200


def test_ab_report_gives_medians_and_ratios_per_point() -> None:
    from bench.ab import markdown

    report = markdown("abc1234", {"swap@8": {"base": 100.0, "new": 150.0, "ratio": 1.5}}, 4, 2.0)
    assert "--base abc1234" in report and "| swap@8 | 100.0 | 150.0 | 1.5 |" in report


def test_stopping_our_ray_leaves_other_processes_alone(tmp_path: Path) -> None:
    """Only processes naming our Ray temp dir or GCS port are stopped (not every Ray on the host)."""
    import subprocess
    import sys

    ours_dir = tmp_path / "ray-ours"
    # Each child says it is up: until its exec has finished, its /proc cmdline can still read empty
    # (a loaded CI machine once scanned in that window and missed it).
    sleeper = "import time; print('up', flush=True); time.sleep(60)"
    ours = subprocess.Popen([sys.executable, "-c", sleeper, f"--temp-dir={ours_dir}"], stdout=subprocess.PIPE)
    theirs = subprocess.Popen([sys.executable, "-c", sleeper, "--temp-dir=/tmp/ray-theirs"], stdout=subprocess.PIPE)
    assert ours.stdout is not None and theirs.stdout is not None
    assert ours.stdout.readline() == b"up\n" and theirs.stdout.readline() == b"up\n"
    try:
        stopped = servers.stop_our_ray(ours_dir, gcs_port=1, grace_s=5)
        assert ours.wait(timeout=5) != 0 and ours.pid in stopped
        assert theirs.poll() is None and theirs.pid not in stopped
    finally:
        theirs.kill()
        theirs.wait()


def test_a_server_is_ready_only_after_many_ready_answers_in_a_row(tmp_path: Path) -> None:
    """Two workers behind one socket, one still loading: a single ready answer is not enough."""
    import itertools
    import subprocess
    import urllib.error

    answers = itertools.chain([True, False] * 5, itertools.repeat(True))  # a half-ready pair, then ready
    calls = []

    class Server(servers.Running):
        def get(self, path: str) -> str:
            calls.append(path)
            if not next(answers):
                raise urllib.error.HTTPError(path, 503, "loading", None, None)
            return "{}"

    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        servers._wait_ready(Server(0, process, tmp_path / "log"), timeout_s=30)
    finally:
        process.kill()
        process.wait()
    assert len(calls) == 10 + servers.READY_IN_A_ROW  # the last 503 at call 10, then twenty in a row


def test_ratio_measures_both_sides_every_round_and_reports_the_median(tmp_path: Path) -> None:
    """``python -m bench.ratio`` for real, one short round: the pipeline and the service both measured."""
    import subprocess

    out = tmp_path / "ratio"
    done = subprocess.run(
        [sys.executable, "-m", "bench.ratio", "--rounds", "1", "--seconds", "0.3", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (round_,) = json.loads(out.with_suffix(".json").read_text())["rounds"]
    assert round_["pipeline"] > 0 and round_["ours"] > 0
    assert round_["ratio"] == pytest.approx(round_["ours"] / round_["pipeline"], rel=1e-3)
    assert f"Median {round_['ratio']:.2f}" in out.with_suffix(".md").read_text()
