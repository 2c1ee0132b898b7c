"""Every speed option gives the plain path's loss, gradients, updates and samples (same noise)
within a stated tolerance, and the device-side finite check never applies a non-finite step.

Tolerances: float32 paths that only reorder arithmetic (compiled cells, channels_last, the
fused optimiser) agree to 1e-5 relative (losses) and 1e-4 of the largest gradient; bf16
autocast changes the loss by under 2% on the tiny model (heads, variances and the KL stay
float32)."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_OVERRIDES
from helpers import noise, video_batch

import hvrnn
from hvrnn import accel
from hvrnn.config import load_config
from hvrnn.distributed import DistInfo
from hvrnn.model.base import StepContext
from hvrnn.training.engine import TrainingDiverged, autocast_forward, settle_state, train_step
from hvrnn.training.state import TrainState

LOSS_RTOL = 1e-5
GRAD_TOL = 1e-4  # of the largest gradient entry
BF16_LOSS_RTOL = 0.02


def _cfg(*overrides: str):
    return load_config("tiny", [*TINY_OVERRIDES, "train.amp=none", *overrides])


def _terms_and_grads(model, cfg, x, eps, forward=None):
    model.zero_grad(set_to_none=True)
    terms = model.training_terms(x, cfg.loss, StepContext(noise=eps), forward=forward)
    terms["loss"].backward()
    return terms["loss"].detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                    if p.grad is not None}


def _assert_close(a, b, loss_rtol=LOSS_RTOL):
    (la, ga), (lb, gb) = a, b
    assert torch.allclose(la, lb, rtol=loss_rtol, atol=0), (la, lb)
    assert ga.keys() == gb.keys()
    scale = max(g.abs().max() for g in ga.values())
    worst = max((ga[k] - gb[k]).abs().max() for k in ga)
    assert worst <= GRAD_TOL * scale, f"gradients differ by {worst} (scale {scale})"


def _model(cfg, seed=0):
    torch.manual_seed(seed)
    return hvrnn.build_model(cfg.model).train()


@pytest.fixture
def clip():
    cfg = _cfg()
    return cfg, video_batch(cfg, b=3, t=3)


def test_compiled_cells_give_the_plain_loss_gradients_and_samples(clip):
    """The graph torch.compile captures of each cell's step (aot_eager: the captured graph
    run as traced, without code generation, so that the test takes seconds)."""
    cfg, x = clip
    model = _model(cfg)
    eps = noise(model, 3, 3)
    plain = _terms_and_grads(model, cfg, x, eps)
    g = torch.Generator().manual_seed(4)
    plain_samples = hvrnn.sample(model, x[:, :2], horizon=3, n_samples=2, generator=g)
    n_cells = accel.compile_cells(model, backend="aot_eager")
    assert n_cells > 0
    import torch._dynamo.config as dynamo  # every cell can keep its compiled versions

    assert dynamo.recompile_limit >= 8 * n_cells
    assert accel.compile_cells(model, backend="aot_eager") == 0  # idempotent
    _assert_close(plain, _terms_and_grads(model, cfg, x, eps))
    g = torch.Generator().manual_seed(4)
    samples = hvrnn.sample(model, x[:, :2], horizon=3, n_samples=2, generator=g)
    assert torch.allclose(samples, plain_samples, atol=1e-5)
    assert set(model.state_dict()) == set(_model(cfg).state_dict())  # checkpoints unchanged
    accel.uncompile_cells(model)
    assert all("step" not in vars(m) for m in model.modules())


def test_channels_last_gives_the_plain_loss_and_gradients(clip):
    cfg, x = clip
    model = _model(cfg)
    eps = noise(model, 3, 3)
    plain = _terms_and_grads(model, cfg, x, eps)
    accel.to_channels_last(model)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)
                and m.weight.shape[-1] > 1 and m.weight.shape[1] > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()
    _assert_close(plain, _terms_and_grads(model, cfg, x, eps))


def test_bf16_autocast_stays_within_its_tolerance_of_float32(clip):
    cfg, x = clip
    model = _model(cfg)
    eps = noise(model, 3, 3)
    fp32, _ = _terms_and_grads(model, cfg, x, eps)
    bf16, _ = _terms_and_grads(model, cfg, x, eps,
                               forward=autocast_forward(model, torch.device("cpu"), "bf16"))
    assert bf16 != fp32  # it did run in bf16
    assert abs(bf16 - fp32) <= BF16_LOSS_RTOL * abs(fp32)


def _state(cfg):
    dist = DistInfo()
    state = TrainState.create(cfg, dist)
    return state, dist, autocast_forward(state.model, dist.device, cfg.train.amp)


def _flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_fused_optimizer_gives_the_same_update():
    """Three Adam steps: the fused kernel rounds differently, which Adam's m / (sqrt(v) + eps)
    magnifies only where gradients are near zero; every entry's change agrees to 5% of the
    largest possible change (lr per step) and 98% of the entries to 1e-7."""
    x = video_batch(_cfg(), b=4, t=3)
    changes = []
    for fused in ("disabled", "enabled"):
        cfg = _cfg(f"train.fused_optimizer={fused}")
        state, dist, fwd = _state(cfg)
        assert state.optimizers["model"].defaults["fused"] == (fused == "enabled" or None)
        start = _flat(state.model).clone()
        for _ in range(3):
            train_step(state, fwd, x, cfg, dist)
        changes.append(_flat(state.model) - start)
    diff = (changes[0] - changes[1]).abs()
    assert diff.max() <= 0.05 * 3 * cfg.train.lr
    assert (diff > 1e-7).float().mean() < 0.02


def _poison_step(model, at_call: int):
    """The model's loss becomes NaN at its ``at_call``-th training_terms call."""
    calls = {"n": 0}
    original = model.training_terms

    def terms(*args, **kwargs):
        calls["n"] += 1
        out = original(*args, **kwargs)
        if calls["n"] == at_call:
            out["loss"] = out["loss"] * float("nan")
        return out

    model.training_terms = terms


