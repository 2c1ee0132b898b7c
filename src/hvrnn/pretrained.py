"""Pretrained models shipped inside the package: load them offline, list them, export new ones.

Each model is a folder ``hvrnn/pretrained/<name>/`` with three files:

* ``model.safetensors`` — the weights (float32 tensors, no pickle, nothing executable);
* ``config.yaml`` — the full experiment config the model was trained with;
* ``MODEL_CARD.md`` — the model card: a YAML front matter (between two ``---`` lines) holding
  the machine-readable facts (``sha256`` of the weights, data, seed, recipe, steps, wall time,
  machine, metrics under a named protocol), then prose.

Everywhere a checkpoint is accepted (``hvrnn sample``, ``hvrnn evaluate``,
:func:`hvrnn.load_checkpoint`: :mod:`hvrnn.sources`), ``pretrained:<name>`` names a shipped
model. The weights are checked against the SHA-256 of the model card every time they are
loaded, so a damaged install gives one clear error instead of a silently different model.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import yaml

from hvrnn.errors import CheckpointError
from hvrnn.io.files import sha256_file

PRETRAINED_DIR = Path(__file__).parent / "pretrained"
PREFIX = "pretrained:"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.yaml"
CARD_FILE = "MODEL_CARD.md"


def available() -> list[str]:
    """Names of the shipped models (folders holding weights, config and card)."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir()
                  if (p / WEIGHTS_FILE).is_file() and (p / CARD_FILE).is_file())


def is_pretrained(source: str | Path) -> bool:
    """Whether ``source`` is a ``pretrained:<name>`` reference."""
    return str(source).startswith(PREFIX)


def folder(name: str) -> Path:
    """The folder of a shipped model. Raises CheckpointError for an unknown name."""
    name = name[len(PREFIX):] if is_pretrained(name) else name
    if name not in available():
        listed = ", ".join(available()) or "none"
        raise CheckpointError(f"unknown pretrained model {name!r} (shipped: {listed}); "
                              f"`hvrnn info --pretrained` lists them")
    return PRETRAINED_DIR / name


