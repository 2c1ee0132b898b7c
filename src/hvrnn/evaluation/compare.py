"""Side-by-side comparison of several models on one protocol (``hvrnn compare``), the view the
paper is made of: a table (its Tables 1-2 and supplementary Section D), per-frame curves and
figures laid out like its supplementary Figures C.1-C.3 (docs/evaluation.md).

An entry is a run directory, a checkpoint (or ``pretrained:<name>``), a predictions file or an
evaluation folder. Its
evaluation for the protocol is reused where it exists (where ``hvrnn evaluate`` writes it by
default, or the folder given), otherwise it is evaluated into ``<out>/evaluations/<label>``
through the evaluation package. Entries scored under different protocols (another id, or
other settings than the number of samples) are refused.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hvrnn.errors import UserError
from hvrnn.evaluation.protocols import Protocol, get_protocol
from hvrnn.io.files import sha256_file


@dataclass
class Entry:
    """One compared model.

    Attributes:
        label: its name in the table and figures.
        source: the path given.
        kind: ``run``, ``checkpoint``, ``predictions`` or ``evaluation``.
        checkpoint: the checkpoint file (runs and checkpoints), else None.
        metrics_dir: the evaluation folder reused or written (set once evaluated).
        metrics: what its metrics.json holds (set once evaluated).
    """

    label: str
    source: Path
    kind: str
    checkpoint: Path | None = None
    metrics_dir: Path | None = None
    metrics: dict[str, Any] | None = None

    @property
    def predictions(self) -> Path | None:
        """The predictions file of its evaluation (samples and context), if one was kept."""
        if self.kind == "predictions" and self.source.suffix == ".npz":
            return self.source  # else (OpenSTL's .npy) the evaluation's converted copy
        name = (self.metrics or {}).get("predictions_file")
        if name and Path(name).is_file():
            return Path(name)
        local = self.metrics_dir / "predictions.npz" if self.metrics_dir else None
        return local if local is not None and local.is_file() else None

    @property
    def model_kind(self) -> str:
        cfg = (self.metrics or {}).get("model_config") or {}
        return (cfg.get("model") or {}).get("kind", "predictions")


def _read_metrics(folder: Path) -> dict[str, Any] | None:
    path = folder / "metrics.json"
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8
        raise UserError(f"cannot read {str(path)!r}: {exc}") from None
    if not isinstance(metrics, dict) or not isinstance(metrics.get("metrics"), dict) or \
            not isinstance(metrics.get("protocol"), dict):
        raise UserError(f"{str(path)!r} is not the metrics.json of an evaluation (an object "
                        "with 'metrics' and 'protocol'); evaluate the entry again")
    return metrics


def resolve_entry(source: str | Path, label: str | None, protocol: Protocol) -> Entry:
    """What ``source`` is and where its evaluation for ``protocol`` would be.

    Raises:
        UserError: the path does not exist or is none of the accepted kinds.
    """
    from hvrnn import pretrained
    from hvrnn.evaluation.predictions import predictions_eval_folder
    from hvrnn.outputs import default_output_base
    from hvrnn.sources import model_file

    if pretrained.is_pretrained(source):  # a shipped model, pretrained:<name>
        ckpt = model_file(source)
        return Entry(label or str(source)[len(pretrained.PREFIX):], Path(str(source)),
                     "checkpoint", checkpoint=ckpt,
                     metrics_dir=_evaluated(default_eval_folders(source, ckpt, protocol)))
    path = Path(source)
    if not path.exists():
        raise UserError(f"{str(path)!r} does not exist")
    if path.is_dir() and (path / "metrics.json").is_file():
        return Entry(label or _evaluation_label(path), path, "evaluation", metrics_dir=path)
    if path.suffix in (".npz", ".npy"):  # .npy: OpenSTL's preds.npy
        entry = Entry(label or path.stem, path, "predictions")
        entry.metrics_dir = _evaluated([path.parent, predictions_eval_folder(path, protocol),
                                        path.parent / f"eval-{protocol.id}"])
        return entry
    ckpt = model_file(path)  # UserError for anything else
    base = default_output_base(path)
    name = path.name if path.is_dir() else f"{base.name}/{ckpt.stem}"
    return Entry(label or name, path, "run" if path.is_dir() else "checkpoint",
                 checkpoint=ckpt,
                 metrics_dir=_evaluated(default_eval_folders(path, ckpt, protocol)))


def _evaluation_label(folder: Path) -> str:
    """An evaluation folder named after what it scored (``<run>/<checkpoint>``, a pretrained
    model's name or a predictions file's), not after the folder (often the protocol id)."""
    import json

    try:
        res = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError):
        return folder.name
    ckpt = res.get("checkpoint") if isinstance(res, dict) else None
    if isinstance(ckpt, str) and ckpt:
        if ckpt.startswith("pretrained:"):
            return ckpt[len("pretrained:"):]
        path = Path(ckpt)
        if path.suffix == ".safetensors":  # a shipped model: hvrnn/pretrained/<name>/
            return path.parent.name
        return f"{path.parent.parent.name}/{path.stem}" if path.parent.name == "checkpoints" \
            else path.stem
    predictions = res.get("predictions_file") if isinstance(res, dict) else None
    return Path(predictions).stem if isinstance(predictions, str) and predictions else folder.name


def _evaluated(folders: list[Path]) -> Path | None:
    """The first of ``folders`` that holds a metrics.json (else the first, or None)."""
    found = [d for d in folders if (d / "metrics.json").is_file()]
    return found[0] if found else (folders[0] if folders else None)


def default_eval_folders(source: str | Path, ckpt: Path, protocol: Protocol) -> list[Path]:
    """Where ``hvrnn evaluate`` writes the evaluation of a checkpoint under ``protocol`` by
    default (:func:`hvrnn.evaluation.from_checkpoint.default_eval_folder`; with other options,
    a name that starts with the protocol id), then where earlier versions wrote it
    (``eval/<protocol>``)."""
    from hvrnn.evaluation.from_checkpoint import default_eval_folder
    from hvrnn.outputs import default_output_base

    folder = default_eval_folder(source, ckpt, protocol)
    others = sorted(folder.parent.glob(f"{protocol.id}-*")) if folder.parent.is_dir() else []
    return [folder, *others, default_output_base(source) / "eval" / protocol.id]


def _reusable(entry: Entry) -> dict[str, Any] | None:
    """The entry's existing evaluation, if it was made from this very checkpoint or file."""
    if entry.metrics_dir is None:
        return None
    metrics = _read_metrics(entry.metrics_dir)
    if metrics is None:
        return None
    if entry.checkpoint is not None:
        return metrics if metrics.get("checkpoint_sha256") == sha256_file(entry.checkpoint) \
            else None
    if entry.kind == "predictions":
        same = metrics.get("predictions_sha256") == sha256_file(entry.source) or \
            Path(metrics.get("predictions_file") or "").resolve() == entry.source.resolve()
        return metrics if same else None
    return metrics


