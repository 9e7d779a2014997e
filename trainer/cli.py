"""``python -m trainer {train,export,evaluate,ablate,figures,download-mnist,train-classifier}``.

Every config field is a flag (``--b1 20``, ``--z1-dim 16``), generated from
the dataclasses so the CLI and the config can never drift apart. Mistakes the
user can fix (a bad flag, a missing data folder, an unwritable output folder)
end in one line on stderr and exit status 2, not a traceback.
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import re
import sys
import textwrap
import tokenize
import typing
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, get_args, get_origin

from trainer.config import SECTION_TYPES, TrainConfig

RESUME_OVERRIDABLE = {"epochs", "max_steps", "threads", "device", "log_every", "checkpoint_every", "data_dir"}


class UsageError(Exception):
    """A mistake in how the command was called; printed as one line."""


def _field_parser(tp: Any) -> tuple[Any, list[str] | None]:
    """argparse ``type`` and ``choices`` for a dataclass field's annotation."""
    if get_origin(tp) is typing.Literal:
        choices = [str(c) for c in get_args(tp)]
        return str, choices
    if tp is bool:
        return _parse_bool, None
    return tp, None


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def field_help(cls: type) -> dict[str, str]:
    """Each field's comment in the config's source (trailing, or the lines just above): --help shows it."""
    found: dict[str, str] = {}
    above: list[str] = []
    source = textwrap.dedent(inspect.getsource(cls))
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            text = token.string.lstrip("#").strip()
            match = re.match(r"\s*(\w+)\s*:", token.line.split("#", 1)[0])
            if match:
                found[match.group(1)] = text
            else:
                above.append(text)
        elif token.type == tokenize.NAME and above and token.start[1] == 4:  # a field right under its comment
            found.setdefault(token.string, " ".join(above))
            above = []
        elif token.type not in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
            above = [] if token.type == tokenize.NEWLINE else above
    return found


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per config field, default SUPPRESS so we know which ones the user gave."""
    for section, cls in SECTION_TYPES.items():
        group = parser.add_argument_group(f"{section} ({cls.__doc__.splitlines()[0] if cls.__doc__ else ''})")
        hints = typing.get_type_hints(cls)
        explained = field_help(cls)
        for f in fields(cls):
            kind, choices = _field_parser(hints[f.name])
            default = f.default if f.default is not MISSING else None
            group.add_argument(
                f"--{f.name.replace('_', '-')}",
                dest=f"{section}.{f.name}",
                metavar=(kind.__name__.upper() if choices is None and isinstance(kind, type) else None),
                type=kind,
                choices=choices,
                default=argparse.SUPPRESS,
                help=f"{explained.get(f.name, '')} (default: {default})".strip(),
            )


# Sizes a dataset trains at unless --image-size says otherwise (faces need more than 32 pixels).
DATASET_IMAGE_SIZE = {"celeba": 64}


def config_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None) -> TrainConfig:
    raw: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (base or {}).items()}
    for key, value in vars(args).items():
        if "." in key:
            section, name = key.split(".", 1)
            raw.setdefault(section, {})[name] = value
    dataset = raw.get("data", {}).get("dataset", "")
    if dataset in DATASET_IMAGE_SIZE and "image_size" not in raw.get("network", {}):
        raw.setdefault("network", {})["image_size"] = DATASET_IMAGE_SIZE[dataset]
    try:
        return TrainConfig.from_dict(raw)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"bad configuration: {exc}") from exc


def given_config_keys(args: argparse.Namespace) -> set[str]:
    return {k.split(".", 1)[1] for k in vars(args) if "." in k}


def _value(config: dict[str, Any], key: str) -> Any:
    """A field's value wherever its section is (field names are unique across sections)."""
    return next(section[key] for section in config.values() if key in section)


def _config_file(path: str) -> dict[str, Any]:
    """A run's config.json, a model's manifest.json, or a file in their shape: the base flags override."""
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"--config {path}: not JSON ({exc})") from None
    if isinstance(raw, dict) and "format_version" in raw and isinstance(raw.get("config"), dict):
        # a model's manifest.json: the config it was trained with (its export section is not training's)
        raw = {k: v for k, v in raw["config"].items() if k in SECTION_TYPES}
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise UsageError(f"--config {path}: expected sections {sorted(SECTION_TYPES)}, each a JSON object")
    return raw


