from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.service.conftest import decode_concurrently, make_client, parse_metrics, running_app, wait_ready
from tests.service.images import png_bytes


def test_healthz_answers_without_models(repo: Path) -> None:
    client = TestClient(create_app(Settings(model_repository=repo, device="cpu")))  # no lifespan: nothing loaded
    assert client.get("/healthz").status_code == 200


def test_readyz_is_503_before_loading_and_200_after(repo: Path) -> None:
    app = create_app(Settings(model_repository=repo, default_model="tiny-a", device="cpu"))
    r = TestClient(app).get("/readyz")  # lifespan not run: models not loaded
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    with TestClient(app) as client:
        wait_ready(client)
        body = client.get("/readyz").json()
        assert body["status"] == "ready" and body["models"] == ["tiny-a", "tiny-b"]


def test_inference_before_ready_is_503(repo: Path) -> None:
    client = TestClient(create_app(Settings(model_repository=repo, default_model="tiny-a", device="cpu")))
    r = client.post("/encode", files=[("image", ("a.png", png_bytes(0), "image/png"))])
    assert r.status_code == 503 and "loading" in r.json()["detail"]


def test_models_lists_manifest_facts_and_provider(client: TestClient) -> None:
    body = client.get("/models").json()
    assert body["default_model"] == "tiny-a"
    names = [m["name"] for m in body["models"]]
    assert names == ["tiny-a", "tiny-b"]
    first = body["models"][0]
    assert first["provider"] == "CPUExecutionProvider"
    assert first["input_shape"] == [3, 32, 32] and first["z1_dim"] == 4 and first["specified_factors"] == ["digit"]
    assert client.get("/models/tiny-b").json()["z2_dim"] == 5


def test_model_with_wrong_hash_is_refused_while_others_serve(repo: Path) -> None:
    data = bytearray((repo / "tiny-b" / "decoder.onnx").read_bytes())
    data[100] ^= 0xFF
    (repo / "tiny-b" / "decoder.onnx").write_bytes(bytes(data))
    with make_client(repo) as client:
        wait_ready(client)
        body = client.get("/models").json()
        assert [m["name"] for m in body["models"]] == ["tiny-a"]
        assert "SHA-256" in body["refused"]["tiny-b"]
        r = client.post("/encode?model=tiny-b", files=[("image", ("a.png", png_bytes(0), "image/png"))])
        assert r.status_code == 404
        assert client.post("/encode", files=[("image", ("a.png", png_bytes(0), "image/png"))]).status_code == 200


def test_metrics_text_parses_and_counts_requests(client: TestClient) -> None:
    client.post("/encode", files=[("image", ("a.png", png_bytes(0), "image/png"))])
    client.post("/decode", json={"z1": [0] * 4, "z2": [0] * 3})
    client.post("/encode?model=nope", files=[("image", ("a.png", png_bytes(0), "image/png"))])
    samples = parse_metrics(client.get("/metrics").text)
    assert samples['twocode_requests_total{method="POST",route="/encode",status="200"}'] == 1
    assert samples['twocode_requests_total{method="POST",route="/encode",status="404"}'] == 1
    assert samples['twocode_batch_size_count{model="tiny-a",network="encoder"}'] >= 1
    assert samples['twocode_inference_seconds_count{model="tiny-a",network="decoder"}'] >= 1
    assert samples["twocode_models_loaded"] == 2
    assert 'twocode_request_duration_seconds_bucket{le="+Inf",route="/decode"}' in samples
    assert samples["process_resident_memory_bytes"] > 0  # process metrics beside the service's


def test_responses_carry_a_request_id(client: TestClient) -> None:
    assert len(client.get("/healthz").headers["x-request-id"]) == 32
    assert client.get("/healthz", headers={"X-Request-ID": "abc-1"}).headers["x-request-id"] == "abc-1"


def test_device_cuda_without_the_provider_fails_start_up(repo: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    app = create_app(Settings(model_repository=repo, device="cuda"))
    with pytest.raises(Exception, match="onnxruntime-gpu"), TestClient(app):
        pass


def test_openapi_describes_the_image_responses(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    swap = spec["paths"]["/swap"]["post"]
    assert "image/png" in swap["responses"]["200"]["content"]
    assert "multipart/form-data" in swap["requestBody"]["content"]
    assert client.get("/docs").status_code == 200


@pytest.mark.anyio
async def test_concurrent_requests_are_coalesced_into_fewer_runs(repo: Path) -> None:
    async with running_app(repo, max_queue_delay_ms=200.0, max_batch_size=64) as (app, http):
        n = 16
        results = await decode_concurrently(http, n)
        assert all(r.status_code == 200 for r in results)
        assert len({r.content for r in results}) > 1  # each request got its own row back
        batcher = app.state.registry.models["tiny-a"].batchers["decoder"]
        assert batcher.runs < n
        metrics = parse_metrics((await http.get("/metrics")).text)
        runs = metrics['twocode_batch_size_count{model="tiny-a",network="decoder"}']
        rows = metrics['twocode_batch_size_sum{model="tiny-a",network="decoder"}']
        assert runs == batcher.runs and rows == n and rows / runs > 1


@pytest.mark.anyio
async def test_full_queue_answers_503_with_retry_after(repo: Path) -> None:
    async with running_app(repo, max_queue_delay_ms=300.0, max_batch_size=64, max_queue_size=4) as (_, http):
        results = await decode_concurrently(http, 8)
        codes = sorted(r.status_code for r in results)
        assert codes.count(200) == 4 and codes.count(503) == 4
        refused = next(r for r in results if r.status_code == 503)
        assert refused.headers["retry-after"] == "1" and "queue is full" in refused.json()["detail"]


@pytest.mark.anyio
@pytest.mark.parametrize("prefix", ["", "/twocode"], ids=["at-root", "under-a-route-prefix"])
async def test_over_the_concurrency_bound_answers_503(repo: Path, prefix: str) -> None:
    """Also when a proxy mounts the app under a prefix (Ray Serve's route_prefix): the bound still applies."""
    async with running_app(repo, max_queue_delay_ms=300.0, max_concurrency=2) as (app, http):
        if prefix:
            http = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, root_path=prefix), base_url=f"http://t{prefix}"
            )
        results = await decode_concurrently(http, 5)
        codes = [r.status_code for r in results]
        assert codes.count(200) == 2 and codes.count(503) == 3
        assert all(r.headers.get("retry-after") == "1" for r in results if r.status_code == 503)
        assert (await http.get("/healthz")).status_code == 200


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize(("pixels", "rows"), [(8_192, 8), (1_500, 1), (0, 0)])
def test_small_cpu_runs_stay_on_the_event_loop_as_configured(repo: Path, pixels: int, rows: int) -> None:
    """inline_run_pixels becomes each batcher's row bound from the model's image size (tiny-a: 32x32)."""
    with make_client(repo, inline_run_pixels=pixels) as client:
        wait_ready(client)
        model = client.app.state.registry.models["tiny-a"]  # type: ignore[attr-defined]
        assert {b.spec.inline_rows for b in model.batchers.values()} == {rows}
        assert client.post("/encode", files=[("image", ("a.png", png_bytes(0)))]).status_code == 200
