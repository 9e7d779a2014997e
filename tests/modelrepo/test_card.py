"""Model cards: written from the manifest alone, and the shipped ones up to date with their manifests."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelrepo import load_manifest
from modelrepo.card import CARD_NAME, model_card

MODELS = Path(__file__).resolve().parents[2] / "models"
NAMES = sorted(p.name for p in MODELS.iterdir() if (p / "manifest.json").is_file())


@pytest.mark.parametrize("name", NAMES)
def test_the_shipped_card_is_what_its_manifest_says(name: str) -> None:
    """Regenerate with `python -m trainer card models/NAME` after changing a manifest by hand."""
    folder = MODELS / name
    assert (folder / CARD_NAME).read_text() == model_card(load_manifest(folder))


@pytest.mark.parametrize("name", NAMES)
def test_a_card_carries_the_figures_with_their_intervals_and_how_to_call_the_model(name: str) -> None:
    manifest = load_manifest(MODELS / name)
    card = model_card(manifest)
    accuracy = manifest.evaluation["specified_accuracy"]
    assert f"{100 * accuracy['value']:.1f} % (95 % CI {100 * accuracy['ci95'][0]:.1f}" in card
    assert f"{100 * manifest.evaluation['probes']['digit_from_z1']['linear']:.1f} %" in card
    for section in ("What the codes hold", "Intended use and limits", "Training data", "How to call it"):
        assert f"## {section}" in card
    assert f"swap?model={name}" in card and manifest.examples[0].file in card
    assert all(entry.sha256 in card for entry in manifest.files.values())
    assert "../shared" not in card


def test_an_unevaluated_model_says_so() -> None:
    manifest = load_manifest(MODELS / NAMES[0]).model_copy(update={"evaluation": {}})
    assert "Not evaluated yet" in model_card(manifest)


def test_a_pruned_model_says_which_dimensions_are_always_zero() -> None:
    manifest = load_manifest(MODELS / NAMES[0])
    config = dict(manifest.config)
    config["export"] = dict(config.get("export", {}), pruned={"below_nats": 0.05, "z1": [0, 3], "z2": []})
    card = model_card(manifest.model_copy(update={"config": config}))
    assert "dimensions [0, 3] of z1 and [] of z2 carried under 0.05 nats" in card
