"""The checkpoint file format: full training checkpoints, written atomically and read back
without unpickling code.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)``; anything else in the file (a crafted ``__reduce__`` payload,
a pickled class) is refused before it can run. Keys:

- ``format`` (``"hvrnn-checkpoint"``), ``format_version``, ``version`` (library), ``torch``
- ``step``: optimisation steps completed; ``world_size``: processes that trained it
- ``config``: the resolved :class:`~hvrnn.config.ExperimentConfig` as a plain dict
- ``model``: the model's ``state_dict``; ``optimizers``: the state dict of each optimiser by
  parameter group (``{"model": ...}``, more for a kind with several losses), or ``None``.
  Format version 1 stored a single ``optimizer``; it is read as the ``"model"`` group.
- ``rng``: torch, CUDA, numpy and python RNG states plus the latent-noise generator
  (:mod:`hvrnn.rng`)
- ``sampler``: ``{"epoch", "batch", "seed"}``, the data position the next step reads
- ``metrics``: the last logged training terms (floats)

Files are written to a temporary file in the same folder, fsynced, then ``os.replace``-d over
the target, so a crash at any moment leaves either the old or the new file, never half of one.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from hvrnn.config import ConfigError, ExperimentConfig, UnknownKindError, config_from_dict
from hvrnn.config.compare import config_differences
from hvrnn.errors import CheckpointError, NonFiniteError
from hvrnn.io.files import fsync_dir, is_temporary, write_atomically
from hvrnn.rng import capture_rng, restore_rng

FORMAT = "hvrnn-checkpoint"
FORMAT_VERSION = 2
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` via a same-folder temporary file, fsync and ``os.replace``
    (:func:`hvrnn.io.files.write_atomically`: a failure leaves ``path`` as it was and no
    temporary file, and names ``path``)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())

    write_atomically(path, write)
    fsync_dir(Path(path).parent)


def make_checkpoint(*, model: torch.nn.Module, step: int, cfg: ExperimentConfig,
                    optimizer: torch.optim.Optimizer | None = None,
                    optimizers: dict[str, torch.optim.Optimizer] | None = None,
                    rng: dict[str, Any] | None = None, sampler: dict[str, int] | None = None,
                    world_size: int = 1, metrics: dict[str, float] | None = None
                    ) -> dict[str, Any]:
    """The checkpoint dict (plain containers only) for a model and its training state.

    ``optimizers`` holds one optimiser per parameter group; ``optimizer`` is the single one of
    the ``"model"`` group (give one or the other, or neither).
    """
    from hvrnn import __version__

    if optimizer is not None:
        optimizers = {"model": optimizer, **(optimizers or {})}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "version": __version__,
        "torch": torch.__version__.split("+")[0],
        "step": int(step),
        "world_size": int(world_size),
        "config": cfg.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizers": ({name: opt.state_dict() for name, opt in optimizers.items()}
                       if optimizers else None),
        "rng": rng if rng is not None else capture_rng(),
        "sampler": dict(sampler or {}),
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
    }


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def step_path(run_dir: str | Path, step: int) -> Path:
    return checkpoint_dir(run_dir) / f"step_{step:08d}.pt"


def save_checkpoint(ckpt: dict[str, Any], run_dir: str | Path, keep: int = 0) -> Path:
    """Write ``checkpoints/step_<N>.pt`` and point ``checkpoints/last.pt`` at it, atomically.

    Args:
        ckpt: from :func:`make_checkpoint`.
        run_dir: the run directory.
        keep: keep this many newest ``step_*.pt`` files (0 = keep all). ``last.pt`` is
            always kept.

    Returns:
        The path of the step file.
    """
    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = step_path(run_dir, ckpt["step"])
    atomic_torch_save(ckpt, path)
    last = folder / "last.pt"
    tmp = folder / f".last.tmp-{os.getpid()}.pt"
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)  # a second name for the same bytes: no second write
    except OSError:
        atomic_torch_save(ckpt, last)
    else:
        try:
            os.replace(tmp, last)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(folder)
    if keep > 0:
        for old in list_checkpoints(run_dir)[:-keep]:
            old.unlink(missing_ok=True)
    return path


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """``step_*.pt`` files of a run, oldest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """``checkpoints/last.pt`` if present, else the newest ``step_*.pt``, else ``None``."""
    last = checkpoint_dir(run_dir) / "last.pt"
    if last.is_file():
        return last
    steps = list_checkpoints(run_dir)
    return steps[-1] if steps else None


