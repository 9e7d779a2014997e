"""The ablation's machinery on tiny data: every row trains, evaluates and lands in the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.trainer.helpers import run_cli
from trainer.ablation import ROWS, SHIPPED_PRUNE_BELOW, AblationConfig, markdown_table, recipe_changes, run_config

pytestmark = pytest.mark.slow


def test_rows_differ_only_in_their_overrides(tmp_path: Path) -> None:
    config = AblationConfig(data_dir=tmp_path)
    full = run_config(config, "digit", ROWS[0], 0)
    plain = run_config(config, "digit", next(r for r in ROWS if r.name == "plain"), 0)
    assert (plain.objective.l_swap, plain.objective.l_mi1, plain.objective.l_mi2) == (0.0, 0.0, 0.0)
    assert full.objective.l_swap > 0 and full.objective.l_mi1 > 0
    assert plain.optim == full.optim and plain.network == full.network
    colour = run_config(config, "colour", ROWS[0], 1)
    assert colour.objective.b1 == 8.0 and colour.optim.seed == 1 and colour.data.specified == "colour"
    # The shipped row trains each factor's own recipe: the digit's tight z1, the colour's plain between term.
    shipped = next(r for r in ROWS if r.name == "shipped")
    digit, hue = run_config(config, "digit", shipped, 0).objective, run_config(config, "colour", shipped, 0).objective
    assert (digit.b1, digit.between_whiten, digit.l_pair2) == (30.0, True, 2.0)
    assert (hue.b1, hue.between_whiten, hue.l_between1) == (4.0, False, 30.0)


def test_quick_ablation_writes_every_row_and_resumes(tiny_mnist: Path, tmp_path: Path) -> None:
    args = ["ablate", "--data-dir", str(tiny_mnist), "--out", str(tmp_path / "runs"), "--report"]
    done = run_cli(*args, str(tmp_path / "report"), "--quick", "--factors", "digit", "--threads", "1")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    expected = sum(len(row.seeds) for row in ROWS)
    assert len(report["records"]) == expected
    for record in report["records"]:
        ev = record["evaluation"]
        assert {"specified_accuracy", "strong_pairs", "probes", "code_information_nats"} <= set(ev)
        assert ev["probes"]["digit_from_z1"]["chance"] > 0
    table = (tmp_path / "report.md").read_text()
    assert table.count("| adversary |") == 1 and table.count("| full |") == 2
    # The shipped row is evaluated pruned, as exported; the unpruned row reads the same runs and trains none.
    shipped = next(r for r in report["records"] if r["row"] == "shipped")
    assert shipped["evaluation"]["pruned"]["below_nats"] == SHIPPED_PRUNE_BELOW["digit"]  # as exported
    assert shipped["overrides"]["b1"] == 30.0 and shipped["overrides"]["l_pair2"] > 0
    assert "pruned" not in next(r for r in report["records"] if r["row"] == "shipped-unpruned")["evaluation"]
    assert not (tmp_path / "runs" / "digit-shipped-unpruned-s0").exists()
    # The colour table reads the hue figures: render one from a digit record relabelled.
    colour = dict(report["records"][0], factor="colour")
    colour["evaluation"] = dict(colour["evaluation"], specified_hue_error_deg_median=4.5)
    both = markdown_table([*report["records"], colour], AblationConfig(data_dir=tiny_mnist))
    assert "## Specified factor: colour" in both and "4.5 deg" in both
    # A second call finds every run finished and evaluated: it retrains nothing.
    stamp = (tmp_path / "runs" / "digit-full-s0" / "checkpoint.pt").stat().st_mtime
    again = run_cli(*args, str(tmp_path / "report2"), "--quick", "--factors", "digit", "--threads", "1")
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "runs" / "digit-full-s0" / "checkpoint.pt").stat().st_mtime == stamp
    # A row whose recipe changed since is refused with what changed, not reported from the old run.
    from trainer import checkpoint
    from trainer.ablation import train_row
    from trainer.config import TrainConfig
    from trainer.train import TrainingError

    saved = checkpoint.load(tmp_path / "runs" / "digit-full-s0" / "checkpoint.pt")["config"]
    saved["objective"]["b1"] = saved["objective"]["b1"] + 1
    with pytest.raises(TrainingError, match="objective.b1"):
        train_row(TrainConfig.from_dict(saved), tmp_path / "runs" / "digit-full-s0")


def test_ablate_rejects_an_unknown_factor(tiny_mnist: Path, tmp_path: Path) -> None:
    bad = run_cli("ablate", "--data-dir", str(tiny_mnist), "--factors", "digit,shape", "--out", str(tmp_path))
    assert bad.returncode == 2 and "--factors" in bad.stderr


def test_a_run_claimed_by_a_live_process_is_waited_for_and_a_dead_claim_taken_over(tmp_path: Path) -> None:
    import subprocess
    import sys
    import threading

    from trainer.ablation import claimed

    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run / ".ablation.lock").write_text(dead.stdout.strip())
    with claimed(run, poll_s=0.01):  # the owner is gone: taken over at once
        assert (run / ".ablation.lock").read_text() == str(__import__("os").getpid())
    assert not (run / ".ablation.lock").exists()
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    (run / ".ablation.lock").write_text(str(owner.pid))
    entered = threading.Event()

    def wait_for_it() -> None:
        with claimed(run, poll_s=0.01):
            entered.set()

    waiter = threading.Thread(target=wait_for_it)
    waiter.start()
    assert not entered.wait(0.3)  # the live owner holds it
    owner.kill()
    owner.wait()
    assert entered.wait(5)
    waiter.join()


@pytest.mark.parametrize("factor", ["digit", "colour"])
def test_the_shipped_row_is_the_shipped_models_recipe_and_pruning(tmp_path: Path, factor: str) -> None:
    """The ablation's "shipped" row must say what models/ holds: its weights and its export threshold
    (only the budget and the schedules that scale with it differ)."""
    manifest = json.loads((Path("models") / f"colormnist-{factor}" / "manifest.json").read_text())
    shipped = next(r for r in ROWS if r.name == "shipped")
    row = run_config(AblationConfig(data_dir=tmp_path), factor, shipped, 0).objective
    weights = (
        "b1",
        "b2",
        "l_self",
        "l_swap",
        "l_mi1",
        "l_mi2",
        "l_adv",
        "l_between1",
        "l_pair2",
        "l_critic1",
        "l_hsic1",
    )
    shipped_objective = manifest["config"]["objective"]
    assert {w: getattr(row, w) for w in weights} == {w: shipped_objective.get(w, 0.0) for w in weights}
    for switch in ("between_whiten", "between_form", "mi_updates", "likelihood"):
        if switch in shipped_objective:
            assert getattr(row, switch) == shipped_objective[switch], switch
    assert SHIPPED_PRUNE_BELOW[factor] == manifest["config"]["export"]["pruned"]["below_nats"]


def test_a_run_trained_with_another_recipe_is_refused_not_reused(tmp_path: Path) -> None:
    """A row whose overrides changed since its run was trained must not be reported from the old run."""
    config = run_config(AblationConfig(data_dir=tmp_path), "colour", next(r for r in ROWS if r.name == "shipped"), 0)
    saved = config.to_dict()
    assert recipe_changes(saved, config) == []
    moved = json.loads(json.dumps(saved))  # as a checkpoint holds it
    moved["data"]["data_dir"], moved["optim"]["threads"] = "/elsewhere", 7  # where and how fast: not the recipe
    assert recipe_changes(moved, config) == []
    moved["objective"]["b1"] = 2.0
    assert recipe_changes(moved, config) == [f"objective.b1: 2.0 -> {config.objective.b1!r}"]
