"""The README and docs/ as a newcomer reads them: every file they name exists, nothing points outside."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "models").glob("*/README.md"))]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_points_outside_the_repository_or_to_issue_numbers(document: Path) -> None:
    text = document.read_text()
    assert "../shared" not in text
    assert not re.search(r"\bissue [0-9]+", text, re.IGNORECASE)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(document: Path) -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", document.read_text()):
        if "://" in target:
            continue
        assert (document.parent / target).exists(), f"{document.name} links to missing {target}"


def test_the_readmes_first_request_uses_files_that_ship() -> None:
    readme = (ROOT / "README.md").read_text()
    files = re.findall(r"@(models/[\w./-]+\.png)", readme)
    assert len(files) >= 2
    assert all((ROOT / f).is_file() for f in files), files
