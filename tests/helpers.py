"""Helpers shared by the tests: tiny configs and models of every kind, small videos, training."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
import toy_kind  # noqa: F401, E402  (registers the toy kind: every contract test covers it)

import hvrnn
from hvrnn.config import ExperimentConfig
from hvrnn.model import MODEL_PRESETS, StepContext, latent_noise

# This checkout's package, for the child interpreters of tests.
SRC = Path(__file__).resolve().parent.parent / "src"


def child_env(*paths: str | Path) -> dict[str, str]:
    """The environment of a test's child interpreter: this checkout's ``src``, then ``paths``,
    then the inherited PYTHONPATH; one OpenMP thread."""
    return {**os.environ, "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(SRC), *map(str, paths),
                                           os.environ.get("PYTHONPATH", "")])}


# The tiny preset of every registered model kind, with the overrides its contract tests use
# (tests/test_model_contract.py fails when a kind is missing here).
# Kinds whose prior is fixed (it reads no frame), so changing a frame cannot change it.
FIXED_PRIOR = {"savp"}


def tiny(preset: str = "tiny", *overrides: str) -> ExperimentConfig:
    """A preset with dotted overrides."""
    return hvrnn.load_config(preset, list(overrides))


def kind_config(kind: str, *overrides: str) -> ExperimentConfig:
    """The smallest preset of a registered model kind (``hvrnn.model.MODEL_PRESETS``)."""
    return tiny(MODEL_PRESETS[kind], *overrides)


def seeded_model(cfg: ExperimentConfig, seed: int = 0) -> hvrnn.model.VideoModel:
    """The model of ``cfg`` built after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return hvrnn.build_model(cfg.model)


def replace_section(cfg: ExperimentConfig, section: str, **changes) -> ExperimentConfig:
    """``cfg`` with some fields of one section changed."""
    return dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section),
                                                                    **changes)})


def video_batch(cfg: ExperimentConfig, b: int = 2, t: int = 4, seed: int = 0) -> torch.Tensor:
    """(b, n_ctx + t, C, H, W) uniform noise in [0, 1] shaped for ``cfg``."""
    g = torch.Generator().manual_seed(seed)
    d = cfg.data
    return torch.rand(b, d.n_ctx + t, d.channels, d.image_size, d.image_size, generator=g)


def noise(model, b: int, t: int, seed: int = 3) -> list[torch.Tensor]:
    """Seeded latent noise for ``b`` clips of ``t`` predicted frames."""
    return latent_noise(model, b, t, torch.Generator().manual_seed(seed))


def moving_square(cfg: ExperimentConfig, b: int = 4, t: int = 3) -> torch.Tensor:
    """A structured clip (a white square moving down one pixel a frame): something to learn."""
    x = torch.zeros_like(video_batch(cfg, b=b, t=t))
    for i in range(x.shape[1]):
        x[:, i, :, 8 + i: 16 + i, 8:16] = 1.0
    return x


def overfit(model, cfg: ExperimentConfig, x: torch.Tensor, steps: int, lr: float = 3e-3
            ) -> tuple[float, float]:
    """Adam on one batch with the model's own training terms, one optimiser per parameter
    group, each minimising its loss term (as the trainer does); returns the model's score term
    (``VideoModel.score_term``: the negative ELBO of a latent-variable model) at the first and
    at the last step."""
    from hvrnn.training.engine import loss_key

    groups = model.parameter_groups()
    opts = {name: torch.optim.Adam(params, lr=lr) for name, params in groups.items()}
    first = last = None
    for i in range(steps):
        terms = model.training_terms(x, cfg.loss, StepContext(step=i))
        for opt in opts.values():
            opt.zero_grad()
        for j, name in enumerate(groups):
            terms[loss_key(name)].backward(inputs=groups[name], retain_graph=j < len(groups) - 1)
        for opt in opts.values():
            opt.step()
        last = terms[model.score_term].item()
        first = last if first is None else first
    return first, last


def listening(model):
    """Perturb every weight, so that no output is constant by initialisation (the hierarchical
    VRNN's heads start input-independent) and a missed dependency cannot go unseen."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model


def check_step_matches_forward(model, cfg: ExperimentConfig, b: int = 2, t: int = 4) -> None:
    """The step API fed the true frames and the same noise reproduces the teacher-forced pass:
    the predicted frames (the sigmoid of the logits, or the frames of a kind that gives them),
    and every level's prior and posterior, to 1e-5."""
    k = cfg.data.n_ctx
    x, eps = video_batch(cfg, b=b, t=t), noise(model, b, t)
    with torch.no_grad():
        ref = model(x, eps)
        state = model.init_state(x[:, :k], posterior=True)
        outs = []
        for i in range(t):
            state, out = model.step(state, None, x[:, k + i], eps=[e[:, i] for e in eps])
            outs.append(out)
    if ref.logits is not None:
        torch.testing.assert_close(torch.stack([o.logits for o in outs], 1), ref.logits,
                                   rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.stack([o.mean for o in outs], 1), ref.mean,
                               rtol=0, atol=1e-5)
    for level in range(len(ref.prior)):
        for role in ("prior", "posterior"):
            for field in ("mean", "var"):
                got = torch.stack([getattr(getattr(o, role)[level], field) for o in outs], 1)
                torch.testing.assert_close(got, getattr(getattr(ref, role)[level], field),
                                           rtol=0, atol=1e-5)


def check_causal(model, cfg: ExperimentConfig, prior_levels_at_step: int = 1,
                 fixed_prior: bool = False) -> None:
    """Changing x_j leaves the predictions and posteriors of earlier steps and every prior
    before step j unchanged; at step j, the priors of the first ``prior_levels_at_step`` levels
    too (a dense prior's lower levels read the posterior samples of step j). Later outputs
    change (the priors too, unless ``fixed_prior``: a prior that reads no frame).
    """
    k, t, j = cfg.data.n_ctx, 5, 3
    x = video_batch(cfg, t=t)
    x2 = x.clone()
    x2[:, k + j - 1] = torch.rand_like(x2[:, k + j - 1])
    eps = noise(model, 2, t)
    with torch.no_grad():
        a, b = model(x, eps), model(x2, eps)
    s = j - 1  # the step that scores x_j
    torch.testing.assert_close(a.mean[:, :s], b.mean[:, :s], rtol=0, atol=0)
    for level, (pa, pb, qa, qb) in enumerate(zip(a.prior, b.prior, a.posterior, b.posterior,
                                                 strict=True)):
        upto = s + 1 if level < prior_levels_at_step else s
        for field in ("mean", "var"):
            torch.testing.assert_close(getattr(pa, field)[:, :upto],
                                       getattr(pb, field)[:, :upto], rtol=0, atol=0)
            torch.testing.assert_close(getattr(qa, field)[:, :s], getattr(qb, field)[:, :s],
                                       rtol=0, atol=0)
    if a.posterior:
        assert (a.posterior[0].mean[:, s] - b.posterior[0].mean[:, s]).abs().max() > 0
    assert (a.mean[:, s:] - b.mean[:, s:]).abs().max() > 0
    if a.prior and not fixed_prior:
        assert (a.prior[0].mean[:, s + 1:] - b.prior[0].mean[:, s + 1:]).abs().max() > 0
