"""Schemathesis against the app's own /openapi.json, every route, over real HTTP on 127.0.0.1.

The checks: no 5xx, every status code documented, content types, headers and
response bodies as the schema says. No route or check is excluded. Hypothesis
drives each operation's strategy directly (schemathesis's pytest plugin does
not load under this pytest), with a bounded, derandomised number of examples.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.service.conftest import export_tiny
from tests.serving import serve

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_ROUTE = 30


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    repo: Path = tmp_path_factory.mktemp("fuzz-models")
    export_tiny(repo, "tiny-a", z1=4, z2=3, seed=0)
    with serve(repo, "tiny-a", max_queue_delay_ms="1") as running:
        yield schemathesis.openapi.from_url(f"{running.url}/openapi.json")


def test_every_route_conforms_to_its_schema(api_schema: Any) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    labels = sorted(op.label for op in operations)
    assert {"POST /encode", "POST /decode", "POST /swap", "GET /models", "GET /readyz"} <= set(labels)
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_ROUTE,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            case.call_and_validate(checks=CHECKS)

        check()
