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


def _reference(body: bytes, boundary: bytes) -> list[tuple[bytes, bytes | None, bytes]] | None:
    """What python-multipart (the route's parser) reads from ``body``: (name, file name, data) per part."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    parts: list[tuple[bytes, bytes | None, bytes]] = []
    state: dict[str, Any] = {"field": b"", "value": b"", "name": b"", "filename": None, "data": []}

    def header_end() -> None:
        if state["field"].lower() == b"content-disposition":
            _, params = parse_options_header(state["value"])
            state["name"], state["filename"] = params.get(b"name", b""), params.get(b"filename")
        state["field"], state["value"] = b"", b""

    callbacks: Any = {
        "on_part_begin": lambda: state.update(name=b"", filename=None, data=[]),
        "on_header_field": lambda d, a, b: state.update(field=state["field"] + d[a:b]),
        "on_header_value": lambda d, a, b: state.update(value=state["value"] + d[a:b]),
        "on_header_end": header_end,
        "on_part_data": lambda d, a, b: state["data"].append(d[a:b]),
        "on_part_end": lambda: parts.append((state["name"], state["filename"], b"".join(state["data"]))),
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except Exception:  # noqa: BLE001 (a body the route's parser refuses)
        return None
    return parts


def _bodies() -> Iterator[tuple[str, bytes, bytes]]:
    """(what, body, boundary): bodies from ordinary clients and bodies bent every way a reader could misread."""
    import random

    import httpx

    rng = random.Random(0)
    tricky = [b"\r\n--bb\r\n", b"\r\n--bbX", b"--bb--", b"\r\n\r\n", b"\r\n--", b"\"';\\", b""]
    for k in range(40):
        a = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300))) + rng.choice(tricky)
        b = rng.choice(tricky) + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
        files = [("z1_image", ("a.png", a, "image/png")), ("z2_image", ("b b.png", b, "image/png"))]
        request = httpx.Request("POST", "http://x/swap", files=files[:: 1 if k % 2 else -1])
        body, ctype = request.read(), request.headers["content-type"].encode()
        yield f"httpx {k}", body, ctype.split(b"boundary=")[1]
    head = b'Content-Disposition: form-data; name="z1_image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
    tail = b'--bb\r\nContent-Disposition: form-data; name="z2_image"; filename="b.png"\r\n\r\nBBB\r\n--bb--\r\n'
    ordinary = b"--bb\r\n" + head + b"AAA\r\n" + tail
    bent = {
        "curl's shape": ordinary,
        "no closing CRLF": ordinary[:-2],
        "a preamble": b"preamble\r\n" + ordinary,
        "an epilogue": ordinary + b"epilogue",
        "an extra part header": ordinary.replace(b"Content-Type: image/png", b"Content-Length: 3"),
        "upper-case header names": ordinary.replace(b"Content-Disposition", b"CONTENT-DISPOSITION"),
        "no spaces in the disposition": ordinary.replace(b'data; name="z1_image"; ', b'data;name="z1_image";'),
        "an escaped quote in a file name": ordinary.replace(b'filename="a.png"', b'filename="a\\".png"'),
        "an RFC 2231 file name": ordinary.replace(b'filename="a.png"', b"filename*=utf-8''a.png"),
        "no file name": ordinary.replace(b'; filename="a.png"', b""),
        "the same field twice": ordinary.replace(b'name="z2_image"', b'name="z1_image"'),
        "a third part": ordinary[: -len(b"--\r\n")] + b"\r\n" + tail,
        "bare LF line ends": ordinary.replace(b"\r\n", b"\n"),
        "a delimiter not followed by CRLF": ordinary.replace(b"AAA\r\n--bb", b"AAA\r\n--bbX\r\n--bb"),
        "a header folded onto two lines": ordinary.replace(b"Content-Type: image/png", b"Content-Type:\r\n image/png"),
        "a UTF-8 file name": ordinary.replace(b"a.png", "ä.png".encode()),
        "a Latin-1 file name": ordinary.replace(b"a.png", "ä.png".encode("latin-1")),
    }
    for what, body in bent.items():
        yield what, body, b"bb"


def test_the_fast_reader_reads_what_the_routes_parser_reads_or_leaves_the_body_to_it() -> None:
    read_here = 0
    for what, body, boundary in _bodies():
        ours = pair_from_multipart(body, b"multipart/form-data; boundary=" + boundary)
        if ours is None:
            continue
        read_here += 1
        reference = _reference(body, boundary)
        assert reference is not None, what
        by_name = {name: (data, (filename or b"").decode()) for name, filename, data in reference}
        assert len(reference) == 2 and ours == (by_name[b"z1_image"], by_name[b"z2_image"]), what
    assert read_here >= 43  # every ordinary client's body (40 from httpx, curl's, its variants) is read here


def test_a_fast_swap_never_enters_fastapi_and_everything_else_does(repo: Path) -> None:
    """The service's layers wrap the whole FastAPI app: an ordinary swap is answered before FastAPI's own
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
        assert fast.post("/swap", files=PAIR, params={"size": "64"}).status_code == 200  # the route's case
        response = fast.get("/healthz")
        assert entered == ["/swap", "/healthz"] and "x-request-id" in response.headers
