"""make docker-check's judge of a deployed /swap: the right image passes, anything else fails."""

from __future__ import annotations

from pathlib import Path

from deploy.swap_answer import expected_swap, main
from modelrepo import load_manifest

MODEL = Path(__file__).resolve().parents[2] / "models" / "colormnist-digit"
Z1, Z2 = (MODEL / e.file for e in load_manifest(MODEL).examples[:2])


def test_the_swap_itself_passes(tmp_path: Path) -> None:
    answer = tmp_path / "answer.png"
    answer.write_bytes(expected_swap(MODEL, Z1.read_bytes(), Z2.read_bytes()))
    assert main([str(answer), str(Z1), str(Z2), "--model", str(MODEL)]) == 0


def test_an_input_echoed_back_fails() -> None:
    assert main([str(Z2), str(Z1), str(Z2), "--model", str(MODEL)]) == 1
    assert main([str(Z1), str(Z1), str(Z2), "--model", str(MODEL)]) == 1


def test_the_other_models_swap_and_non_pngs_fail(tmp_path: Path) -> None:
    other = tmp_path / "other.png"
    other.write_bytes(expected_swap(MODEL.parent / "colormnist-colour", Z1.read_bytes(), Z2.read_bytes()))
    assert main([str(other), str(Z1), str(Z2), "--model", str(MODEL)]) == 1
    text = tmp_path / "error.json"
    text.write_bytes(b'{"detail": "internal error"}')
    assert main([str(text), str(Z1), str(Z2), "--model", str(MODEL)]) == 1
