"""Pictures of samples: PNG grids laid out like the paper's supplementary figures, GIFs, MP4s.

Layout of a grid for one sequence: row 0 is the ground truth, rows 1.. are samples; columns are
time steps (context frames first, framed grey; predicted frames framed red). Images are uint8
(H, W, 3).
"""

from __future__ import annotations

import errno
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from hvrnn.errors import require
from hvrnn.io.files import named, write_atomically, write_bytes_atomically
from hvrnn.io.frames import to_uint8

CONTEXT_COLOUR = (128, 128, 128)
PREDICTED_COLOUR = (200, 30, 30)
MISSING_COLOUR = (255, 255, 255)


def _rgb(frame: np.ndarray) -> np.ndarray:
    return np.repeat(frame, 3, axis=-1) if frame.shape[-1] == 1 else frame


def _framed(frame: np.ndarray | None, colour: tuple[int, int, int], shape: tuple[int, ...],
            border: int) -> np.ndarray:
    h, w = shape[:2]
    out = np.empty((h + 2 * border, w + 2 * border, 3), np.uint8)
    out[:] = colour
    inner = np.full((h, w, 3), MISSING_COLOUR, np.uint8) if frame is None else _rgb(frame)
    out[border:border + h, border:border + w] = inner
    return out


def sample_grid(context: np.ndarray, samples: np.ndarray, truth: np.ndarray | None = None,
                steps: Sequence[int] | None = None, border: int = 1, scale: int = 1
                ) -> np.ndarray:
    """One sequence as a grid image: ground truth on top, then one row per sample.

    Args:
        context: (K, H, W, C) uint8 context frames (shown in every row).
        samples: (S, T, H, W, C) uint8 predicted frames.
        truth: (T', H, W, C) uint8 true future frames, T' <= T (missing ones left white), or
            ``None`` (then there is no ground-truth row).
        steps: which predicted time steps (0-based) to show; default all.
        border: frame border in pixels; scale: nearest-neighbour up-scaling factor.

    Returns:
        (rows * (H + 2 border), columns * (W + 2 border), 3) uint8.
    """
    k, (s, t) = context.shape[0], samples.shape[:2]
    shape = context.shape[1:]
    steps = list(range(t)) if steps is None else list(steps)
    rows = []
    sources = ([truth] if truth is not None else []) + [samples[i] for i in range(s)]
    for src in sources:
        cells = [_framed(context[j], CONTEXT_COLOUR, shape, border) for j in range(k)]
        for j in steps:
            frame = src[j] if j < len(src) else None
            cells.append(_framed(frame, PREDICTED_COLOUR, shape, border))
        rows.append(np.concatenate(cells, axis=1))
    grid = np.concatenate(rows, axis=0)
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    return grid


def animation_frames(context: np.ndarray, samples: np.ndarray, truth: np.ndarray | None = None,
                     border: int = 1, scale: int = 1) -> np.ndarray:
    """Frames of a side-by-side animation: [truth | sample 1 | ... | sample S] at each time.

    Args:
        context: (K, H, W, C) uint8; samples: (S, T, H, W, C) uint8; truth: (T', H, W, C) or None.

    Returns:
        (K + T, H', W', 3) uint8; context frames framed grey, predicted frames red.
    """
    k, (s, t) = context.shape[0], samples.shape[:2]
    shape = context.shape[1:]
    n_panels = s + (truth is not None)
    out = []
    for j in range(k + t):
        if j < k:
            panels = [_framed(context[j], CONTEXT_COLOUR, shape, border)] * n_panels
        else:
            srcs = ([truth] if truth is not None else []) + [samples[i] for i in range(s)]
            panels = [_framed(src[j - k] if j - k < len(src) else None, PREDICTED_COLOUR,
                              shape, border) for src in srcs]
        out.append(np.concatenate(panels, axis=1))
    frames = np.stack(out)
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    return frames


