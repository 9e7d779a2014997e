"""The model card (``README.md`` in a model folder), written from the manifest alone.

The exporter writes it and ``evaluate --write-manifest`` rewrites it, so the
card never says something the manifest does not: what the codes hold, what the
model is for and not for, its figures with their intervals, its training data,
and how to call it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelrepo.manifest import Manifest

CARD_NAME = "README.md"

_FACTOR_WORDS = {
    "digit": ("the digit (0-9)", "the colour and the handwriting"),
    "colour": ("the colour (hue)", "the digit and the handwriting"),
}


def _rate(entry: Any) -> str:
    if not isinstance(entry, dict) or "value" not in entry:
        return "-"
    low, high = entry.get("ci95", [None, None])
    interval = f" (95 % CI {100 * low:.1f}-{100 * high:.1f} %)" if low is not None else ""
    return f"{100 * entry['value']:.1f} %{interval}, n = {entry.get('n', '?')}"


def _swap_rows(evaluation: dict[str, Any], specified: str) -> list[str]:
    rows = [
        f"| the output shows the z2 image's {specified} | {_rate(evaluation.get('specified_accuracy'))} |",
        f"| the output keeps the z1 image's other factors | {_rate(evaluation.get('complementary_preservation'))} |",
    ]
    if "complementary_hue_error_deg_median" in evaluation:
        rows.append(f"| hue error to the z1 image, median | {evaluation['complementary_hue_error_deg_median']} deg |")
    if "specified_hue_error_deg_median" in evaluation:
        rows.append(f"| hue error to the z2 image, median | {evaluation['specified_hue_error_deg_median']} deg |")
    reconstruction = evaluation.get("reconstruction", {})
    if reconstruction:
        rows.append(f"| reconstruction (MSE, PSNR) | {reconstruction['mse']}, {reconstruction['psnr_db']} dB |")
    return rows


def _probe_rows(probes: dict[str, Any]) -> list[str]:
    rows = []
    for question in ("digit_from_z1", "digit_from_z2", "hue_from_z1", "hue_from_z2"):
        found = probes.get(question)
        if not found:
            continue

        def show(value: Any) -> str:
            if isinstance(value, dict):
                return f"R^2 {value.get('r2', '-')}"
            return f"{100 * value:.1f} %" if isinstance(value, float | int) else "-"

        cells = [show(found.get(k)) for k in ("linear", "mlp", "ccvae_sampled", "chance")]
        rows.append(f"| {question.replace('_', ' ')} | " + " | ".join(cells) + " |")
    return rows


def model_card(manifest: Manifest) -> str:
    m, ev = manifest, manifest.evaluation
    specified = m.specified_factors[0]
    holds, rest = _FACTOR_WORDS.get(specified, (f"what pairs of images share ({specified})", "everything else"))
    shape = m.image
    lines = [
        f"# {m.name} (version {m.version})",
        "",
        m.description or "A two-code VAE exported to ONNX.",
        "",
        "## What the codes hold",
        "",
        f"- **z2** ({m.z2_dim} numbers): {holds}, the factor this model lets you control.",
        f"- **z1** ({m.z1_dim} numbers): {rest}.",
    ]
    kl = ev.get("code_information_nats")
    if kl:
        lines.append(f"- Information each code carries on the test split (KL to the prior): z1 {kl['z1']} nats, "
                     f"z2 {kl['z2']} nats.")  # fmt: skip
    pruned = m.config.get("export", {}).get("pruned")
    if pruned and (pruned["z1"] or pruned["z2"]):
        lines.append(
            f"- Pruned at export: dimensions {pruned['z1']} of z1 and {pruned['z2']} of z2 carried under "
            f"{pruned['below_nats']} nats each over training images; their codes are always 0 (the prior)."
        )
    lines += [
        "",
        "## Intended use and limits",
        "",
        f"- Input: {shape.channels}-channel images, resized to {shape.height}x{shape.width} by the preprocessing "
        "rule in `manifest.json`. Made for images like its training data (below); on other images the codes "
        "mean nothing reliable.",
        "- For swapping the specified factor between images, moving along a code, and studying disentanglement. "
        "Not for identifying people or for any decision about them.",
        "- The codes are the encoder's means; the probe figures below say how much of the other factor each "
        "code still carries.",
        "",
        "## Figures",
        "",
    ]
    if ev:
        lines += [f"Measured on {ev.get('split', 'the test split')} ({ev.get('pairs', '?')} swaps, source: "
                  f"{ev.get('source', '?')}, evaluated {ev.get('evaluated', '?')}).", ""]  # fmt: skip
        lines += ["| swap | figure |", "| --- | --- |", *_swap_rows(ev, specified)]
        probes = ev.get("probes")
        if probes:
            lines += ["", f"Leakage probes ({probes.get('split', '')}): accuracy, or R^2 for the hue.", ""]
            lines += ["| question | linear (means) | MLP (means) | 256-256 MLP (sampled codes) | chance |"]
            lines += ["| --- | --- | --- | --- | --- |", *_probe_rows(probes)]
    else:
        lines.append("Not evaluated yet: `python -m trainer evaluate models/NAME --data-dir DATA --write-manifest`.")
    data = m.training_data
    lines += [
        "",
        "## Training data",
        "",
        f"- {data.get('dataset', '?')}, {data.get('split', '?')} split, items: {data.get('items', '?')}; "
        f"{data.get('steps', '?')} steps ({data.get('epochs_completed', '?')} epochs) in "
        f"{round(data.get('train_seconds', 0) / 60, 1)} minutes.",
        "- The full training configuration is `config` in `manifest.json`; `python -m trainer train --config` "
        "takes it.",
        "",
        "## How to call it",
        "",
        "```sh",
    ]
    examples = [e.file for e in m.examples]
    first, second = (examples + ["a.png", "b.png"])[:2]
    folder = f"models/{m.name}"
    lines += [
        f"curl -F z1_image=@{folder}/{first} -F z2_image=@{folder}/{second} \\",
        f"     'http://127.0.0.1:8000/swap?model={m.name}' > swapped.png",
        f"curl -F image=@{folder}/{first} 'http://127.0.0.1:8000/encode?model={m.name}'",
        "```",
        "",
        "## Files",
        "",
        *[
            f"- `{name}`: SHA-256 `{entry.sha256}` (checked when the service loads the model)"
            for name, entry in sorted(m.files.items())
        ],  # fmt: skip
        "",
        "This card is written from `manifest.json` by the exporter (`python -m trainer card` rewrites it).",
    ]
    return "\n".join(lines) + "\n"


def write_card(folder: Path, manifest: Manifest) -> Path:
    path = folder / CARD_NAME
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(model_card(manifest))
    tmp.replace(path)
    return path
