"""The web page in a real headless Chromium (Debian's package) driven by Playwright.

Where no Chromium is installed these tests are skipped with a message saying
so; `.ci/run` installs it from the OS packages before `make test`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serving import ROOT, serve
from tests.web.conftest import CHROMIUM, NO_CHROMIUM

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
DOCS = ROOT / "docs"
MODELS = ROOT / "models"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve(MODELS, "colormnist-digit") as running:
        yield running.url


def _open(browser: Any, url: str, width: int = 1100, height: int = 900) -> Any:
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url)
    page.wait_for_function("document.body.dataset.examples === 'ready'")  # the page's own state, not time
    return page


def _swap_two_examples(page: Any) -> str:
    examples = page.locator("#examples button")
    examples.nth(0).click()
    page.wait_for_function("!document.getElementById('img-z1').hidden")
    examples.nth(3).click()
    page.wait_for_function("document.body.dataset.swap === 'done'")
    return str(page.get_attribute("#img-swap", "src"))


def test_page_loads_models_and_swaps_two_examples(browser: Any, server: str) -> None:
    page = _open(browser, server)
    options = page.locator("#model option").all_inner_texts()
    assert any("colormnist-digit" in o for o in options) and any("colormnist-colour" in o for o in options)
    _swap_two_examples(page)
    assert page.locator("#error").is_hidden()
    page.screenshot(path=str(DOCS / "page-swap.png"), full_page=True)
    page.close()


def test_moving_a_slider_redraws_the_image(browser: Any, server: str) -> None:
    page = _open(browser, server)
    before = _swap_two_examples(page)
    page.wait_for_function("!document.getElementById('sliders').hidden")
    page.eval_on_selector(
        "#sliders-z1 input[type=range]", "el => { el.value = '2.5'; el.dispatchEvent(new Event('input')); }"
    )
    page.wait_for_function(f"document.getElementById('img-swap').src !== {before!r}")
    assert page.get_attribute("#img-swap", "src") != before
    page.close()


def test_a_bad_file_shows_the_api_error(browser: Any, server: str, tmp_path: Path) -> None:
    page = _open(browser, server)
    _swap_two_examples(page)
    bad = tmp_path / "holiday-photo.png"
    bad.write_text("this is text, not a PNG")
    page.set_input_files("#slot-z1 input[type=file]", str(bad))
    page.wait_for_function("document.body.dataset.swap === 'failed'")
    error = page.inner_text("#error")
    assert "not an image" in error and "holiday-photo.png" in error  # the user's file, by its name
    assert page.locator("#img-swap").is_hidden() and page.locator("#sliders").is_hidden()  # no stale swap
    assert page.locator("#download").is_hidden()
    page.close()


def test_sliders_wait_for_a_swap_and_the_result_can_be_downloaded(browser: Any, server: str) -> None:
    page = _open(browser, server)
    assert page.locator("#sliders").is_hidden() and page.locator("#download").is_hidden()
    _swap_two_examples(page)
    assert page.locator("#sliders").is_visible()
    href = page.get_attribute("#download", "href") or ""
    assert href.startswith("data:image/png;base64,") and page.get_attribute("#download", "download") == "swap.png"
    page.close()


def test_labels_speak_plainly(browser: Any, server: str) -> None:
    page = _open(browser, server)
    _swap_two_examples(page)
    text = page.inner_text("body")
    for jargon in ("CPUExecutionProvider", "G(z1", "z1·", "z1 image", "z2 image"):
        assert jargon not in text, jargon
    assert "runs on the CPU" in text and "colour and handwriting" in text
    page.close()


def test_examples_come_before_the_sliders_and_work_from_the_keyboard(browser: Any, server: str) -> None:
    page = _open(browser, server)
    order = page.evaluate(
        "document.getElementById('examples').compareDocumentPosition(document.getElementById('sliders'))"
    )
    assert order & 4  # Node.DOCUMENT_POSITION_FOLLOWING: the sliders come after the examples
    page.focus("#examples button >> nth=1")
    page.keyboard.press("Enter")
    page.wait_for_function("!document.getElementById('img-z1').hidden")
    page.keyboard.press("Tab")  # the next example, then Enter fills the second slot and swaps
    page.keyboard.press("Enter")
    page.wait_for_function("document.body.dataset.swap === 'done'")
    page.close()


def test_grid_of_examples(browser: Any, server: str) -> None:
    page = _open(browser, server)
    page.click("#tab-grid")
    page.click("#grid-examples")
    page.wait_for_function("document.querySelectorAll('#grid img').length >= 16")
    n = len(page.locator("#examples img").all())
    assert page.locator("#grid img").count() == (n + 1) * (n + 1) - 1
    page.screenshot(path=str(DOCS / "page-grid.png"), full_page=True)
    page.close()


def test_phone_width_has_no_horizontal_scroll(browser: Any, server: str) -> None:
    page = _open(browser, server, width=390, height=844)
    _swap_two_examples(page)
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    page.screenshot(path=str(DOCS / "page-phone.png"), full_page=True)
    page.close()


def test_works_with_an_api_key(browser: Any) -> None:
    with serve(MODELS, "colormnist-digit", api_keys="letmein") as running:
        page = browser.new_page()
        page.goto(running.url)
        page.wait_for_function("!document.getElementById('error').hidden")
        assert "API key" in page.inner_text("#error")
        loads: list[str] = []
        page.on("request", lambda r: loads.append(r.url) if r.url.endswith("/models") else None)
        page.fill("#api-key", "letmein")
        page.dispatch_event("#api-key", "change")  # applied while the field keeps the focus
        page.wait_for_function("document.body.dataset.examples === 'ready'")
        assert page.locator("#error").is_hidden()
        _swap_two_examples(page)  # the first click takes the focus from the field: a second "change"
        assert len(loads) == 1, loads  # which must not reload the models under the pointer
        page.close()