def evaluation_folder_name(label: str) -> str:
    """The folder name ``DIR/evaluations/<name>`` of the entry labelled ``label``: the label
    with ``%``, ``/`` and every other character but letters, digits and ``_.-~``
    percent-encoded, and a leading ``.`` too (``a/b`` -> ``a%2Fb``, ``..`` -> ``%2E.``). The
    encoding is one-to-one, so distinct labels never share a folder, and no name leaves
    ``evaluations/`` or is hidden."""
    name = urllib.parse.quote(label, safe="")
    return "%2E" + name[1:] if name.startswith(".") else name


def protocol_mismatch(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """How two evaluations' protocols differ ("id x vs y", "max_sequences 4 vs 8"), ignoring
    the number of samples (a deterministic model is scored with one); None if they agree."""
    if a.get("protocol_id") != b.get("protocol_id"):
        return f"protocol {a.get('protocol_id')} vs {b.get('protocol_id')}"
    pa, pb = a.get("protocol") or {}, b.get("protocol") or {}
    for key in sorted(set(pa) | set(pb)):
        if key != "n_samples" and pa.get(key) != pb.get(key):
            return f"{key} {pa.get(key)!r} vs {pb.get(key)!r}"
    if a.get("n_sequences") != b.get("n_sequences"):
        return f"n_sequences {a.get('n_sequences')} vs {b.get('n_sequences')}"
    return None


def check_same_protocol(entries: list[Entry], protocol: Protocol) -> None:
    """Refuse entries scored under another protocol than ``protocol`` or than each other."""
    scored = [e for e in entries if e.metrics is not None]
    for e in scored:
        if e.metrics.get("protocol_id") != protocol.id:
            raise UserError(f"{e.label} was scored under protocol {e.metrics.get('protocol_id')}"
                            f", not {protocol.id}: entries must share one protocol")
    for e in scored[1:]:
        diff = protocol_mismatch(scored[0].metrics, e.metrics)
        if diff:
            raise UserError(f"{scored[0].label} and {e.label} were scored under different "
                            f"protocols ({diff}): entries must share one protocol")


def _labels(sources: list[str | Path], labels: list[str] | None) -> list[str | None]:
    if labels is None:
        return [None] * len(sources)
    if len(labels) != len(sources):
        raise UserError(f"--labels has {len(labels)} names for {len(sources)} entries")
    empty = [i for i, label in enumerate(labels) if not label.strip()]
    if empty:
        raise UserError(f"--labels: name {empty[0] + 1} is empty")
    return list(labels)


def collect_entries(sources: list[str | Path], protocol: str | Protocol,
                    labels: list[str] | None = None) -> list[Entry]:
    """Resolve every entry and attach the evaluations that can be reused; check that those
    share the protocol. Nothing is evaluated here.

    Raises:
        UserError: a missing or unknown entry, a label count or a protocol that does not match.
    """
    p = get_protocol(protocol)
    if not sources:
        raise UserError("give at least one run, checkpoint or predictions file")
    entries = [resolve_entry(s, lab, p) for s, lab in zip(sources, _labels(sources, labels),
                                                          strict=True)]
    names = [e.label for e in entries]
    if len(set(names)) != len(names):
        raise UserError(f"entry labels repeat ({', '.join(names)}); name them with --labels")
    for e in entries:
        e.metrics = _reusable(e)
        if e.kind == "evaluation" and e.metrics is None:
            raise UserError(f"{str(e.source)!r} holds no metrics.json")
    check_same_protocol(entries, p)
    return entries


def claim_evaluation_folders(entries: list[Entry], out: Path, force: bool) -> None:
    """Where each entry without a reusable evaluation will be evaluated:
    ``out/evaluations/<name>`` (:func:`evaluation_folder_name`). An evaluation of this very
    entry found there (an earlier comparison into ``out``) is reused; any other evaluation
    files there are refused unless ``force``, before anything is evaluated.

    Raises:
        UserError: a folder holds another evaluation's files and ``force`` is not set.
    """
    from hvrnn.evaluation.request import OUTPUTS
    from hvrnn.io.files import check_output_dir

    for e in entries:
        if e.metrics is not None:
            continue
        folder = out / "evaluations" / evaluation_folder_name(e.label)
        if e.kind != "evaluation" and (folder / "metrics.json").is_file():
            earlier = Entry(e.label, e.source, e.kind, e.checkpoint, folder)
            e.metrics = _reusable(earlier)
            if e.metrics is not None:
                e.metrics_dir = folder
                continue
        check_output_dir(folder, force=force, what="evaluation folder",
                         watched=(*OUTPUTS, "predictions.npz"),
                         advice=f"it holds an evaluation of another entry labelled "
                                f"{e.label!r}; pass --force to replace it, or choose another "
                                "--out or --labels")
        e.metrics_dir = folder


def evaluate_missing(entries: list[Entry], protocol: str | Protocol, out: Path,
                     options: dict[str, Any], force: bool = False) -> None:
    """Evaluate the entries without a reusable evaluation into ``out/evaluations/<name>``
    (:func:`claim_evaluation_folders`; ``force``: replace another evaluation's files there).

    ``options`` are keyword arguments of the evaluation functions (``data_root``,
    ``max_sequences``, ``n_samples``, ``device``, metric weights). Unless given,
    ``max_sequences`` follows an evaluation that is reused, so that the entries can agree.
    """
    from hvrnn.evaluation.from_checkpoint import evaluate_checkpoint
    from hvrnn.evaluation.predictions import evaluate_predictions_file

    p = get_protocol(protocol)
    reused = [e.metrics for e in entries if e.metrics is not None]
    opts = dict(options)
    if not opts.get("max_sequences") and reused:
        opts["max_sequences"] = reused[0]["protocol"].get("max_sequences") or None
    for e in entries:
        if e.metrics is not None:
            continue
        e.metrics_dir = out / "evaluations" / evaluation_folder_name(e.label)
        if e.kind == "predictions":
            e.metrics = evaluate_predictions_file(
                e.source, p, e.metrics_dir, data_root=opts.get("data_root"),
                lpips_weights=opts.get("lpips_weights"), i3d_weights=opts.get("i3d_weights"),
                max_sequences=opts.get("max_sequences"), device=opts.get("device", "cpu"),
                force=force).record
        else:
            e.metrics = evaluate_checkpoint(e.checkpoint, p, e.metrics_dir, force=force,
                                            config_defaults=False, **opts).record
    check_same_protocol(entries, p)


__all__ = ["Entry", "check_same_protocol", "claim_evaluation_folders", "collect_entries",
           "evaluate_missing", "evaluation_folder_name", "protocol_mismatch", "resolve_entry"]
