"""The fast paths' strict multipart reader (service/multipart.py): what python-multipart reads, or nothing."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import httpx

from service.multipart import FilePart, file_parts, pair_from_multipart

PAIR = ("z1_image", "z2_image")


def test_only_an_ordinary_multipart_body_is_read_as_a_pair() -> None:
    body = (
        b'--xx\r\nContent-Disposition: form-data; name="z2_image"; filename="b.png"\r\n\r\nBBB\r\n'
        b'--xx\r\nContent-Disposition: form-data; name="z1_image"; filename="a.png"\r\n\r\nAAA\r\n--xx--\r\n'
    )
    assert pair_from_multipart(body, b"multipart/form-data; boundary=xx") == (
        FilePart("z1_image", b"AAA", "a.png"),
        FilePart("z2_image", b"BBB", "b.png"),
    )
    assert pair_from_multipart(body, b"multipart/form-data") is None  # no boundary
    assert pair_from_multipart(body, b"application/json") is None
    assert pair_from_multipart(b"--xx\r\ngarbage", b"multipart/form-data; boundary=xx") is None


def test_every_part_must_be_a_file_in_the_fields_asked_for() -> None:
    def body(*names: bytes) -> bytes:
        parts = [b'--xx\r\nContent-Disposition: form-data; name="%s"; filename="f"\r\n\r\nD\r\n' % n for n in names]
        return b"".join(parts) + b"--xx--\r\n"

    ctype = b"multipart/form-data; boundary=xx"
    assert (
        file_parts(body(b"image", b"image", b"image"), ctype, frozenset({"image"}))
        == [FilePart("image", b"D", "f")] * 3
    )
    assert file_parts(body(b"image", b"other"), ctype, frozenset({"image"})) is None
    assert file_parts(b"--xx--\r\n", ctype, frozenset({"image"})) is None  # no part at all
    assert pair_from_multipart(body(b"z1_image", b"z1_image"), ctype) is None  # the same field twice
    assert pair_from_multipart(body(b"z1_image", b"z2_image", b"z2_image"), ctype) is None


def _reference(body: bytes, boundary: bytes) -> list[tuple[bytes, bytes | None, bytes]] | None:
    """What python-multipart (the routes' parser) reads from ``body``: (name, file name, data) per part."""
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
    except Exception:  # noqa: BLE001 (a body the routes' parser refuses)
        return None
    return parts


TRICKY = [b"\r\n--bb\r\n", b"\r\n--bbX", b"--bb--", b"\r\n\r\n", b"\r\n--", b"\"';\\", b""]


def _hostile(rng: random.Random) -> bytes:
    """Random bytes with something a reader could mistake for a delimiter or a header's end."""
    data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
    return rng.choice([rng.choice(TRICKY) + data, data + rng.choice(TRICKY)])


def _bodies() -> Iterator[tuple[str, bytes, bytes]]:
    """(what, body, boundary): bodies from ordinary clients and bodies bent every way a reader could misread."""
    rng = random.Random(0)
    for k in range(40):
        files = [
            ("z1_image", ("a.png", _hostile(rng), "image/png")),
            ("z2_image", ("b b.png", _hostile(rng), "image/png")),
        ]
        yield f"httpx pair {k}", *_httpx_body(files[:: 1 if k % 2 else -1])
    for k in range(10):
        files = [("image", (f"{i}.png", _hostile(rng), "image/png")) for i in range(rng.randrange(1, 65))]
        yield f"httpx images {k}", *_httpx_body(files)
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
        "a repeated content type": ordinary.replace(b"image/png\r\n", b"image/png\r\nContent-Type: image/png\r\n"),
    }
    for what, body in bent.items():
        yield what, body, b"bb"


def _httpx_body(files: list[Any]) -> tuple[bytes, bytes]:
    request = httpx.Request("POST", "http://x/", files=files)
    return request.read(), request.headers["content-type"].encode().split(b"boundary=")[1]


def test_the_reader_reads_what_the_routes_parser_reads_or_leaves_the_body_to_it() -> None:
    read_here = 0
    for what, body, boundary in _bodies():
        ours = file_parts(body, b"multipart/form-data; boundary=" + boundary, frozenset({*PAIR, "image"}))
        if ours is None:
            continue
        read_here += 1
        reference = _reference(body, boundary)
        assert reference is not None, what
        assert ours == [FilePart(n.decode(), d, (f or b"").decode()) for n, f, d in reference], what
    assert read_here >= 53  # every ordinary client's body (50 from httpx, curl's, its variants) is read here
