"""The fast /swap and /encode paths (service/fast_paths.py): the route's answer, byte for byte, or the route itself."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.service.conftest import make_client, parse_metrics, wait_ready
from tests.service.images import png_bytes

A, B = png_bytes(10), png_bytes(11)
PAIR = [("z1_image", ("a.png", A, "image/png")), ("z2_image", ("b.png", B, "image/png"))]


@contextmanager
def both(repo: Path, **settings: Any) -> Iterator[tuple[TestClient, TestClient]]:
    """The service with the fast path and without it, on the same models."""
    with (
        make_client(repo, **settings) as fast,
        make_client(repo, fast_swap=False, fast_encode=False, **settings) as plain,
    ):
        wait_ready(fast)
        wait_ready(plain)
        yield fast, plain


def _answered_here(client: TestClient, path: str = "/swap") -> int:
    count: int = client.app.state.fast_answers[path]  # type: ignore[attr-defined]
    return count


def test_an_ordinary_swap_is_answered_here_with_the_routes_exact_bytes(repo: Path) -> None:
    with both(repo) as (fast, plain):
        for query in ("", "?model=tiny-a"):
            ours, route = fast.post(f"/swap{query}", files=PAIR), plain.post(f"/swap{query}", files=PAIR)
            assert ours.status_code == route.status_code == 200
            assert ours.content == route.content and ours.headers["content-type"] == "image/png"
            assert ours.headers["content-length"] == route.headers["content-length"]
        assert _answered_here(fast) == 2 and _answered_here(plain) == 0
        assert "x-request-id" in ours.headers  # the service's own middleware still wraps it
        metrics = parse_metrics(fast.get("/metrics").text)
        assert metrics['twocode_requests_total{method="POST",route="/swap",status="200"}'] == 2


REQUESTS: dict[str, dict[str, Any]] = {
    "JSON asked for": {"files": PAIR, "headers": {"Accept": "application/json"}},
    "an output size": {"files": PAIR, "params": {"size": "64"}},
    "an unknown model": {"files": PAIR, "params": {"model": "nope"}},
    "an unknown parameter": {"files": PAIR, "params": {"colour": "red"}},
    "a file that is not an image": {"files": [PAIR[0], ("z2_image", ("notes.txt", b"hello", "text/plain"))]},
    "a missing field": {"files": PAIR[:1]},
    "an extra field": {"files": [*PAIR, ("z3_image", ("c.png", A, "image/png"))]},
    "two pairs": {"files": [*PAIR, *PAIR]},
    "a field without a file name": {"files": [PAIR[0]], "data": {"z2_image": "text"}},
    "a JSON body": {"json": {"z1_image": "a", "z2_image": "b"}},
    "an empty body": {},
}


@pytest.mark.parametrize("case", REQUESTS)
def test_anything_else_is_answered_by_the_route_as_before(repo: Path, case: str) -> None:
    with both(repo) as (fast, plain):
        ours, route = fast.post("/swap", **REQUESTS[case]), plain.post("/swap", **REQUESTS[case])
        assert ours.status_code == route.status_code, ours.text
        assert ours.content == route.content
        assert _answered_here(fast) == 0


IMAGES = [("image", (f"{k}.png", png_bytes(20 + k), "image/png")) for k in range(3)]


def test_an_ordinary_encode_is_answered_here_with_the_routes_exact_bytes(repo: Path) -> None:
    with both(repo) as (fast, plain):
        for files, query in ((IMAGES[:1], ""), (IMAGES, "?model=tiny-a"), (IMAGES * 2, "?model=tiny-b")):
            ours, route = fast.post(f"/encode{query}", files=files), plain.post(f"/encode{query}", files=files)
            assert ours.status_code == route.status_code == 200
            assert ours.content == route.content and len(ours.json()["z1"]) == len(files)
            for header in ("content-type", "content-length"):
                assert ours.headers[header] == route.headers[header]
        assert _answered_here(fast, "/encode") == 3 and _answered_here(plain, "/encode") == 0
        metrics = parse_metrics(fast.get("/metrics").text)
        assert metrics['twocode_requests_total{method="POST",route="/encode",status="200"}'] == 3


ENCODE_REQUESTS: dict[str, dict[str, Any]] = {
    "samples asked for": {"files": IMAGES, "params": {"sample": "true"}},
    "an unknown model": {"files": IMAGES, "params": {"model": "nope"}},
    "an unknown parameter": {"files": IMAGES, "params": {"colour": "red"}},
    "a file that is not an image": {"files": [*IMAGES, ("image", ("notes.txt", b"hello", "text/plain"))]},
    "more files than allowed": {"files": IMAGES * 3},
    "a field of another name": {"files": [*IMAGES, ("images", ("c.png", A, "image/png"))]},
    "a text field beside the files": {"files": IMAGES, "data": {"note": "hello"}},
    "a JSON body": {"json": {"image": "a"}},
    "an empty body": {},
}


@pytest.mark.parametrize("case", ENCODE_REQUESTS)
def test_any_other_encode_is_answered_by_the_route_as_before(repo: Path, case: str) -> None:
    with both(repo, max_images_per_request=8) as (fast, plain):
        ours, route = fast.post("/encode", **ENCODE_REQUESTS[case]), plain.post("/encode", **ENCODE_REQUESTS[case])
        assert ours.status_code == route.status_code, ours.text
        if case != "samples asked for":  # samples are random draws: the same shape, other numbers
            assert ours.content == route.content
        assert _answered_here(fast, "/encode") == 0


@pytest.mark.parametrize(("path", "files"), [("/swap", PAIR), ("/encode", IMAGES)])
def test_api_keys_are_checked_as_the_route_checks_them(repo: Path, path: str, files: list[Any]) -> None:
    with both(repo, api_keys=["k1"]) as (fast, plain):
        for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic k1"}):
            ours, route = fast.post(path, files=files, headers=headers), plain.post(path, files=files, headers=headers)
            assert ours.status_code == route.status_code == 401 and ours.content == route.content
        assert _answered_here(fast, path) == 0
        for headers in ({"X-API-Key": "k1"}, {"Authorization": "Bearer k1"}):
            ours, route = fast.post(path, files=files, headers=headers), plain.post(path, files=files, headers=headers)
            assert ours.status_code == 200 and ours.content == route.content
        assert _answered_here(fast, path) == 2


def test_a_fast_answer_never_enters_fastapi_and_everything_else_does(repo: Path) -> None:
    """The service's layers wrap the whole FastAPI app: an ordinary swap or encode is answered before FastAPI's own
    per-request layers (where the time went), any other request passes through them as before."""
    with make_client(repo) as fast:
        wait_ready(fast)
        app: Any = fast.app
        entered: list[str] = []
        stack = app.build_middleware_stack()

        async def counting(scope: Any, receive: Any, send: Any) -> None:
            entered.append(scope["path"])
            await stack(scope, receive, send)

        app.middleware_stack = counting
        assert fast.post("/swap", files=PAIR).status_code == 200
        assert entered == [] and _answered_here(fast) == 1
        assert fast.post("/encode", files=IMAGES).status_code == 200
        assert entered == [] and _answered_here(fast, "/encode") == 1
        assert fast.post("/swap", files=PAIR, params={"size": "64"}).status_code == 200  # the route's case
        assert fast.post("/encode", files=IMAGES, params={"sample": "true"}).status_code == 200
        response = fast.get("/healthz")
        assert entered == ["/swap", "/encode", "/healthz"] and "x-request-id" in response.headers
