"""Small helpers shared by the model tests (any registered model kind)."""

from __future__ import annotations

import torch

from hvrnn.objective import elbo_terms


def video_batch(cfg, b: int = 2, t: int = 4, seed: int = 0) -> torch.Tensor:
    """(b, n_ctx + t, C, H, W) uniform noise in [0, 1] shaped for ``cfg.model``."""
    g = torch.Generator().manual_seed(seed)
    m = cfg.model
    return torch.rand(b, m.n_ctx + t, m.image_channels, m.image_size, m.image_size, generator=g)


def moving_square(cfg, b: int = 4, t: int = 3) -> torch.Tensor:
    """A structured clip (a white square moving down one pixel a frame): something to learn."""
    x = torch.zeros_like(video_batch(cfg, b=b, t=t))
    for i in range(x.shape[1]):
        x[:, i, :, 8 + i: 16 + i, 8:16] = 1.0
    return x


def overfit(model, x: torch.Tensor, n_ctx: int, steps: int, lr: float = 3e-3
            ) -> tuple[float, float]:
    """Adam on one batch; returns the negative ELBO of the first and of the last step."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    first = last = None
    for _ in range(steps):
        terms = elbo_terms(model(x), x[:, n_ctx:], model.likelihood)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        last = terms["nelbo"].item()
        first = last if first is None else first
    return first, last