def cmd_train(args: argparse.Namespace) -> int:
    from trainer import checkpoint
    from trainer.train import start_or_resume

    out = Path(args.out)
    if args.resume:
        saved_path = out / checkpoint.CHECKPOINT_NAME
        if not saved_path.is_file():
            raise UsageError(f"{out}: nothing to resume (no {checkpoint.CHECKPOINT_NAME}); drop --resume")
        saved_config = checkpoint.load(saved_path)["config"]
        config = config_from_args(args, base=saved_config)
        saved = TrainConfig.from_dict(saved_config).to_dict()
        changed = {
            key
            for key in given_config_keys(args) - RESUME_OVERRIDABLE
            if _value(config.to_dict(), key) != _value(saved, key)
        }
        if changed:
            raise UsageError(f"cannot change {sorted(changed)} when resuming; only {sorted(RESUME_OVERRIDABLE)}")
    else:
        config = config_from_args(args, base=_config_file(args.config) if args.config else None)
        if not config.data.data_dir:
            raise UsageError("--data-dir is required (the folder with the MNIST IDX files)")
    trainer = start_or_resume(config, out, args.resume)
    trainer.config = config  # overrides such as --epochs apply to a resumed run too
    state = trainer.run(show_progress=not args.quiet)
    if trainer.world.main:
        processes = f" on {trainer.world.size} processes" if trainer.world.distributed else ""
        print(f"trained {state.step} steps ({state.epoch} epochs){processes} in {state.elapsed_s:.0f} s -> {out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from trainer.export import export_run

    folder = export_run(
        Path(args.run),
        name=args.name,
        models_dir=Path(args.models_dir),
        description=args.description,
        version=args.version,
        data_dir=args.data_dir,
        prune_below=args.prune_below,
        state_dict_out=Path(args.state_dict_out) if args.state_dict_out else None,
    )
    print(f"exported {folder}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from trainer.evaluate import evaluate_model

    report = evaluate_model(
        Path(args.model),
        data_dir=Path(args.data_dir),
        pairs=args.pairs,
        classifier_path=Path(args.classifier),
        seed=args.seed,
        write_manifest=args.write_manifest,
        probe_items=args.probe_items,
    )
    text = json.dumps(report, indent=2)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n")
    print(text)
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from trainer.ablation import ROWS, AblationConfig, run_ablation, write_report

    if not Path(args.data_dir).is_dir():
        raise UsageError(f"--data-dir {args.data_dir}: no such folder (the MNIST IDX files)")
    factors = tuple(f.strip() for f in args.factors.split(",") if f.strip())
    bad = [f for f in factors if f not in ("digit", "colour")]
    if bad or not factors:
        raise UsageError(f"--factors takes digit and/or colour, got {args.factors!r}")
    config = AblationConfig(
        data_dir=Path(args.data_dir),
        out=Path(args.out),
        report=Path(args.report),
        factors=factors,
        classifier=Path(args.classifier),
        threads=args.threads,
    )
    if args.rows:
        config.rows = tuple(r.strip() for r in args.rows.split(",") if r.strip())
        unknown = set(config.rows) - {row.name for row in ROWS}
        if unknown:
            raise UsageError(f"--rows: unknown {sorted(unknown)}; rows are {[row.name for row in ROWS]}")
    if args.quick:
        config.steps, config.kl_schedule_steps, config.pairs, config.probe_items, config.quick = 12, 6, 200, 200, True
    if args.steps:
        config.steps = args.steps
    md, js = write_report(run_ablation(config), config)
    print(f"ablation table -> {md} and {js}")
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    from trainer.figures import write_figures

    for path in write_figures(Path(args.model), Path(args.data_dir), Path(args.out), args.prefix):
        print(f"wrote {path}")
    return 0


def cmd_train_classifier(args: argparse.Namespace) -> int:
    from trainer.evaluators import train_digit_classifier

    accuracy = train_digit_classifier(Path(args.data_dir), Path(args.out), epochs=args.epochs, seed=args.seed)
    print(f"digit classifier: test accuracy {accuracy:.4f} -> {args.out}")
    return 0


def cmd_examples(args: argparse.Namespace) -> int:
    from trainer.export import refresh_examples

    for folder in map(Path, args.models):
        chosen = refresh_examples(folder, args.data_dir)
        print(f"{folder}: {', '.join(e.file for e in chosen)}")
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from modelrepo import load_manifest
    from modelrepo.card import write_card

    for folder in map(Path, args.models):
        print(f"wrote {write_card(folder, load_manifest(folder))}")
    return 0


def cmd_download_mnist(args: argparse.Namespace) -> int:
    from trainer.data.download import MIRRORS, download_mnist

    download_mnist(Path(args.out), args.mirror or MIRRORS)
    print(f"MNIST ready in {args.out} (train with --data-dir {args.out})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a two-code VAE")
    train.add_argument("--out", required=True, help="run folder (created)")
    train.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument(
        "--config", default=None, metavar="FILE", help="start from a run's config.json; flags given here override it"
    )
    add_config_flags(train)
    train.set_defaults(func=cmd_train)

    export = sub.add_parser("export", help="export a run to models/NAME as ONNX plus manifest")
    export.add_argument("run", help="run folder holding checkpoint.pt")
    export.add_argument("--name", required=True)
    export.add_argument("--models-dir", default="models")
    export.add_argument("--description", default="")
    export.add_argument("--version", default="1")
    export.add_argument("--data-dir", default=None, help="real data for the parity check (default: the run's)")
    export.add_argument(
        "--prune-below",
        type=float,
        default=0.0,
        metavar="NATS",
        help="prune code dimensions carrying less than this over training images (0 = none; trainer/prune.py)",
    )
    export.add_argument(
        "--state-dict-out",
        default=None,
        metavar="FILE",
        help="also save the PyTorch weights of what was exported (bench/weights/NAME.pt for the PyTorch baseline)",
    )
    export.set_defaults(func=cmd_export)

    evaluate = sub.add_parser("evaluate", help="swap metrics of an exported model on the MNIST test split")
    evaluate.add_argument("model", help="model folder (models/NAME)")
    evaluate.add_argument("--data-dir", required=True)
    evaluate.add_argument("--pairs", type=int, default=10000)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--classifier", default="evaluators/digit_cnn.pt")
    evaluate.add_argument("--json-out", default=None)
    evaluate.add_argument(
        "--probe-items", type=int, default=10000, help="training images that fit the leakage probes (0: no probes)"
    )
    evaluate.add_argument("--write-manifest", action="store_true", help="store the figures in the manifest")
    evaluate.set_defaults(func=cmd_evaluate)

    ablate = sub.add_parser("ablate", help="train and evaluate every ablation row; write a markdown and JSON table")
    ablate.add_argument("--data-dir", required=True)
    ablate.add_argument("--out", default="runs/ablation", help="run folders (kept; an interrupted ablation resumes)")
    ablate.add_argument("--report", default="docs/ablation", help="writes REPORT.md and REPORT.json")
    ablate.add_argument("--factors", default="digit,colour")
    ablate.add_argument("--steps", type=int, default=0, help="steps per run (default 2500; --quick: 12)")
    ablate.add_argument("--threads", type=int, default=2)
    ablate.add_argument(
        "--rows", default="", help="only these rows, e.g. full,no-MI (several ablations can share --out)"
    )
    ablate.add_argument("--classifier", default="evaluators/digit_cnn.pt")
    ablate.add_argument("--quick", action="store_true", help="tiny networks and a few steps: checks the machinery")
    ablate.set_defaults(func=cmd_ablate)

    figures = sub.add_parser("figures", help="swap grid, traversals, interpolations and code scatter plots as PNGs")
    figures.add_argument("model", help="model folder (models/NAME)")
    figures.add_argument("--data-dir", required=True)
    figures.add_argument("--out", default="docs")
    figures.add_argument("--prefix", default=None, help="file name prefix (default: the model's name)")
    figures.set_defaults(func=cmd_figures)

    examples = sub.add_parser("examples", help="choose a model folder's example images again (the judge's clearest)")
    examples.add_argument("models", nargs="+", help="model folders (models/NAME)")
    examples.add_argument("--data-dir", default=None, help="the held-out images (default: the model's training data)")
    examples.set_defaults(func=cmd_examples)

    card = sub.add_parser("card", help="write each model folder's README.md (its model card) from its manifest")
    card.add_argument("models", nargs="+", help="model folders (models/NAME)")
    card.set_defaults(func=cmd_card)

    download = sub.add_parser("download-mnist", help="download MNIST's four IDX files and check their SHA-256")
    download.add_argument("--out", default="data/mnist", help="folder for the four files (default: data/mnist)")
    download.add_argument(
        "--mirror", action="append", default=None, help="base URL to fetch from (repeatable; default: torchvision's)"
    )
    download.set_defaults(func=cmd_download_mnist)

    clf = sub.add_parser("train-classifier", help="train the independent digit classifier used by evaluate")
    clf.add_argument("--data-dir", required=True)
    clf.add_argument("--out", default="evaluators/digit_cnn.pt")
    clf.add_argument("--epochs", type=int, default=6)
    clf.add_argument("--seed", type=int, default=0)
    clf.set_defaults(func=cmd_train_classifier)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from trainer.checkpoint import OutputError
    from trainer.data.mnist import DataError
    from trainer.train import TrainingError

    expected: tuple[type[BaseException], ...] = (
        UsageError,
        DataError,
        OutputError,
        TrainingError,
        FileNotFoundError,
        ValueError,
    )
    try:
        code: int = args.func(args)
        return code
    except expected as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is intact, continue with --resume", file=sys.stderr)
        return 130
