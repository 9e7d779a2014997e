"""``python -m trainer ablate``: what each term of the objective buys, measured with one budget.

Every row trains from the same seeds for the same number of steps, then is
evaluated like a shipped model (swap metrics with confidence intervals,
leakage probes, each code's information). Runs are kept in ``--out`` and an
interrupted ablation resumes where it stopped: finished rows are not
retrained, a half-trained row continues from its checkpoint.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from trainer.config import DataConfig, OptimConfig, TrainConfig
from trainer.evaluate import evaluate_model
from trainer.networks import NetworkConfig
from trainer.objective import ObjectiveConfig
from trainer.train import TrainingError

Overrides = dict[str, float | bool | str]
NO_MI: Overrides = {"l_mi1": 0.0, "l_mi2": 0.0}
# The label-free leakage terms switch on once the codes have formed (half the ablation's budget).
LEAKAGE_ON: Overrides = {"leakage_start_step": 1200, "leakage_floor": 1e-4}


@dataclass(frozen=True)
class Row:
    """One variant of the objective: overrides of ObjectiveConfig, trained once per seed."""

    name: str
    meaning: str
    overrides: Overrides = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    runs_of: str = ""  # evaluate the runs of that row instead of training its own (same overrides)
    per_factor: dict[str, Overrides] = field(default_factory=dict)  # on top of overrides, by specified factor
    # evaluate as export --prune-below exports (trainer/prune.py), by specified factor; absent: no pruning
    prune_by_factor: dict[str, float] = field(default_factory=dict)

    @property
    def trained_as(self) -> str:
        return self.runs_of or self.name

    def overrides_for(self, factor: str) -> Overrides:
        """Everything this row changes from ObjectiveConfig's defaults for one specified factor."""
        return FACTOR_BASE[factor] | self.overrides | self.per_factor.get(factor, {})

    def pruned_below(self, factor: str) -> float:
        """The threshold (nats) this row's evaluation prunes at for one specified factor; 0: none."""
        return self.prune_by_factor.get(factor, 0.0)


# What differs per specified factor in the method's recipe (README, docs/tuning.md).
FACTOR_BASE: dict[str, Overrides] = {"digit": {}, "colour": {"b1": 8.0}}
BETWEEN1: Overrides = {"l_between1": 30.0, "between_whiten": True, "between_form": "trace"}
# The shipped models' recipes (docs/results.md) at the ablation's budget: the digit model's tight z1
# (b1 30) with the whitened between-group term and the pair term; the colour model's looser z1 (b1 4,
# so z1 keeps more of the digit) with the plain (Frobenius) between-group term at its default floor
# and the pair term. Both exported pruned.
SHIPPED: dict[str, Overrides] = {
    "digit": LEAKAGE_ON | BETWEEN1 | {"b1": 30.0, "l_pair2": 2.0},
    "colour": {"b1": 4.0, "leakage_start_step": LEAKAGE_ON["leakage_start_step"], "l_between1": 30.0, "l_pair2": 2.0},
}
# nats, as each shipped model was exported (the digit model's threshold: docs/tuning.md)
SHIPPED_PRUNE_BELOW: dict[str, float] = {"digit": 0.4, "colour": 0.05}

ROWS = (
    Row("full", "every term of the method's objective, no leakage term (what the rows below change)", {}, (0, 1)),
    Row("no-MI", "without the two MI bounds", NO_MI, (0, 1)),
    Row("no-swap", "without the swap reconstruction", {"l_swap": 0.0}),
    Row("plain", "neither: a plain two-code VAE with pairs only in the batch", NO_MI | {"l_swap": 0.0}),
    Row("adversary", "every term plus the leakage adversary on z1", {"l_adv": 10.0}),
    Row(
        "between1",
        "every term plus the label-free between-group penalty on z1 (whitened, trace form)",
        LEAKAGE_ON | BETWEEN1,
        (0, 1),
    ),
    Row("pair2", "every term plus the label-free pair-consistency term on z2", LEAKAGE_ON | {"l_pair2": 2.0}, (0, 1)),
    Row("critic1", "every term plus the label-free pair critic on z1", LEAKAGE_ON | {"l_critic1": 30.0}),
    Row(
        "hsic1",
        "every term plus the label-free kernel dependence (HSIC) between a pair's z1 codes",
        LEAKAGE_ON | {"l_hsic1": 500.0},
        (0, 1),
    ),
    Row(
        "shipped",
        "the shipped model's recipe, evaluated as exported (code dimensions under the model's threshold pruned: "
        + ", ".join(f"{nats} nats for the {factor} model" for factor, nats in SHIPPED_PRUNE_BELOW.items())
        + ")",
        {},
        (0, 1),
        prune_by_factor=SHIPPED_PRUNE_BELOW,
        per_factor=SHIPPED,
    ),
    Row(
        "shipped-unpruned",
        "the shipped row's runs evaluated without pruning (what pruning buys)",
        {},
        (0, 1),
        runs_of="shipped",
        per_factor=SHIPPED,
    ),
)