def test_device_finite_check_never_applies_a_non_finite_step():
    cfg = _cfg("train.fused_optimizer=enabled", "train.finite_check=device")
    x = video_batch(cfg, b=4, t=3)
    state, dist, fwd = _state(cfg)
    _poison_step(state.model, at_call=2)
    train_step(state, fwd, x, cfg, dist)  # step 1: fine
    before = {k: v.clone() for k, v in state.model.state_dict().items()}
    opt_state = state.optimizers["model"].state
    moments = [s["exp_avg"].clone() for s in opt_state.values()]
    train_step(state, fwd, x, cfg, dist)  # step 2: NaN, skipped on the device, not yet read
    after = state.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(torch.equal(m, s["exp_avg"]) for m, s in zip(moments, opt_state.values(),
                                                            strict=True))
    assert all(float(s["step"]) == 1 for s in opt_state.values())
    with pytest.raises(TrainingDiverged, match="non-finite loss at step 2.*skipped"):
        settle_state(state)


def test_device_finite_check_raises_at_the_next_step_and_host_check_matches():
    cfg = _cfg("train.fused_optimizer=enabled", "train.finite_check=device")
    state, dist, fwd = _state(cfg)
    x = video_batch(cfg, b=4, t=3)
    _poison_step(state.model, at_call=1)
    train_step(state, fwd, x, cfg, dist)
    with pytest.raises(TrainingDiverged, match="step 1"):
        train_step(state, fwd, x, cfg, dist)  # reads step 1's flags
    # the host check raises before the update, at the step itself
    cfg = _cfg("train.finite_check=host")
    state, dist, fwd = _state(cfg)
    _poison_step(state.model, at_call=1)
    with pytest.raises(TrainingDiverged, match="step 1"):
        train_step(state, fwd, x, cfg, dist)


def test_device_and_host_checks_train_identically():
    x = video_batch(_cfg(), b=4, t=3)
    params = []
    for check in ("host", "device"):
        cfg = _cfg("train.fused_optimizer=enabled", f"train.finite_check={check}")
        state, dist, fwd = _state(cfg)
        for _ in range(3):
            train_step(state, fwd, x, cfg, dist)
        settle_state(state)
        params.append(torch.cat([p.detach().flatten() for p in state.model.parameters()]))
    assert torch.equal(params[0], params[1])


