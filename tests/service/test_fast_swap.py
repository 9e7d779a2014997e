"""The fast /swap path (service/fast_swap.py): the route's answer, byte for byte, or the route itself."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.fast_swap import pair_from_multipart
from tests.service.conftest import make_client, parse_metrics, wait_ready
from tests.service.images import png_bytes

A, B = png_bytes(10), png_bytes(11)
PAIR = [("z1_image", ("a.png", A, "image/png")), ("z2_image", ("b.png", B, "image/png"))]


@contextmanager
def both(repo: Path, **settings: Any) -> Iterator[tuple[TestClient, TestClient]]:
    """The service with the fast path and without it, on the same models."""
    with make_client(repo, **settings) as fast, make_client(repo, fast_swap=False, **settings) as plain:
        wait_ready(fast)
        wait_ready(plain)
        yield fast, plain


def _answered_here(client: TestClient) -> int:
    count: int = client.app.state.fast_swaps  # type: ignore[attr-defined]
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


def test_api_keys_are_checked_as_the_route_checks_them(repo: Path) -> None:
    with both(repo, api_keys=["k1"]) as (fast, plain):
        for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic k1"}):
            ours, route = (
                fast.post("/swap", files=PAIR, headers=headers),
                plain.post("/swap", files=PAIR, headers=headers),
            )
            assert ours.status_code == route.status_code == 401 and ours.content == route.content
        assert _answered_here(fast) == 0
        for headers in ({"X-API-Key": "k1"}, {"Authorization": "Bearer k1"}):
            assert (
                fast.post("/swap", files=PAIR, headers=headers).content
                == plain.post("/swap", files=PAIR, headers=headers).content
            )
        assert _answered_here(fast) == 2


def test_only_an_ordinary_multipart_body_is_read_as_a_pair() -> None:
    body = (
        b'--xx\r\nContent-Disposition: form-data; name="z2_image"; filename="b.png"\r\n\r\nBBB\r\n'
        b'--xx\r\nContent-Disposition: form-data; name="z1_image"; filename="a.png"\r\n\r\nAAA\r\n--xx--\r\n'
    )
    assert pair_from_multipart(body, b"multipart/form-data; boundary=xx") == ((b"AAA", "a.png"), (b"BBB", "b.png"))
    assert pair_from_multipart(body, b"multipart/form-data") is None  # no boundary
    assert pair_from_multipart(body, b"application/json") is None
    assert pair_from_multipart(b"--xx\r\ngarbage", b"multipart/form-data; boundary=xx") is None
