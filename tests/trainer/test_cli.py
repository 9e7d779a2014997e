"""The CLI as a user meets it: a real subprocess, one-line errors, exit status 2."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from dataclasses import fields
from pathlib import Path

import pytest

from tests.trainer.helpers import run_cli


def _assert_one_line_error(result: subprocess.CompletedProcess[str], needle: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("error:") or "error:" in lines[-1], result.stderr
    assert "Traceback" not in result.stderr
    assert needle in result.stderr


def test_missing_data_folder_is_one_line(tmp_path: Path) -> None:
    result = run_cli("train", "--data-dir", str(tmp_path / "absent"), "--out", str(tmp_path / "run"))
    _assert_one_line_error(result, "no such data folder")


def test_bad_flag_value_is_one_line(tmp_path: Path) -> None:
    result = run_cli("train", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r"), "--likelihood", "laplace")
    _assert_one_line_error(result, "invalid choice")


def test_unknown_flag_is_rejected(tmp_path: Path) -> None:
    result = run_cli("train", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r"), "--beta1", "3")
    _assert_one_line_error(result, "unrecognized arguments")


def test_impossible_config_is_one_line(tiny_mnist: Path, tmp_path: Path) -> None:
    result = run_cli("train", "--data-dir", str(tiny_mnist), "--out", str(tmp_path / "r"), "--image-size", "30")
    _assert_one_line_error(result, "power of two")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere; the read-only case needs a normal user")
def test_unwritable_output_is_one_line(tiny_mnist: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = run_cli("train", "--data-dir", str(tiny_mnist), "--out", str(locked / "run"))
    _assert_one_line_error(result, "not writable")


def test_output_under_a_file_is_one_line(tiny_mnist: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli("train", "--data-dir", str(tiny_mnist), "--out", str(blocker / "run"))
    _assert_one_line_error(result, "not writable")


def test_resume_without_a_run_is_one_line(tmp_path: Path) -> None:
    result = run_cli("train", "--out", str(tmp_path / "nothing"), "--resume")
    _assert_one_line_error(result, "nothing to resume")


def test_train_export_evaluate_end_to_end(tiny_mnist: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    flags = ["--width", "4", "--hidden", "16", "--z1-dim", "4", "--z2-dim", "3", "--batch-size", "16"]
    trained = run_cli("train", "--data-dir", str(tiny_mnist), "--out", str(run), "--max-steps", "4", "--quiet", *flags)
    assert trained.returncode == 0, trained.stderr
    assert "trained 4 steps" in trained.stdout
    resumed = run_cli("train", "--out", str(run), "--resume", "--max-steps", "6", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert "trained 6 steps" in resumed.stdout
    changed = run_cli("train", "--out", str(run), "--resume", "--b1", "3")
    _assert_one_line_error(changed, "cannot change")

    models = tmp_path / "models"
    exported = run_cli("export", str(run), "--name", "tiny", "--models-dir", str(models))
    assert exported.returncode == 0, exported.stderr
    clf = tmp_path / "clf.pt"
    trained_clf = run_cli("train-classifier", "--data-dir", str(tiny_mnist), "--out", str(clf), "--epochs", "1")
    assert trained_clf.returncode == 0, trained_clf.stderr
    evaluated = run_cli(
        "evaluate",
        str(models / "tiny"),
        "--data-dir",
        str(tiny_mnist),
        "--pairs",
        "50",
        "--classifier",
        str(clf),
        "--write-manifest",
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert '"specified_accuracy"' in evaluated.stdout
    manifest_text = (models / "tiny" / "manifest.json").read_text()
    assert '"specified_accuracy"' in manifest_text and '"digit_from_z1"' in manifest_text

    figures = run_cli("figures", str(models / "tiny"), "--data-dir", str(tiny_mnist), "--out", str(tmp_path / "docs"))
    assert figures.returncode == 0, figures.stderr
    names = {p.name for p in (tmp_path / "docs").iterdir()}
    assert names == {f"{kind}-digit.png" for kind in ("swap-grid", "traversals", "interpolation", "scatter")}


def test_every_training_flag_explains_itself() -> None:
    """--help lists each flag with a one-line explanation (from the config's own comments) and its default."""
    from trainer.cli import add_config_flags
    from trainer.config import SECTION_TYPES

    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    flags = [a for a in parser._actions if a.dest.count(".") == 1]
    assert len(flags) == sum(len(fields(cls)) for cls in SECTION_TYPES.values())
    for action in flags:
        explanation = (action.help or "").split("(default:")[0].strip()
        assert len(explanation) >= 8, f"{action.option_strings[0]} has no explanation"
        assert "(default: " in (action.help or "")
    shown = run_cli("train", "--help").stdout
    assert "--b1 FLOAT" in shown and "KL weight on z1" in shown


def test_a_runs_config_json_is_a_config_flags_override(tiny_mnist: Path, tmp_path: Path) -> None:
    first = tmp_path / "first"
    small = ["--max-steps", "2", "--z1-dim", "5", "--width", "4", "--hidden", "16", "--batch-size", "8", "--quiet"]
    done = run_cli("train", "--data-dir", str(tiny_mnist), "--out", str(first), *small)
    assert done.returncode == 0, done.stderr
    again = tmp_path / "again"
    done = run_cli("train", "--config", str(first / "config.json"), "--out", str(again), "--max-steps", "3",
                   "--z2-dim", "2", "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    config = json.loads((again / "config.json").read_text())
    assert config["network"]["z1_dim"] == 5 and config["network"]["width"] == 4  # from the file
    assert config["network"]["z2_dim"] == 2 and config["optim"]["max_steps"] == 3  # from the flags


def test_a_broken_config_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    _assert_one_line_error(run_cli("train", "--config", str(bad), "--out", str(tmp_path / "x")), "not JSON")


def test_celeba_trains_at_64_pixels_unless_told_otherwise() -> None:
    from trainer.cli import build_parser, config_from_args

    parser = build_parser()
    celeba = ["train", "--out", "x", "--dataset", "celeba", "--specified", "Smiling"]
    assert config_from_args(parser.parse_args(celeba)).network.image_size == 64
    told = config_from_args(parser.parse_args([*celeba, "--image-size", "32"]))
    assert told.network.image_size == 32
    assert config_from_args(parser.parse_args(["train", "--out", "x"])).network.image_size == 32