def auto_scale(height: int, target: int = 128) -> int:
    """Integer up-scaling so small frames (32x32) are visible in viewers."""
    return max(1, target // max(1, height))


def png_bytes(image: np.ndarray) -> bytes:
    """(H, W, 3) uint8 -> the bytes of a PNG file."""
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", image, extension=".png")


def labelled_png_bytes(image: np.ndarray, rows: Sequence[tuple[float, str]],
                       columns: Sequence[tuple[float, str]], title: str = "") -> bytes:
    """(H, W, 3) uint8 drawn pixel for pixel, with text labels beside it -> PNG bytes.

    Args:
        rows: (y, label) pairs, y the pixel row of the label's centre; columns: (x, label).
        title: a line above the image, or "".
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dpi = 100
    fig = plt.figure(figsize=(image.shape[1] / dpi, image.shape[0] / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(image, interpolation="nearest")
    ax.set_yticks([y for y, _ in rows], [label for _, label in rows], fontsize=8)
    ax.set_xticks([x for x, _ in columns], [label for _, label in columns], fontsize=8)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9, pad=14)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.05,
                facecolor="white")
    plt.close(fig)
    return buffer.getvalue()


def gif_bytes(frames: np.ndarray, fps: float = 4.0) -> bytes:
    """(T, H, W, 3) uint8 -> the bytes of a looping GIF."""
    import imageio.v2 as imageio

    buffer = io.BytesIO()
    imageio.mimsave(buffer, list(frames), format="GIF", duration=1.0 / fps, loop=0)
    return buffer.getvalue()


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """(H, W, 3) uint8 -> PNG, written atomically (a temporary file renamed when complete)."""
    return write_bytes_atomically(path, png_bytes(image))


def save_gif(frames: np.ndarray, path: str | Path, fps: float = 4.0) -> Path:
    """(T, H, W, 3) uint8 -> looping GIF, written atomically."""
    return write_bytes_atomically(path, gif_bytes(frames, fps))


def write_mp4(frames: np.ndarray, path: str | Path, fps: float = 4.0) -> Path:
    """(T, H, W, 3) uint8 -> H.264 MP4 at ``path`` (padded to a multiple of 16 pixels, as the
    codec needs), written by ffmpeg in place.

    Raises:
        ResourceError: imageio-ffmpeg (or its ffmpeg) is not installed.
        OSError: ffmpeg could not write the file (the path is named).
    """
    require("imageio", "imageio_ffmpeg", purpose="writing MP4 videos")
    import imageio.v2 as imageio

    t, h, w, _ = frames.shape
    ph, pw = (-h) % 16, (-w) % 16
    if ph or pw:
        frames = np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), constant_values=255)
    try:
        with imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                macro_block_size=16, quality=8,
                                ffmpeg_log_level="error") as writer:
            for f in frames:
                writer.append_data(f)
    except OSError as exc:
        raise named(exc, path) from None
    except RuntimeError as exc:  # ffmpeg ended with an error (a full disk, ...)
        raise OSError(errno.EIO, f"ffmpeg failed: {' '.join(str(exc).split())[:200]}",
                      str(path)) from None
    return Path(path)


def save_mp4(frames: np.ndarray, path: str | Path, fps: float = 4.0) -> Path:
    """:func:`write_mp4` under a temporary name, renamed when complete."""
    return write_atomically(path, lambda tmp: write_mp4(frames, tmp, fps))


def tensorboard_video(context: Tensor, samples: Tensor, truth: Tensor | None = None) -> Tensor:
    """(1, T, 3, H', W') uint8 for ``SummaryWriter.add_video`` from float tensors.

    context: (K, C, H, W); samples: (S, T, C, H, W); truth: (T', C, H, W) or None.
    """
    frames = animation_frames(to_uint8(context), to_uint8(samples),
                              None if truth is None else to_uint8(truth))
    return rearrange(torch.from_numpy(frames), "t h w c -> 1 t c h w")
