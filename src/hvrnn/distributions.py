"""Diagonal Gaussians from raw network outputs, reparameterised sampling and analytic KL.

A head outputs ``2 * C`` channels: the first half is the mean, the second half ``scale_raw``;
the variance is ``softplus(scale_raw) + var_floor`` (docs/design.md sections 2 and 7). All of
this is computed in float32, also under autocast, because ``log(softplus(.))`` underflows early
in half precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class DiagonalGaussian:
    """Independent Gaussians per element. ``mean`` and ``var`` share any shape."""

    mean: Tensor
    var: Tensor

    @classmethod
    def from_raw(cls, raw: Tensor, dim: int, var_floor: float = 0.0) -> DiagonalGaussian:
        """Split ``raw`` along ``dim`` into (mean, scale_raw); variance = softplus + floor."""
        mean, scale_raw = raw.float().chunk(2, dim=dim)
        return cls(mean, F.softplus(scale_raw) + var_floor)

    @property
    def log_var(self) -> Tensor:
        return self.var.log()

    @property
    def std(self) -> Tensor:
        return self.var.sqrt()

    def rsample(self, eps: Tensor | None = None, temperature: float = 1.0,
                generator: torch.Generator | None = None) -> Tensor:
        """``mean + sqrt(temperature * var) * eps``; ``eps`` is drawn if not given.

        ``temperature`` multiplies the variance (docs/design.md section 7, item 7); 0 gives the
        mean.
        """
        if eps is None:
            eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device,
                              dtype=self.mean.dtype)
        if temperature == 1.0:
            return self.mean + self.std * eps
        return self.mean + (self.var * temperature).sqrt() * eps

    def draw(self, eps: Tensor | None = None, temperature: float = 1.0,
             generator: torch.Generator | None = None, use_mean: bool = False) -> Tensor:
        """The mean when ``use_mean``, else :meth:`rsample` (arguments as there)."""
        if use_mean:
            return self.mean
        return self.rsample(eps, temperature, generator=generator)

    def log_prob(self, z: Tensor) -> Tensor:
        """Element-wise log density at ``z``."""
        return -0.5 * (math.log(2 * math.pi) + self.log_var + (z - self.mean) ** 2 / self.var)

    def kl(self, other: DiagonalGaussian) -> Tensor:
        """Element-wise analytic KL(self || other)."""
        return 0.5 * (other.log_var - self.log_var
                      + (self.var + (self.mean - other.mean) ** 2) / other.var - 1.0)

    def map(self, fn) -> DiagonalGaussian:
        """Apply a tensor function (indexing, reshaping) to both parameters."""
        return DiagonalGaussian(fn(self.mean), fn(self.var))

    def to_torch(self) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.mean, self.std)