def test_option_values_are_checked():
    from hvrnn.config import ConfigError

    for bad in ("train.fused_optimizer=yes", "train.finite_check=gpu",
                "train.compile_scope=layers", "train.compile_mode=fast",
                "train.channels_last=on"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            _cfg(bad).validate()
    with pytest.raises(ConfigError, match="finite_check"):
        _cfg("train.finite_check=device", "train.fused_optimizer=disabled").validate()
    assert accel.enabled("auto", "cpu") is False and accel.enabled("auto", "cuda") is True
    assert not accel.device_finite_check("auto", "auto", "cpu")
    assert accel.device_finite_check("auto", "auto", "cuda")


def test_training_with_every_option_resumes_exactly(smmnist16_root, tmp_path):
    """Batches generated on the device, the fused optimiser and the device-side finite check
    in a real run: a run stopped at step 3 and resumed ends where the uninterrupted one does
    (the flags of the last step are read before each checkpoint)."""
    import dataclasses

    import hvrnn.train as tr
    from hvrnn.checkpoint import read_checkpoint

    cfg = load_config("tiny", [*TINY_OVERRIDES, f"data.root={smmnist16_root}",
                               "train.data_on_device=true", "train.fused_optimizer=enabled",
                               "train.finite_check=device", "train.log_every=2"])
    full = tr.train(cfg, tmp_path / "full")
    short = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_steps=3))
    tr.train(short, tmp_path / "split")
    split = tr.train(cfg, tmp_path / "split", resume=True)
    assert full.step == split.step == cfg.train.max_steps and full.status == "finished"
    a, b = (read_checkpoint(r.checkpoint)["model"] for r in (full, split))
    assert all(torch.equal(a[k], b[k]) for k in a)
    la, lb = ({r["step"]: r["loss"] for r in tr.read_metrics(r.run_dir)} for r in (full, split))
    assert la and all(lb[s] == v for s, v in la.items())


def test_bf16_group_norm_stays_within_the_bf16_tolerance_and_is_inert_in_float32(clip):
    cfg, x = clip
    model = _model(cfg)
    eps = noise(model, 3, 3)
    fp32 = _terms_and_grads(model, cfg, x, eps)
    bf16_fwd = autocast_forward(model, torch.device("cpu"), "bf16")
    autocast_gn, _ = _terms_and_grads(model, cfg, x, eps, forward=bf16_fwd)
    assert accel.group_norm_in_bf16(model) > 0
    _assert_close(fp32, _terms_and_grads(model, cfg, x, eps))  # float32 inputs: unchanged
    seen = []
    norm = next(m for m in model.modules() if isinstance(m, torch.nn.GroupNorm))
    norm.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    bf16_gn, grads = _terms_and_grads(model, cfg, x, eps, forward=bf16_fwd)
    assert torch.bfloat16 in seen  # the norm did run in bf16
    # (CPU autocast already runs GroupNorm in bf16, CUDA autocast in float32; here both agree)
    assert abs(bf16_gn - autocast_gn) <= BF16_LOSS_RTOL * abs(fp32[0])
    x16 = torch.randn(2, 8, 4, 4).bfloat16()
    gn = torch.nn.GroupNorm(4, 8)
    accel.group_norm_in_bf16(gn)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = gn(x16)
    assert out.dtype == torch.bfloat16
    ref = torch.nn.functional.group_norm(x16.float(), 4, gn.weight, gn.bias, gn.eps)
    assert torch.allclose(out.float(), ref, atol=0.05)
    assert abs(bf16_gn - fp32[0]) <= BF16_LOSS_RTOL * abs(fp32[0])
    assert all(torch.isfinite(g).all() and g.dtype == torch.float32 for g in grads.values())


def test_one_generator_per_context_makes_samples_independent_of_the_batch(clip):
    cfg, x = clip
    model = _model(cfg).eval()
    ctx = x[:, :2]

    def gens(idx):
        return [torch.Generator().manual_seed(100 + i) for i in idx]

    together = hvrnn.sample(model, ctx, horizon=3, n_samples=2, generator=gens(range(3)))
    for i in range(3):
        alone = hvrnn.sample(model, ctx[i:i + 1], horizon=3, n_samples=2, generator=gens([i]))
        assert torch.allclose(alone[0], together[i], atol=1e-6)
    assert not torch.allclose(together[0, 0], together[0, 1])  # the samples differ
    with pytest.raises(ValueError, match="2 generators for 3 contexts"):
        hvrnn.sample(model, ctx, horizon=1, generator=gens(range(2)))
