"""A strict reader of the multipart bodies ordinary clients send, for the fast paths.

The routes parse forms with python-multipart, a streaming parser whose per-event
callbacks cost about 45 us for one pair of 32x32 PNGs and 1-2 ms for 64 images
(docs/performance.md). Ordinary clients (curl, requests, httpx, a browser) all
send one shape: the first delimiter at the start, file parts with only
Content-Disposition and Content-Type headers, the closing delimiter last. This
reader reads that shape alone, in a few microseconds per part; any other shape
(a preamble, an epilogue, other headers, a delimiter not followed by CRLF or
"--", a field without a file name, escapes or RFC 2231 names) gives None, and
the route's own parser reads the body. So where both read a body they read the
same bytes (tests/service/test_multipart.py holds a differential test).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from python_multipart.multipart import parse_options_header

# The one Content-Disposition an ordinary client sends for a file field.
_DISPOSITION = re.compile(rb'form-data; ?name="([^"\\\r\n]+)"; ?filename="([^"\\\r\n]*)"')
_PART_HEADERS = frozenset({b"content-disposition", b"content-type"})  # a part with any other header: the route's


class FilePart(NamedTuple):
    """One uploaded file: its form field, its bytes, the file name the client gave."""

    field: str
    data: bytes
    filename: str


def file_parts(body: bytes, content_type: bytes, fields: frozenset[str]) -> list[FilePart] | None:
    """The file parts of an ordinary multipart body whose every part is a file in one of ``fields``, else None."""
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        return None
    delimiter = b"--" + boundary
    if not body.startswith(delimiter + b"\r\n"):
        return None
    *parts, closing = body[len(delimiter) :].split(b"\r\n" + delimiter)
    if not parts or closing not in (b"--", b"--\r\n"):
        return None
    read = [_file_part(part, fields) for part in parts]
    return None if None in read else read  # type: ignore[return-value]


def _file_part(part: bytes, fields: frozenset[str]) -> FilePart | None:
    """One part: CRLF, its header lines, a blank line, the data; None unless it is a file in ``fields``."""
    head, blank, data = part.partition(b"\r\n\r\n")
    if not blank or not head.startswith(b"\r\n"):
        return None
    headers: dict[bytes, bytes] = {}
    for line in head[2:].split(b"\r\n"):
        name, colon, value = line.partition(b":")
        name = name.lower()
        if not colon or name not in _PART_HEADERS or name in headers:
            return None
        headers[name] = value.strip(b" \t")
    match = _DISPOSITION.fullmatch(headers.get(b"content-disposition", b""))
    if match is None:
        return None
    try:
        field, filename = match[1].decode(), match[2].decode()
    except UnicodeDecodeError:
        return None
    return FilePart(field, data, filename) if field in fields else None


def pair_from_multipart(
    body: bytes, content_type: bytes, fields: tuple[str, str] = ("z1_image", "z2_image")
) -> tuple[FilePart, FilePart] | None:
    """The two files of a body holding exactly one file in each of ``fields`` (in any order), else None."""
    parts = file_parts(body, content_type, frozenset(fields))
    if parts is None or sorted(p.field for p in parts) != sorted(fields):
        return None
    first, second = parts
    return (first, second) if first.field == fields[0] else (second, first)
