"""Parameter accounting for ``hvrnn info``."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from hvrnn.config import ExperimentConfig, ModelConfig
from hvrnn.model import build_model, count_parameters


def _shape_only(cfg: ModelConfig) -> torch.nn.Module:
    """The model on the meta device: parameter shapes without memory or initialisation work."""
    with torch.device("meta"):
        return build_model(cfg)


def _total_with(cfg: ModelConfig, **changes: Any) -> int:
    return count_parameters(_shape_only(dataclasses.replace(cfg, **changes)))["total"]


def model_info(cfg: ExperimentConfig) -> dict[str, Any]:
    """Parameter counts per component, inert weights, and what two layout options cost.

    Returns a JSON-ready dict: ``config``, ``kind``, ``latent_levels`` (channels and resolution
    of each), ``parameters`` (per component and total), ``inert`` (weights of 3x3 kernels that
    only see 1x1 maps, less their centre taps: they can never receive a gradient), and for a
    kind that has these options: ``center_tap_1x1`` and, when it is on, ``center_tap_saving``
    (how many parameters the 3x3 layout would have had in addition) and
    ``total_with_3x3_taps``; ``prior_dense`` and, with a dense prior over several levels,
    ``prior_dense_extra`` (the prior-head weights that read the upper-level latents).
    """
    m = cfg.model
    model = _shape_only(m)
    counts = count_parameters(model)
    info: dict[str, Any] = {
        "config": cfg.name,
        "kind": m.kind,
        "latent_levels": [{"resolution": h, "channels": c} for c, h, _ in m.latent_shapes],
        "parameters": counts,
        "inert": model.inert_parameters(),
    }
    options = {f.name for f in dataclasses.fields(m)}
    if "center_tap_1x1" in options:
        info["center_tap_1x1"] = m.center_tap_1x1
        if m.center_tap_1x1:
            full_total = _total_with(m, center_tap_1x1=False)
            info["center_tap_saving"] = full_total - counts["total"]
            info["total_with_3x3_taps"] = full_total
    if "prior_dense" in options:
        info["prior_dense"] = m.prior_dense
        if m.prior_dense and len(m.latent_shapes) > 1:
            # Only the prior heads widen: each reads the upper-level latents (Eq. 7).
            info["prior_dense_extra"] = counts["total"] - _total_with(m, prior_dense=False)
    return info


def format_info(info: dict[str, Any]) -> str:
    """Human-readable table of :func:`model_info`."""
    p = info["parameters"]
    options = ", ".join(f"{k}={info[k]}" for k in ("prior_dense", "center_tap_1x1") if k in info)
    levels = ", ".join(f"{lv['channels']}x{lv['resolution']}x{lv['resolution']}"
                       for lv in info["latent_levels"])
    lines = [f"{info['config']} ({info['kind']}): "
             + (f"{levels} latents" if levels else "deterministic, no latents")
             + (f"; {options}" if options else "")]
    width = max(len(k) for k in p)
    for k, v in p.items():
        if k != "total":
            lines.append(f"  {k:<{width}}  {v:>13,}")
    lines.append(f"  {'total':<{width}}  {p['total']:>13,}")
    lines.append(f"  {'inert':<{width}}  {info['inert']:>13,}  (3x3 taps that only see 1x1 maps)")
    if "center_tap_saving" in info:
        lines.append(f"  center_tap_1x1 saves {info['center_tap_saving']:,} parameters "
                     f"({info['total_with_3x3_taps']:,} with 3x3 kernels on 1x1 maps)")
    if "prior_dense_extra" in info:
        lines.append(f"  prior_dense adds {info['prior_dense_extra']:,} prior-head weights "
                     "(model.prior_dense=false gives the official vrnn_hier layout)")
    return "\n".join(lines)


def presets_info() -> list[dict[str, Any]]:
    """Every preset: name, model kind, frame size, channels and parameter count. The presets of
    the package first, then the preset files registered by kinds imported since (their path;
    ``hvrnn --import MODULE info --presets``)."""
    from hvrnn.config import load_config, preset_names
    from hvrnn.model import MODEL_PRESETS

    names = preset_names()
    rows = []
    for name in [*names, *(p for p in MODEL_PRESETS.values() if p not in names)]:
        cfg = load_config(name)
        rows.append({"preset": name, "kind": cfg.model.kind, "image_size": cfg.data.image_size,
                     "channels": cfg.data.channels,
                     "parameters": count_parameters(_shape_only(cfg.model))["total"]})
    return rows


def format_presets(rows: list[dict[str, Any]]) -> str:
    """One line per preset of :func:`presets_info`."""
    width = max(len(r["preset"]) for r in rows)
    kind = max(len(r["kind"]) for r in rows)
    return "\n".join(f"{r['preset']:<{width}}  {r['kind']:<{kind}}  {r['image_size']:>3}x"
                     f"{r['image_size']:<3} x{r['channels']}  {r['parameters']:>13,} parameters"
                     for r in rows)