@dataclass
class AblationConfig:
    data_dir: Path
    out: Path = Path("runs/ablation")
    report: Path = Path("docs/ablation")  # writes report.md and report.json next to each other
    factors: tuple[str, ...] = ("digit", "colour")
    rows: tuple[str, ...] = ()  # only these rows (names from ROWS); empty: all
    # About 2-3 minutes per run on 2 CPU cores, evaluation included: the 32 runs take about 90 minutes. What the
    # recipe needs is Adam steps, not images: z1 must take the hue while b1 is still small. At
    # batch 64 with 1200 or 1500 steps (schedules of 450 or 1100 steps) z1 never did (hue kept
    # 14-23 %, KL1 3-5 nats; docs/tuning.md), so the ablation runs half batches, more steps.
    steps: int = 2500
    batch_size: int = 32  # pairs per step
    kl_schedule_steps: int = 2000
    pairs: int = 10000
    probe_items: int = 10000
    threads: int = 2
    classifier: Path = Path("evaluators/digit_cnn.pt")
    quick: bool = False  # tiny networks and a few steps: checks the machinery, not the method


def run_config(config: AblationConfig, factor: str, row: Row, seed: int) -> TrainConfig:
    overrides: dict[str, Any] = row.overrides_for(factor)
    objective = ObjectiveConfig(**overrides, kl_schedule_steps=config.kl_schedule_steps)
    optim = OptimConfig(
        epochs=1000,
        max_steps=config.steps,
        batch_size=config.batch_size,
        seed=seed,
        threads=config.threads,
        log_every=100,
    )
    network = NetworkConfig()
    if config.quick:
        network = NetworkConfig(z1_dim=4, z2_dim=3, width=4, hidden=16)
        optim = replace(optim, batch_size=16, log_every=5)
    data = DataConfig(data_dir=str(config.data_dir), specified=factor)
    return TrainConfig(network=network, objective=objective, data=data, optim=optim)


@contextmanager
def claimed(out: Path, poll_s: float = 5.0) -> Iterator[None]:
    """Hold ``out`` alone: ablations sharing ``--out`` (e.g. split by ``--rows``) never train one run twice.

    A run claimed by a live process is waited for; a claim left by a dead process is taken over.
    """
    out.mkdir(parents=True, exist_ok=True)
    lock = out / ".ablation.lock"
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                os.kill(int(lock.read_text() or "0"), 0)
            except (ProcessLookupError, ValueError, FileNotFoundError):
                lock.unlink(missing_ok=True)  # its owner is gone
                continue
            time.sleep(poll_s)
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield
    finally:
        lock.unlink(missing_ok=True)


def recipe_changes(saved: dict[str, Any], config: TrainConfig) -> list[str]:
    """How a saved run's config differs from ``config`` in what shapes the model ("section.field: old -> new").

    Where the data lives and how fast or loudly it trains (data_dir, device, threads, logging,
    checkpointing) are not the recipe; a row whose overrides changed since its run was trained is.
    """
    incidental = {"data_dir", "device", "threads", "log_every", "checkpoint_every"}
    now = config.to_dict()
    return [
        f"{section}.{key}: {saved.get(section, {}).get(key)!r} -> {value!r}"
        for section in ("network", "objective", "data", "optim")
        for key, value in now[section].items()
        if key not in incidental and saved.get(section, {}).get(key, value) != value
    ]


def train_row(config: TrainConfig, out: Path) -> float:
    """Train (or finish) one run; returns its training seconds."""
    from trainer import checkpoint
    from trainer.train import start_or_resume

    saved = out / checkpoint.CHECKPOINT_NAME
    if saved.is_file():
        loaded = checkpoint.load(saved)
        stale = recipe_changes(loaded["config"], config)
        if stale:
            raise TrainingError(
                f"{out} was trained with another recipe than its row now has ({'; '.join(stale)}); "
                "delete that folder to train the row again"
            )
        state = loaded["state"]
        if state["step"] >= config.optim.max_steps:
            return float(state["elapsed_s"])
    trainer = start_or_resume(config, out, resume=saved.is_file())
    return trainer.run(show_progress=False).elapsed_s


def evaluate_row(config: AblationConfig, out: Path, prune_below: float = 0.0) -> dict[str, Any]:
    cached = out / (f"evaluation-pruned-{prune_below:g}.json" if prune_below > 0 else "evaluation.json")
    if cached.is_file() and cached.stat().st_mtime >= (out / "checkpoint.pt").stat().st_mtime:
        result: dict[str, Any] = json.loads(cached.read_text())
        return result
    report = evaluate_model(
        out,
        config.data_dir,
        config.pairs,
        config.classifier,
        seed=0,
        write_manifest=False,
        probe_items=config.probe_items,
        prune_below=prune_below,
    )
    cached.write_text(json.dumps(report, indent=2) + "\n")
    return report


