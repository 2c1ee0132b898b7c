"""The ``loss`` section: what training minimises and evaluation reports (docs/design.md
section 2), each setting in this one place.

A model kind reads the settings it uses (:meth:`~hvrnn.config.ModelConfig.check_loss` refuses
one it cannot honour); a kind with its own objective (SAVP, PredNet) has its weights in its
model section.
"""

from __future__ import annotations

from dataclasses import dataclass

from hvrnn.config.checks import check


@dataclass(frozen=True)
class LossConfig:
    """The ELBO's likelihood, KL estimator and weighting, and own-prediction inputs."""

    # The pixel likelihood p(x_t | ...): bce (Bernoulli on grey levels), l1 or l2.
    likelihood: str = "bce"
    kl_estimator: str = "analytic"  # analytic | mc (single sample at the decoder's z)
    kl_beta: float = 1.0  # weight of the KL in the loss (1 = the ELBO)
    kl_warmup_steps: int = 0  # linear ramp of kl_beta from 0 over these steps; 0 = constant
    # Free bits (Kingma et al. 2016): in the loss only, each level's KL per predicted frame
    # (batch mean, nats) counts as at least this much, so a level cannot collapse to the prior
    # early. 0 = the plain ELBO (the paper). Reported KL and negative ELBO are never clamped.
    free_bits: float = 0.0
    # Own-prediction inputs (scheduled sampling, Bengio et al., NeurIPS 2015; hvrnn only): this
    # fraction of each batch's clips has the prior and the decoder read the model's own
    # free-running prediction, drawn from the prior without gradient, as x_1 .. x_{T-1}, the
    # frames that sampling feeds back; the posterior reads the true frames. It rises linearly
    # from 0 over rollout_warmup_steps. 0 = teacher forcing only (the paper).
    rollout_inputs: float = 0.0
    rollout_warmup_steps: int = 0
    # What those clips read: "context" = one free-running sample from the context (as
    # sampling); "truth" = each frame predicted one step ahead from the true frames before it.
    rollout_from: str = "context"

    def validate(self) -> None:
        check(self.likelihood in ("bce", "l1", "l2"), "loss.likelihood", self.likelihood,
              "bce, l1 or l2")
        check(self.kl_estimator in ("analytic", "mc"), "loss.kl_estimator", self.kl_estimator,
              "analytic or mc")
        check(self.free_bits >= 0, "loss.free_bits", self.free_bits, ">= 0")
        check(0 <= self.rollout_inputs <= 1, "loss.rollout_inputs", self.rollout_inputs,
              "a fraction in [0, 1]")
        check(self.rollout_from in ("context", "truth"), "loss.rollout_from", self.rollout_from,
              "context or truth")
        check(self.rollout_warmup_steps >= 0, "loss.rollout_warmup_steps",
              self.rollout_warmup_steps, ">= 0")


__all__ = ["LossConfig"]
