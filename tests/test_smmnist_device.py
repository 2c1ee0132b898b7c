"""The on-device SM-MNIST generator follows the CPU generator's rules: the same pixels for the
same motion, the same bounces for the same start, and the same distributions of positions,
velocities and digits (two-sample chi-square tests against the CPU generator)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import fake_digits
from scipy.stats import chi2_contingency, chisquare

from hvrnn.data.base import item_rng
from hvrnn.data.smmnist import MAX_SPEED, digit_trajectory, generate_clip
from hvrnn.data.smmnist_device import (
    device_batches,
    generate_batch,
    render,
    resized_digits,
    trajectories,
)
from hvrnn.io.frames import to_float

P_MIN = 1e-3  # a fixed-seed test; a wrong rule gives p-values far below this


@pytest.mark.parametrize("size", [16, 32, 64])
def test_render_equals_the_cpu_generator_for_the_same_motion(size):
    digits = fake_digits(7, 0)
    small = resized_digits(digits, size // 2)
    for i in range(4):
        clip = generate_clip(digits, item_rng(0, "train", i), seq_len=9, image_size=size,
                             num_digits=3)
        drawn = render(small, torch.from_numpy(clip.digit_ids)[None],
                       torch.from_numpy(clip.positions)[None], size)  # (1, T, S, S) uint8
        assert torch.equal(drawn[0], torch.from_numpy(clip.video[..., 0]))
        # and the float frames are the loader's, bit for bit
        assert torch.equal((drawn.float() / 255).unsqueeze(2)[0], to_float(clip.video))


def test_reflecting_bounces_equal_the_cpu_generator_exactly():
    """With deterministic bounces the motion is a function of the start: both generators give
    the same positions and velocities from the same start."""
    starts, expected = [], []
    for i in range(64):
        rng = item_rng(3, "train", i)
        state = rng.bit_generator.state  # draw the start as digit_trajectory will
        sx, sy = (int(rng.integers(0, 16)) for _ in range(2))
        dx, dy = (int(rng.integers(-MAX_SPEED, MAX_SPEED + 1)) for _ in range(2))
        rng.bit_generator.state = state
        starts.append(((sy, sx), (dy, dx)))
        expected.append(digit_trajectory(rng, 40, 16, deterministic=True))
    pos0 = torch.tensor([s[0] for s in starts])
    vel0 = torch.tensor([s[1] for s in starts])
    positions, velocities = trajectories((64,), 40, 16, torch.Generator(), "cpu",
                                         deterministic=True, start=(pos0, vel0))
    assert torch.equal(positions, torch.from_numpy(np.stack([e[0] for e in expected])))
    assert torch.equal(velocities, torch.from_numpy(np.stack([e[1] for e in expected])))


def test_random_bounces_follow_the_rules_step_by_step():
    limit, t = 16, 30
    g = torch.Generator().manual_seed(0)
    pos, vel = trajectories((500, 2), t, limit, g, "cpu")  # (500, 2, T, 2)
    pos, vel = pos.reshape(-1, t, 2), vel.reshape(-1, t, 2)
    assert pos.min() >= 0 and pos.max() < limit
    assert vel.abs().max() <= MAX_SPEED
    bounced = 0
    for k in range(1, t):
        moved = pos[:, k - 1] + vel[:, k - 1]  # where the digit would be without walls
        out = (moved < 0) | (moved >= limit)  # (N, 2): row wall, column wall
        assert torch.equal(pos[:, k], moved.clamp(0, limit - 1))
        away = torch.where(moved < 0, vel[:, k] > 0, vel[:, k] < 0)
        # the normal velocity points away from a wall it met: the column test runs last, so a
        # column wall always shows; a row wall shows unless a column wall re-drew dy after it
        assert away[out[:, 1], 1].all()
        assert away[out[:, 0] & ~out[:, 1], 0].all()
        free = ~out.any(1)
        assert torch.equal(vel[free, k], vel[free, k - 1])  # no wall: the same velocity
        bounced += int(out.any(1).sum())
    assert bounced > 1000


def _cpu_motion(n: int, t: int, limit: int) -> tuple[np.ndarray, np.ndarray]:
    out = [digit_trajectory(item_rng(5, "train", i), t, limit) for i in range(n)]
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


def _same_distribution(a: np.ndarray, b: np.ndarray, values: range) -> float:
    table = np.array([[np.sum(a == v) for v in values], [np.sum(b == v) for v in values]])
    return chi2_contingency(table)[1]


def test_positions_and_velocities_have_the_cpu_distributions():
    n, t, limit = 3000, 12, 16
    cpu_pos, cpu_vel = _cpu_motion(n, t, limit)
    pos, vel = trajectories((n,), t, limit, torch.Generator().manual_seed(1), "cpu")
    pos, vel = pos.numpy(), vel.numpy()
    # the start: uniform positions and velocities
    assert chisquare(np.bincount(pos[:, 0].ravel(), minlength=limit))[1] > P_MIN
    for frame in (0, 5, t - 1):
        for axis in (0, 1):
            assert _same_distribution(cpu_pos[:, frame, axis], pos[:, frame, axis],
                                      range(limit)) > P_MIN
            assert _same_distribution(cpu_vel[:, frame, axis], vel[:, frame, axis],
                                      range(-MAX_SPEED, MAX_SPEED + 1)) > P_MIN


def test_digits_are_drawn_uniformly_and_frames_are_clips():
    digits = resized_digits(fake_digits(10, 2), 8)
    g = torch.Generator().manual_seed(0)
    video = generate_batch(digits, 400, seq_len=5, image_size=16, num_digits=2, generator=g)
    assert video.shape == (400, 5, 1, 16, 16) and video.dtype == torch.float32
    assert 0 <= video.min() and video.max() <= 1
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 10, (400, 2), generator=g)  # the first draw of generate_batch
    assert chisquare(np.bincount(ids.ravel().numpy(), minlength=10))[1] > P_MIN


def test_batches_are_a_function_of_the_step(smmnist16_root):
    from hvrnn.config import load_config
    from hvrnn.data import build_dataset

    cfg = load_config("tiny", ["data.image_size=16", f"data.root={smmnist16_root}",
                               "data.n_ctx=2", "data.n_pred=3"])
    train_set = build_dataset(cfg.data, "train")
    a = device_batches(train_set, 4, 0, 0, torch.device("cpu"))
    first = [next(a) for _ in range(3)]
    resumed = next(device_batches(train_set, 4, 0, 2, torch.device("cpu")))
    assert first[0].shape == (4, 5, 1, 16, 16)
    assert torch.equal(resumed, first[2]) and not torch.equal(first[0], first[1])
    other_rank = next(device_batches(train_set, 4, 0, 0, torch.device("cpu"), 2, 1))
    assert not torch.equal(other_rank, first[0])
