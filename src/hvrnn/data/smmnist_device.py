"""Stochastic Moving MNIST batches generated on the training device (``train.data_on_device``).

The rules are those of :mod:`hvrnn.data.smmnist` (SVG's generator), applied to a whole batch
at once with tensor operations: each digit starts at a uniform integer position in
``[0, S - S/2)`` with a uniform integer velocity in ``[-4, 4]`` per axis; before each frame the
wall test runs, rows first (outside the canvas: the position is clamped, the normal velocity
re-drawn pointing away from the wall, or negated with ``deterministic``, and the tangential one
re-drawn), the digit is drawn and moved; the sum of the digits is clipped at 255 and divided by
255. Digits are resized once with the same PIL bilinear filter as the CPU generator.

Only the random stream differs from the CPU loader: every draw comes from a torch generator on
the device seeded by ``(seed, step, rank)``, so a batch is a pure function of the step (a
resumed run reads the same batches) but not the clips of the CPU loader at the same step.
tests/test_smmnist_device.py checks the rules exactly and the distributions of positions,
velocities and digits.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from hvrnn.data.smmnist import MAX_SPEED, SMMNISTTrainDataset, resize_digit
from hvrnn.errors import UserError

STEP_STRIDE = 1_000_003


def resized_digits(digits: np.ndarray, size: int, device: torch.device | str | None = None
                   ) -> Tensor:
    """uint8 ``(N, 28, 28)`` -> uint8 ``(N, size, size)`` on ``device`` (PIL bilinear)."""
    out = np.stack([resize_digit(np.asarray(d), size) for d in digits]) if len(digits) else \
        np.zeros((0, size, size), np.uint8)
    return torch.from_numpy(out).to(device)


def _wall(pos: Tensor, normal: Tensor, tangent: Tensor, limit: int, generator: torch.Generator,
          deterministic: bool) -> tuple[Tensor, Tensor, Tensor]:
    """The wall test of one axis for every digit at once (:func:`hvrnn.data.smmnist._wall`)."""
    low, high = pos < 0, pos >= limit
    out = low | high
    if deterministic:
        normal = torch.where(out, -normal, normal)
    else:
        kw = {"generator": generator, "device": pos.device, "dtype": pos.dtype}
        up = torch.randint(1, MAX_SPEED + 1, pos.shape, **kw)
        down = torch.randint(-MAX_SPEED, 0, pos.shape, **kw)
        new_tangent = torch.randint(-MAX_SPEED, MAX_SPEED + 1, pos.shape, **kw)
        normal = torch.where(low, up, torch.where(high, down, normal))
        tangent = torch.where(out, new_tangent, tangent)
    return pos.clamp(0, limit - 1), normal, tangent


def trajectories(shape: tuple[int, ...], seq_len: int, limit: int, generator: torch.Generator,
                 device: torch.device | str, deterministic: bool = False,
                 start: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """Bouncing motion of ``shape`` (e.g. (B, num_digits)) digits at once.

    Args:
        shape: leading shape of the digits.
        seq_len: frames T.
        limit: valid positions per axis (canvas size minus digit size).
        generator: source of every draw (on ``device``).
        deterministic: negate the normal velocity at a wall instead of re-drawing it.
        start: optional ``(positions, velocities)`` int64 ``(*shape, 2)`` (row, col) to start
            from instead of drawing them.

    Returns:
        positions and velocities, int64 ``(*shape, T, 2)`` (row, col), as
        :func:`hvrnn.data.smmnist.digit_trajectory` returns them for one digit.
    """
    kw = {"generator": generator, "device": device, "dtype": torch.int64}
    if start is None:
        pos = torch.randint(0, limit, (*shape, 2), **kw)
        vel = torch.randint(-MAX_SPEED, MAX_SPEED + 1, (*shape, 2), **kw)
    else:
        pos, vel = (t.to(device=device, dtype=torch.int64) for t in start)
    (sy, sx), (dy, dx) = pos.unbind(-1), vel.unbind(-1)
    positions, velocities = [], []
    for _ in range(seq_len):
        sy, dy, dx = _wall(sy, dy, dx, limit, generator, deterministic)  # rows first
        sx, dx, dy = _wall(sx, dx, dy, limit, generator, deterministic)
        positions.append(torch.stack([sy, sx], -1))
        velocities.append(torch.stack([dy, dx], -1))
        sy, sx = sy + dy, sx + dx
    return torch.stack(positions, -2), torch.stack(velocities, -2)


def render(digits: Tensor, ids: Tensor, positions: Tensor, image_size: int) -> Tensor:
    """Draw the clips: uint8 grey levels, the sum of the digits clipped at 255.

    Args:
        digits: uint8 ``(N, s, s)`` resized digits.
        ids: int64 ``(B, D)`` digit indices.
        positions: int64 ``(B, D, T, 2)`` top-left (row, col) of each digit in each frame.
        image_size: canvas side S.

    Returns:
        uint8 ``(B, T, S, S)``.
    """
    b, d, t, _ = positions.shape
    s, side = digits.shape[-1], image_size
    grid = torch.arange(side, device=positions.device)
    rows = grid - positions[..., 0:1]  # (B, D, T, S): digit row drawn at canvas row
    cols = grid - positions[..., 1:2]
    row_in = ((rows >= 0) & (rows < s)).to(torch.int32)
    col_in = ((cols >= 0) & (cols < s)).to(torch.int32)
    imgs = digits[ids].to(torch.int32)[:, :, None].expand(b, d, t, s, s)
    picked = imgs.gather(3, rows.clamp(0, s - 1)[..., None].expand(b, d, t, side, s))
    picked = picked.gather(4, cols.clamp(0, s - 1)[..., None, :].expand(b, d, t, side, side))
    canvas = (picked * row_in[..., :, None] * col_in[..., None, :]).sum(1)  # (B, T, S, S)
    return canvas.clamp(max=255).to(torch.uint8)


def generate_batch(digits: Tensor, batch: int, *, seq_len: int, image_size: int,
                   num_digits: int, generator: torch.Generator, deterministic: bool = False
                   ) -> Tensor:
    """A batch of clips on ``digits``' device: float32 ``(B, T, 1, S, S)`` in [0, 1].

    ``digits``: uint8 ``(N, S/2, S/2)`` (:func:`resized_digits`); each digit of each clip is
    drawn uniformly from them.
    """
    device = digits.device
    ids = torch.randint(0, len(digits), (batch, num_digits), generator=generator,
                        device=device)
    positions, _ = trajectories((batch, num_digits), seq_len, image_size - digits.shape[-1],
                                generator, device, deterministic)
    return (render(digits, ids, positions, image_size).float() / 255).unsqueeze(2)


def device_batches(train_set: object, batch_size: int, seed: int, start_step: int,
                   device: torch.device, world_size: int = 1, rank: int = 0
                   ) -> Iterator[Tensor]:
    """The training batches of steps ``start_step``, ``start_step + 1``, ... generated on
    ``device`` by the rules of ``train_set`` (an SM-MNIST training set); batch ``n`` of process
    ``rank`` comes from a generator seeded by ``(seed, n, rank)``.

    Raises:
        UserError: ``train_set`` is not generated SM-MNIST.
    """
    if not isinstance(train_set, SMMNISTTrainDataset):
        raise UserError(f"train.data_on_device needs generated SM-MNIST training data "
                        f"(data.name=smmnist), not {type(train_set).__name__}")
    size = train_set.image_size // 2
    digits = resized_digits(train_set.digits, size, device)
    generator = torch.Generator(device=device)
    step = start_step
    while True:
        generator.manual_seed((seed * STEP_STRIDE + step) * world_size + rank)
        yield generate_batch(digits, batch_size, seq_len=train_set.seq_len,
                             image_size=train_set.image_size, num_digits=train_set.num_digits,
                             generator=generator, deterministic=train_set.deterministic)
        step += 1


__all__ = ["device_batches", "generate_batch", "render", "resized_digits", "trajectories"]