def read_card(path: str | Path) -> dict[str, Any]:
    """The YAML front matter of a ``MODEL_CARD.md`` as a dict.

    Raises:
        CheckpointError: the file is missing or has no valid front matter.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"cannot read model card {str(path)!r}: {exc}") from None
    parts = text.split("---\n", 2)
    if len(parts) < 3 or parts[0].strip():
        raise CheckpointError(f"model card {str(path)!r} has no '---' front matter")
    try:
        card = yaml.safe_load(parts[1])
    except yaml.YAMLError as exc:
        raise CheckpointError(f"model card {str(path)!r}: invalid front matter "
                              f"({str(exc).splitlines()[0]})") from None
    if not isinstance(card, dict) or "sha256" not in card:
        raise CheckpointError(f"model card {str(path)!r} does not record the weights' sha256")
    return card


def model_card(name: str) -> dict[str, Any]:
    """The machine-readable model card of a shipped model (see the module docstring)."""
    return read_card(folder(name) / CARD_FILE)


def load_weights_folder(path: str | Path, device: str = "cpu") -> tuple[Any, Any]:
    """Model and config from a folder (or its ``model.safetensors``) written by
    :func:`export_pretrained`, after checking the weights' SHA-256 against the model card.

    Raises:
        CheckpointError: a file is missing or unreadable, the weights do not match the card's
            SHA-256, or they do not fit the model the config describes.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from hvrnn.checkpoint import build_loaded, check_finite_weights, checkpoint_config

    base = Path(path)
    base = base.parent if base.name == WEIGHTS_FILE else base
    weights = base / WEIGHTS_FILE
    card = read_card(base / CARD_FILE)
    try:
        digest = sha256_file(weights)
        raw = yaml.safe_load((base / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CheckpointError(f"cannot read pretrained model {str(base)!r}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
    if digest != card["sha256"]:
        shipped = base.resolve().parent == PRETRAINED_DIR.resolve()
        advice = ("reinstall hvrnn" if shipped else
                  "export it again (scripts/export_pretrained.py) or restore the folder")
        raise CheckpointError(
            f"weights {str(weights)!r} are damaged: SHA-256 {digest[:16]}... differs from "
            f"{str(card['sha256'])[:16]}... in its model card; {advice}")
    cfg = checkpoint_config({"config": raw}, base / CONFIG_FILE)
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"cannot read weights {str(weights)!r}: {exc}") from None
    check_finite_weights(state, weights)
    return build_loaded(cfg, state, weights, device), cfg


def load_pretrained(name: str, device: str = "cpu") -> tuple[Any, Any]:
    """Load a shipped model: ``model, cfg = hvrnn.load_pretrained("smmnist32")``.

    Nothing is downloaded: the weights are part of the package.

    Args:
        name: a name listed by :func:`available` (``"pretrained:"`` prefix allowed).
        device: where to put the model.

    Returns:
        ``(model, cfg)``: the model in eval mode and its frozen :class:`ExperimentConfig`.

    Raises:
        CheckpointError: unknown name, or damaged files (the SHA-256 check fails).
    """
    return load_weights_folder(folder(name), device)


def portable_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """A run's config as shipped: a data root outside the working folder (the path on the
    machine that trained it) becomes ``data/<its last folder>``, the layout every preset uses,
    so that the model reads its test clips where the user prepared them."""
    root = Path(cfg["data"]["root"])
    if root.is_absolute() or ".." in root.parts:
        cfg = {**cfg, "data": {**cfg["data"], "root": f"data/{root.name}"}}
    return cfg


def export_pretrained(checkpoint: str | Path, out: str | Path, card: dict[str, Any],
                      prose: str = "", force: bool = False) -> Path:
    """Write a checkpoint's weights, config and model card as a pretrained-model folder.

    Args:
        checkpoint: a training checkpoint (``.pt``) or run directory.
        out: the folder to create (e.g. ``src/hvrnn/pretrained/<name>``).
        card: facts for the front matter (data, seed, recipe, steps, wall time, machine,
            metrics...); ``sha256``, ``parameters``, ``kind`` and ``exported`` are added.
        prose: Markdown written after the front matter.
        force: replace an existing folder's files.

    Returns:
        The folder written.
    """
    from safetensors.torch import save_file

    from hvrnn.checkpoint import load_checkpoint_file
    from hvrnn.io.output import OutputFolder

    model, cfg = load_checkpoint_file(checkpoint)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with OutputFolder(out, force=force) as folder:
        folder.write(WEIGHTS_FILE, lambda tmp: save_file(state, tmp))
        folder.write_text(CONFIG_FILE, yaml.safe_dump(portable_config(cfg.to_dict()),
                                                      sort_keys=False))
        facts = {**card, "kind": cfg.model.kind,
                 "parameters": sum(p.numel() for p in model.parameters()),
                 "sha256": sha256_file(folder.temp(WEIGHTS_FILE)),
                 "exported": _dt.date.today().isoformat()}
        front = yaml.safe_dump(facts, sort_keys=False, allow_unicode=True)
        folder.write_text(CARD_FILE, f"---\n{front}---\n\n{prose.strip()}\n", marker=True)
    return Path(out)


def describe() -> list[dict[str, Any]]:
    """One summary dict per shipped model (for ``hvrnn info --pretrained``)."""
    rows = []
    for name in available():
        card = model_card(name)
        size = (PRETRAINED_DIR / name / WEIGHTS_FILE).stat().st_size
        rows.append({"name": name, "reference": PREFIX + name, "kind": card.get("kind"),
                     "parameters": card.get("parameters"), "megabytes": round(size / 1e6, 2),
                     "protocol": card.get("protocol"), "metrics": card.get("metrics", {}),
                     "summary": card.get("summary", "")})
    return rows
