"""docs/api.md, the contract in words, against the live OpenAPI document and the error codes."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from service.app import create_app
from service.errors import CODES
from service.settings import Settings

DOC = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()


def test_every_route_of_the_openapi_document_is_described_and_none_other() -> None:
    spec = TestClient(create_app(Settings(api_keys=["k"]))).get("/openapi.json").json()
    published = {f"{method.upper()} {path}" for path, ops in spec["paths"].items() for method in ops}
    described = set(re.findall(r"`((?:GET|POST|PUT|DELETE|PATCH) /[^`]*)`", DOC))
    assert described == published, (published - described, described - published)


def test_every_error_code_is_listed_with_its_status() -> None:
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|", DOC, re.MULTILINE))
    assert set(rows) == set(CODES)
    for code, status in rows.items():
        assert CODES[code].startswith(status), (code, status, CODES[code])


def test_settings_named_in_the_doc_exist() -> None:
    named = set(re.findall(r"`(TWOCODE_[A-Z_]+)", DOC))
    known = {f"TWOCODE_{name.upper()}" for name in Settings.model_fields}
    assert named and named <= known, named - known
