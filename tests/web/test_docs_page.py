"""/docs and /redoc render in a real Chromium with every request off this server refused (no internet)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.serving import ROOT, serve
from tests.web.conftest import CHROMIUM, NO_CHROMIUM

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve(ROOT / "models", "colormnist-digit", api_keys="docs-key") as running:
        yield running.url


def _offline_page(browser: Any, server: str) -> tuple[Any, list[str]]:
    """A page whose network is this server alone: any other request is aborted and remembered."""
    context = browser.new_context()
    refused: list[str] = []

    def gate(route: Any) -> None:
        if route.request.url.startswith(server):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    context.route("**/*", gate)
    return context.new_page(), refused


def test_swagger_ui_renders_every_operation_offline_and_offers_the_api_key(browser: Any, server: str) -> None:
    page, refused = _offline_page(browser, server)
    page.goto(f"{server}/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=30_000)
    paths = set(page.locator(".opblock-summary-path").all_inner_texts())
    assert {"/encode", "/decode", "/swap", "/models", "/readyz"} <= {p.replace("\u200b", "") for p in paths}
    assert page.locator("button.authorize").count() == 1  # the API key can be sent from the page
    assert refused == [], f"/docs asked the internet for {refused}"
    page.context.close()


def test_redoc_renders_offline(browser: Any, server: str) -> None:
    page, refused = _offline_page(browser, server)
    page.goto(f"{server}/redoc")
    page.get_by_role("heading", name="Swap the specified factors between images").wait_for(timeout=30_000)
    # ReDoc's footer asks for Redocly's logo and hides it when that fails; nothing else may leave.
    assert [u for u in refused if u != "https://cdn.redoc.ly/redoc/logo-mini.svg"] == [], refused
    page.context.close()