def remove_stale_temporaries(run_dir: str | Path) -> None:
    """Delete the temporary files that a killed writer left behind (never a finished file);
    call it only while holding the run directory's lock."""
    for folder in (Path(run_dir), checkpoint_dir(run_dir), Path(run_dir) / "samples"):
        if folder.is_dir():
            for p in folder.iterdir():
                if is_temporary(p.name) and p.is_file():
                    p.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or the latest checkpoint of a run directory. A shipped model
    (``pretrained:<name>``) is resolved by :func:`hvrnn.sources.model_file`.

    Raises:
        CheckpointError: nothing found.
    """
    p = Path(path)
    if p.is_dir():
        found = latest_checkpoint(p)
        if found is None:
            raise CheckpointError(f"no checkpoint found in {str(p)!r} (expected checkpoints/"
                                  f"last.pt or checkpoints/step_*.pt)")
        return found
    if not p.exists():
        raise CheckpointError(f"checkpoint {str(p)!r} does not exist")
    return p


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict safely (``weights_only=True``) and check that it is ours.

    Args:
        path: a ``.pt`` file, or a run directory (its latest checkpoint is used).

    Raises:
        CheckpointError: missing, unreadable, corrupt, unsafe (holds code or arbitrary
            objects) or foreign file.
    """
    p = resolve_checkpoint(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pickle-protocol notes on foreign files
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint '{p}': {exc.strerror or exc}") from None
    except Exception as exc:  # torch raises many types for truncated or foreign files
        message = str(exc)
        found = re.search(r"(?:GLOBAL|global) ([\w.]+)", message)
        if found and ("not an allowed global" in message or "Unsupported global" in message):
            raise CheckpointError(
                f"checkpoint {str(p)!r} was refused: it references {found.group(1)}, not just "
                f"tensors and plain containers, so loading it could run code") from None
        detail = re.search(r"WeightsUnpickler error: *\n*\s*(.+)", message)
        text = detail.group(1) if detail else \
            (message.strip().splitlines()[0] if message.strip() else type(exc).__name__)
        raise CheckpointError(f"checkpoint {str(p)!r} is corrupt or not a checkpoint "
                              f"({text.strip()[:200]})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{str(p)!r} is not an hvrnn checkpoint (no "
                              f"'format: {FORMAT}' entry)")
    missing = [k for k in ("step", "config", "model") if k not in obj]
    if missing:
        raise CheckpointError(f"checkpoint {str(p)!r} lacks {', '.join(missing)}")
    if not isinstance(obj["model"], dict):
        raise CheckpointError(f"checkpoint '{p}': its 'model' entry is not a state dict")
    check_finite_weights(obj["model"], p)
    return obj


def check_finite_weights(state: dict[str, Any], path: str | Path) -> None:
    """Refuse model weights that hold NaN or infinite values (such a model samples garbage).

    Raises:
        NonFiniteError: naming how many tensors are affected and the first of them.
    """
    bad = [k for k, v in state.items() if isinstance(v, torch.Tensor)
           and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise NonFiniteError(f"checkpoint '{path}' holds NaN or infinite weights in "
                             f"{len(bad)} of {len(state)} tensors (first: {bad[0]}); it cannot "
                             "be used", hint="use an earlier checkpoint of the run")


def optimizer_states(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The optimiser state dicts of a checkpoint by parameter group (format 1: ``"model"``)."""
    if ckpt.get("optimizers") is not None:
        return dict(ckpt["optimizers"])
    return {"model": ckpt["optimizer"]} if ckpt.get("optimizer") is not None else {}


def checkpoint_config(ckpt: dict[str, Any], path: str | Path = "checkpoint") -> ExperimentConfig:
    """Rebuild the frozen config stored in a checkpoint dict (earlier layouts migrated)."""
    try:
        return config_from_dict(ckpt["config"], warn=False)
    except UnknownKindError as exc:
        raise CheckpointError(f"{str(path)!r} holds a model of kind {exc.kind!r}, which is not "
                              "registered", hint=exc.hint) from None
    except ConfigError as exc:
        raise CheckpointError(f"the config stored in {str(path)!r} is not valid for this "
                              f"version of hvrnn: {exc}") from None


def check_compatible(ckpt: dict[str, Any], cfg: ExperimentConfig, path: str | Path) -> None:
    """Raise :class:`CheckpointError` naming the first key where ``cfg`` and the checkpoint
    differ (run-control keys such as ``train.max_steps`` may differ)."""
    diffs = config_differences(ckpt["config"], cfg.to_dict())
    if diffs:
        key, old, new = diffs[0]
        more = f" (and {len(diffs) - 1} more: {', '.join(d[0] for d in diffs[1:4])})" \
            if len(diffs) > 1 else ""
        raise CheckpointError(f"checkpoint {str(path)!r} was written with {key}={old!r} but "
                              f"the config has {key}={new!r}{more}")


def load_state_checked(model: torch.nn.Module, state: dict[str, Any], path: str | Path) -> None:
    """``model.load_state_dict(state)``; a mismatch raises one-line :class:`CheckpointError`."""
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(f"checkpoint {str(path)!r} does not fit the model its config "
                              f"describes: {' '.join(first[:2])[:300]}") from None


def load_checkpoint_file(path: str | Path, device: str | torch.device = "cpu"
                         ) -> tuple[torch.nn.Module, ExperimentConfig]:
    """Rebuild the model and its config from a training checkpoint alone.

    :func:`hvrnn.load_checkpoint` (:func:`hvrnn.sources.load_model`) also takes shipped models.

    Args:
        path: a checkpoint file or a run directory (its latest checkpoint).
        device: where to put the model.

    Returns:
        ``(model, cfg)``: the model in eval mode with the stored weights, and the frozen config.

    Raises:
        CheckpointError: missing, corrupt, unsafe or foreign checkpoint, or weights that do not
            fit the model the stored config describes.
    """
    p = resolve_checkpoint(path)
    ckpt = read_checkpoint(p)
    cfg = checkpoint_config(ckpt, p)
    return build_loaded(cfg, ckpt["model"], p, device), cfg


def build_loaded(cfg: ExperimentConfig, state: dict[str, Any], path: str | Path,
                 device: str | torch.device = "cpu") -> torch.nn.Module:
    """The model ``cfg.model`` describes with the weights ``state`` (read from ``path``), in
    eval mode on ``device``; the memory it needs is checked first.

    Raises:
        CheckpointError: the weights do not fit the model (naming the key).
    """
    from hvrnn.memory import allocating
    from hvrnn.model import build_model

    with allocating(cfg.model, training=False):
        model = build_model(cfg.model)
        load_state_checked(model, state, path)
        return model.to(device).eval()


__all__ = ["FORMAT", "FORMAT_VERSION", "atomic_torch_save", "build_loaded", "capture_rng",
           "check_compatible", "check_finite_weights", "checkpoint_config", "latest_checkpoint",
           "list_checkpoints", "load_checkpoint_file", "load_state_checked", "make_checkpoint",
           "optimizer_states", "read_checkpoint", "remove_stale_temporaries",
           "resolve_checkpoint", "restore_rng", "save_checkpoint", "step_path"]
