"""Comparing two configs key by key: what a resumed run or a checkpoint may not change."""

from __future__ import annotations

from typing import Any

from hvrnn.config.migration import migrate

# Run-control keys that may change when a run is resumed (train longer, log more often, ...).
RESUMABLE_KEYS = frozenset({
    "train.max_steps", "train.max_minutes", "train.checkpoint_every", "train.log_every",
    "train.val_every", "train.image_every", "train.keep_checkpoints", "train.device",
    "train.compile", "train.compile_scope", "train.compile_mode", "train.fused_optimizer",
    "train.finite_check", "train.channels_last", "eval.compile", "eval.compile_mode",
    "data.root", "data.num_workers", "eval.protocol", "eval.n_samples", "eval.horizon",
    "eval.temperature", "eval.batch_size", "eval.seed", "eval.max_sequences",
    "eval.lpips_weights", "eval.i3d_weights",
    # Memory/speed only: the same function and gradients (up to float rounding).
    "model.activation_checkpointing",
})

def flatten_config(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"n_z": 8}} -> {"model.n_z": 8}`` (lists become tuples)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.update(flatten_config(v, key))
        else:
            out[key] = tuple(v) if isinstance(v, list) else v
    return out


def config_differences(saved: dict[str, Any], current: dict[str, Any],
                       ignore: frozenset[str] = RESUMABLE_KEYS) -> list[tuple[str, Any, Any]]:
    """Keys whose values differ between two plain config dicts, as (key, saved, current).

    ``saved`` may be of an earlier layout (a run started by an earlier version); it is migrated
    before the comparison.
    """
    a, b = flatten_config(migrate(saved, warn=False)), flatten_config(current)
    keys = sorted(set(a) | set(b))
    return [(k, a.get(k, "<absent>"), b.get(k, "<absent>")) for k in keys
            if k not in ignore and a.get(k, "<absent>") != b.get(k, "<absent>")]


__all__ = ["RESUMABLE_KEYS", "config_differences", "flatten_config"]