def run_ablation(config: AblationConfig, log: Any = print) -> list[dict[str, Any]]:
    """Train and evaluate every (factor, row, seed); returns one record per run."""
    records = []
    for factor in config.factors:
        for row in ROWS:
            if config.rows and row.name not in config.rows:
                continue
            for seed in row.seeds:
                out = config.out / f"{factor}-{row.trained_as}-s{seed}"
                log(f"[ablation] {out.name}: training {config.steps} steps")
                with claimed(out):
                    seconds = train_row(run_config(config, factor, row, seed), out)
                    log(f"[ablation] {out.name}: trained in {seconds / 60:.1f} min; evaluating {row.name}")
                    evaluation = evaluate_row(config, out, row.pruned_below(factor))
                records.append(
                    {
                        "factor": factor,
                        "row": row.name,
                        "meaning": row.meaning,
                        "seed": seed,
                        "overrides": row.overrides_for(factor),
                        "train_minutes": round(seconds / 60, 2),
                        "evaluation": evaluation,
                    }
                )
    return records


def _pct(rate: dict[str, Any]) -> str:
    lo, hi = rate["ci95"]
    return f"{100 * rate['value']:.1f} ({100 * lo:.1f}-{100 * hi:.1f})"


def _cells(record: dict[str, Any]) -> list[str]:
    ev, factor = record["evaluation"], record["factor"]
    probes, info = ev.get("probes", {}), ev.get("code_information_nats", {})
    own, other = ("digit", "hue") if factor == "digit" else ("hue", "digit")

    def probe(name: str, kind: str) -> str:
        value = probes[name][kind]
        return f"{100 * value:.1f}" if isinstance(value, float) else f"{value['r2']:.2f}"

    specified = _pct(ev["specified_accuracy"])
    if factor == "colour":
        specified += f", {ev['specified_hue_error_deg_median']:.1f} deg"
    return [
        record["row"],
        str(record["seed"]),
        specified,
        _pct(ev["complementary_preservation"]),
        _pct(ev["strong_pairs"]["specified_accuracy"]),
        f"{probe(f'{own}_from_z1', 'linear')} / {probe(f'{own}_from_z1', 'mlp')}",
        f"{probe(f'{own}_from_z2', 'linear')} / {probe(f'{own}_from_z2', 'mlp')}",
        f"{probe(f'{other}_from_z2', 'linear')} / {probe(f'{other}_from_z2', 'mlp')}",
        f"{info.get('z1', float('nan')):.1f} / {info.get('z2', float('nan')):.1f}",
        f"{ev['reconstruction']['psnr_db']:.1f}",
    ]


def _row_line(row: Row) -> str:
    extra = "".join(f"; for the {factor} model also {more}" for factor, more in row.per_factor.items())
    return f"- **{row.name}**: {row.meaning}; overrides {row.overrides or 'none'}{extra}."


def markdown_table(records: list[dict[str, Any]], config: AblationConfig) -> str:
    lines = [
        "# Ablation: what each term of the objective buys",
        "",
        f"Regenerate: `make ablation` (or `python -m trainer ablate --data-dir MNIST`). Every run: "
        f"{config.steps} steps of {config.batch_size} pairs, KL schedule over {config.kl_schedule_steps} steps, "
        "seeds as listed; "
        f"swap metrics over {config.pairs} random MNIST test pairs with 95 % Wilson intervals; probes fit on "
        f"{config.probe_items} training-split codes and scored on the 10,000 test codes. Chance: 11.4 % for a "
        "digit (the most common class), R^2 = 0 for a hue.",
        "",
    ]
    for factor in config.factors:
        own, other = ("digit", "hue") if factor == "digit" else ("hue", "digit")
        unit = {"digit": "acc %", "hue": "R^2"}
        lines += [
            f"## Specified factor: {factor}",
            "",
            f"| row | seed | swap: specified % (CI) | complementary kept % (CI) | specified %, strong pairs "
            f"| {own} <- z1 ({unit[own]}, linear / MLP) | {own} <- z2 ({unit[own]}) | {other} <- z2 ({unit[other]}) "
            "| KL z1 / z2 (nats) | PSNR dB |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        lines += ["| " + " | ".join(_cells(r)) + " |" for r in records if r["factor"] == factor]
        lines.append("")
    lines += ["Rows:", ""] + [_row_line(row) for row in ROWS]
    lines += [
        "",
        "A pruned row zeroes, before evaluation, the encoder rows of every code dimension that carries "
        "under the threshold over 5,000 held-out images (`export --prune-below`, trainer/prune.py).",
    ]
    lines += [f"- Base overrides per factor: {FACTOR_BASE}.", ""]
    return "\n".join(lines)


def write_report(records: list[dict[str, Any]], config: AblationConfig) -> tuple[Path, Path]:
    config.report.parent.mkdir(parents=True, exist_ok=True)
    md, js = config.report.with_suffix(".md"), config.report.with_suffix(".json")
    md.write_text(markdown_table(records, config))
    js.write_text(json.dumps({"steps": config.steps, "records": records}, indent=2) + "\n")
    return md, js
