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


def model_info(cfg: ExperimentConfig) -> dict[str, Any]:
    """Parameter counts per component, inert weights, and the centre-tap saving.

    Returns a JSON-ready dict: ``config``, ``kind``, ``parameters`` (per component and total),
    ``inert`` (weights of 3x3 kernels that only see 1x1 maps, less their centre taps: they can
    never receive a gradient), and, when ``center_tap_1x1`` is on, ``center_tap_saving`` (how
    many parameters the 3x3 layout would have had in addition) and, with a dense prior,
    ``prior_dense_extra`` (the prior-head weights that read the upper-level latents).
    """
    model = _shape_only(cfg.model)
    counts = count_parameters(model)
    info: dict[str, Any] = {
        "config": cfg.name,
        "kind": cfg.model.kind,
        "center_tap_1x1": cfg.model.center_tap_1x1,
        "prior_dense": cfg.model.prior_dense,
        "latent_levels": [
            {"resolution": r, "channels": c}
            for r, c in zip(cfg.model.latent_resolutions, cfg.model.level_channels, strict=True)
        ],
        "parameters": counts,
        "inert": model.inert_parameters(),
    }
    if cfg.model.center_tap_1x1:
        full = _shape_only(dataclasses.replace(cfg.model, center_tap_1x1=False))
        full_total = count_parameters(full)["total"]
        info["center_tap_saving"] = full_total - counts["total"]
        info["total_with_3x3_taps"] = full_total
    if cfg.model.prior_dense and len(cfg.model.latent_resolutions) > 1:
        # Only the prior heads widen: each reads the upper-level latents (SPEC 3.11 item 11).
        sparse = _shape_only(dataclasses.replace(cfg.model, prior_dense=False))
        info["prior_dense_extra"] = counts["total"] - count_parameters(sparse)["total"]
    return info


def format_info(info: dict[str, Any]) -> str:
    """Human-readable table of :func:`model_info`."""
    p = info["parameters"]
    lines = [f"{info['config']} ({info['kind']}): "
             + ", ".join(f"{lv['channels']}x{lv['resolution']}x{lv['resolution']}"
                         for lv in info["latent_levels"])
             + f" latents; prior_dense={info['prior_dense']}, "
             f"center_tap_1x1={info['center_tap_1x1']}"]
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
