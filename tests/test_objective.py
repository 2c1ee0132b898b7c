"""The ELBO terms and the Gaussians: closed forms, torch.distributions, free bits."""

from __future__ import annotations

import pytest
import torch

from hvrnn.distributions import DiagonalGaussian
from hvrnn.model import VRNNOutput
from hvrnn.objective import elbo_terms, kl_per_level, kl_weight, reconstruction_nll


def test_analytic_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    q = DiagonalGaussian(torch.randn(3, 5, 4, generator=g), torch.rand(3, 5, 4, generator=g) + .1)
    p = DiagonalGaussian(torch.randn(3, 5, 4, generator=g), torch.rand(3, 5, 4, generator=g) + .1)
    ref = torch.distributions.kl_divergence(q.to_torch(), p.to_torch())
    torch.testing.assert_close(q.kl(p), ref, rtol=1e-5, atol=1e-6)
    assert q.kl(q).abs().max() < 1e-6
    assert (q.kl(p) >= 0).all()
    torch.testing.assert_close(q.log_prob(q.mean), q.to_torch().log_prob(q.mean))


def test_draw_is_the_mean_or_a_tempered_sample():
    g = torch.Generator().manual_seed(2)
    d = DiagonalGaussian(torch.randn(4, 3, generator=g), torch.rand(4, 3, generator=g) + .1)
    eps = torch.randn(4, 3, generator=g)
    assert torch.equal(d.draw(eps, 0.5, use_mean=True), d.mean)
    torch.testing.assert_close(d.draw(eps, 0.25), d.mean + 0.5 * d.std * eps)
    drawn = d.draw(generator=torch.Generator().manual_seed(7))
    ref = d.mean + d.std * torch.randn(4, 3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(drawn, ref)


def test_mc_kl_estimator_is_unbiased():
    q = DiagonalGaussian(torch.tensor([[0.3, -1.0]]), torch.tensor([[0.5, 2.0]]))
    p = DiagonalGaussian(torch.tensor([[0.0, 0.5]]), torch.tensor([[1.0, 1.5]]))
    torch.manual_seed(0)
    z = q.rsample(torch.randn(200_000, 2))[:, None]  # (B, T=1, C)
    out = VRNNOutput(torch.zeros(1), [p.map(lambda t: t.expand_as(z))],
                     [q.map(lambda t: t.expand_as(z))], [z])
    mc = kl_per_level(out, "mc")[0].mean()  # mean over the 200k draws (rows)
    analytic = q.kl(p).sum()
    assert mc.item() == pytest.approx(analytic.item(), abs=0.01)


def test_reconstruction_terms_match_torch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 1, 4, 4, generator=g)
    target = torch.rand(2, 3, 1, 4, 4, generator=g)
    bce = torch.nn.functional.binary_cross_entropy(torch.sigmoid(logits), target,
                                                   reduction="none").flatten(1).sum(1)
    torch.testing.assert_close(reconstruction_nll(logits, target, "bce"), bce)
    l1 = (torch.sigmoid(logits) - target).abs().flatten(1).sum(1)
    torch.testing.assert_close(reconstruction_nll(logits, target, "l1"), l1)
    assert kl_weight(0, 1.0, 10) == 0.0 and kl_weight(5, 2.0, 10) == 1.0
    assert kl_weight(50, 2.0, 10) == 2.0 and kl_weight(0, 0.5, 0) == 0.5


def test_free_bits_clamp_the_loss_only():
    """Each level's batch-mean KL of each frame counts as at least ``free_bits`` in ``loss``;
    the reported ``kl`` and ``nelbo`` stay the true values."""
    b, t = 2, 3
    mean = torch.zeros(b, t, 1, 1, 1)
    mean_q = torch.tensor([0.1, 2.0, 0.0]).view(1, t, 1, 1, 1).expand(b, t, 1, 1, 1)
    ones = torch.ones(b, t, 1, 1, 1)
    out = VRNNOutput(torch.zeros(b, t, 1, 2, 2), [DiagonalGaussian(mean, ones)],
                     [DiagonalGaussian(mean_q, ones)], [mean_q])
    target = torch.full((b, t, 1, 2, 2), 0.5)
    plain = elbo_terms(out, target, "l2")
    clamped = elbo_terms(out, target, "l2", free_bits=1.0)
    per_frame = mean_q[0, :, 0, 0, 0] ** 2 / 2  # KL(N(m, 1) || N(0, 1)) = m^2 / 2
    assert plain["kl"].item() == pytest.approx(per_frame.sum().item())
    assert clamped["kl"].item() == plain["kl"].item()
    assert clamped["nelbo"].item() == plain["nelbo"].item()
    assert clamped["loss"].item() == pytest.approx(
        plain["nll"].item() + per_frame.clamp(min=1.0).sum().item())
