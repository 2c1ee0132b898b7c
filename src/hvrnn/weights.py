"""Pretrained files the metrics need: where they come from, their checksums, and a local cache.

LPIPS needs an ImageNet backbone and its v0.1 linear heads; FVD needs the Kinetics-400 I3D.
:data:`REGISTRY` names each standard file with its publisher's URL, size and SHA-256. Files are
kept flat in one folder, :func:`weights_dir` (``$HVRNN_CACHE/weights``, default
``~/.cache/hvrnn/weights``), so that the folder is also a valid ``weights=`` argument of
:func:`hvrnn.metrics.lpips`.

- :func:`fetch` downloads a file (progress bar on stderr), resumes an interrupted download with
  an HTTP ``Range`` request (the partial file is kept as ``<file>.part``), checks the size and
  SHA-256 and only then moves the file into place (``os.replace``: never a half-written file
  under the final name). A checksum mismatch installs nothing.
- :func:`add` verifies a file obtained elsewhere (another machine, a mirror) and copies it in.
- :func:`require` returns the path of a cached file or raises
  :class:`~hvrnn.errors.WeightsError` naming the ``hvrnn weights fetch`` command.

Checksums: torchvision publishes only a SHA-256 prefix in each file name
(``alexnet-owt-7be5be79.pth``); the full SHA-256 recorded here starts with that prefix (checked
by the tests). The LPIPS heads are pinned to a commit of the LPIPS authors' repository
(richzhang/PerceptualSimilarity), and the I3D file is the TorchScript export of the TF-Hub
``i3d-kinetics-400`` module published with StyleGAN-V (Skorokhodov et al., 2022).

This module imports neither torch nor numpy (:mod:`hvrnn.io.files` needs neither), so
``hvrnn weights list`` starts fast.
"""

from __future__ import annotations

import http.client
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hvrnn.errors import WeightsError
from hvrnn.io.files import sha256_file

CHUNK = 1 << 20  # bytes read per network or disk block


@dataclass(frozen=True)
class WeightFile:
    """One standard file.

    Attributes:
        name: the name used by ``hvrnn weights fetch NAME``.
        filename: file name in the cache (the publisher's name).
        sha256: full hex SHA-256 of the published file.
        size: size in bytes.
        urls: download locations, tried in order (the publisher first).
        used_by: which metric reads it.
        description: what the file holds.
    """

    name: str
    filename: str
    sha256: str
    size: int
    urls: tuple[str, ...]
    used_by: str
    description: str


_LPIPS_COMMIT = "082bb24f84c091ea94de2867d34c4544f68e0963"
_LPIPS_HEADS = ("https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/"
                f"{_LPIPS_COMMIT}/lpips/weights/v0.1/{{net}}.pth")

REGISTRY: dict[str, WeightFile] = {w.name: w for w in (
    WeightFile("alexnet", "alexnet-owt-7be5be79.pth",
               "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02", 244_408_911,
               ("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",),
               "lpips (net=alex)", "torchvision's ImageNet AlexNet (IMAGENET1K_V1)"),
    WeightFile("vgg16", "vgg16-397923af.pth",
               "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0", 553_433_881,
               ("https://download.pytorch.org/models/vgg16-397923af.pth",),
               "lpips (net=vgg)", "torchvision's ImageNet VGG16 (IMAGENET1K_V1)"),
    WeightFile("lpips-alex", "alex.pth",
               "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0", 6_009,
               (_LPIPS_HEADS.format(net="alex"),),
               "lpips (net=alex)", "LPIPS v0.1 linear heads for AlexNet"),
    WeightFile("lpips-vgg", "vgg.pth",
               "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868", 7_289,
               (_LPIPS_HEADS.format(net="vgg"),),
               "lpips (net=vgg)", "LPIPS v0.1 linear heads for VGG16"),
    WeightFile("i3d", "i3d_torchscript.pt",
               "bec6519f66ea534e953026b4ae2c65553c17bf105611c746d904657e5860a5e2", 51_235_320,
               ("https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",),
               "fvd", "Kinetics-400 I3D (TF-Hub i3d-kinetics-400 weights) as TorchScript"),
)}

# Names that stand for several files: what one metric needs.
GROUPS: dict[str, tuple[str, ...]] = {
    "lpips": ("alexnet", "lpips-alex"),
    "lpips-vgg16": ("vgg16", "lpips-vgg"),
    "fvd": ("i3d",),
    "all": tuple(REGISTRY),
}

# What each metric setting needs, for error messages.
LPIPS_FILES = {"alex": ("alexnet", "lpips-alex"), "vgg": ("vgg16", "lpips-vgg")}


def weights_dir() -> Path:
    """The cache folder: ``$HVRNN_CACHE/weights``, else ``~/.cache/hvrnn/weights``."""
    root = os.environ.get("HVRNN_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "hvrnn"
    return base / "weights"


def is_cache(path: str | Path) -> bool:
    """Whether ``path`` is the cache folder itself, which stands for its verified files."""
    try:
        return Path(path).expanduser().resolve() == weights_dir().resolve()
    except OSError:
        return False


def resolve_names(names: Iterable[str]) -> list[WeightFile]:
    """Registry entries for file names and group names (``lpips``, ``fvd``, ``all``), in order.

    Raises:
        WeightsError: an unknown name (the known ones are listed).
    """
    out: list[WeightFile] = []
    for name in names:
        if name in GROUPS:
            members = GROUPS[name]
        elif name in REGISTRY:
            members = (name,)
        else:
            raise WeightsError(f"unknown weights {name!r}; known: {', '.join(REGISTRY)} "
                               f"(groups: {', '.join(GROUPS)})")
        out += [REGISTRY[m] for m in members if REGISTRY[m] not in out]
    return out


def fetch_command(names: Iterable[str]) -> str:
    return "hvrnn weights fetch " + " ".join(names)


def file_status(entry: WeightFile, folder: str | Path | None = None) -> str:
    """``"verified"``, ``"missing"``, ``"partial"`` (an interrupted download) or ``"corrupt"``."""
    folder = Path(folder) if folder is not None else weights_dir()
    path = folder / entry.filename
    if not path.is_file():
        return "partial" if (folder / (entry.filename + ".part")).is_file() else "missing"
    if path.stat().st_size != entry.size or sha256_file(path) != entry.sha256:
        return "corrupt"
    return "verified"


def cached(name: str, folder: str | Path | None = None) -> Path | None:
    """Path of a cached file (not re-hashed here), or None."""
    path = (Path(folder) if folder is not None else weights_dir()) / REGISTRY[name].filename
    return path if path.is_file() else None


def require(names: Iterable[str], what: str, folder: str | Path | None = None) -> Path:
    """The cache folder if it holds every named file, else WeightsError with the fetch command.

    Args:
        names: registry names, e.g. ``("alexnet", "lpips-alex")``.
        what: the metric, for the message, e.g. ``"LPIPS (alex)"``.
    """
    names = list(names)
    folder = Path(folder) if folder is not None else weights_dir()
    missing = [n for n in names if cached(n, folder) is None]
    if missing:
        files = ", ".join(REGISTRY[n].filename for n in missing)
        raise WeightsError(f"{what} needs {files}, not found in the weights cache {str(folder)!r}; "
                           f"run `{fetch_command(missing)}` (or `hvrnn weights add NAME FILE` "
                           "with a copy obtained elsewhere), or pass the files explicitly")
    return folder


def check_pinned(name: str, sha256: str) -> None:
    """Raise WeightsError if a file read from the cache is not the published one."""
    entry = REGISTRY[name]
    if sha256 != entry.sha256:
        raise WeightsError(f"the cached {entry.filename} has SHA-256 {sha256}, expected "
                           f"{entry.sha256}; run `hvrnn weights fetch {name} --force`")


def format_list(folder: str | Path | None = None) -> str:
    """``hvrnn weights list``: every file, what needs it, and its state in the cache."""
    folder = Path(folder) if folder is not None else weights_dir()
    lines = [f"weights cache: {folder}"]
    for e in REGISTRY.values():
        size = f"{e.size / 2**20:.1f} MiB" if e.size >= 2**20 else f"{e.size / 2**10:.1f} KiB"
        lines.append(f"  {e.name:11s} {e.filename:26s} {size:>10s}  {file_status(e, folder):9s} "
                     f"{e.used_by}")
    lines.append("groups: " + ", ".join(f"{g} = {' + '.join(m)}" for g, m in GROUPS.items()
                                       if g != "all") + "; fetch with `hvrnn weights fetch NAME`")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Installing
# --------------------------------------------------------------------------------------------


def _verify(entry: WeightFile, path: Path, origin: str) -> None:
    """Size and SHA-256 of ``path`` against the entry; the message names ``origin``."""
    size = path.stat().st_size
    if size != entry.size:
        raise WeightsError(f"{origin} has {size} bytes, but {entry.filename} has {entry.size}; "
                           "nothing was installed")
    digest = sha256_file(path)
    if digest != entry.sha256:
        raise WeightsError(f"{origin} has SHA-256 {digest}, but {entry.filename} has "
                           f"{entry.sha256}; nothing was installed")


def _install(tmp: Path, target: Path) -> None:
    """Flush ``tmp`` to disk and rename it to ``target`` (atomic within one folder)."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, target)


def _refuse_existing(entry: WeightFile, folder: Path, force: bool) -> bool:
    """True if a verified copy is already installed; raise if a different file is there."""
    target = folder / entry.filename
    if not target.exists():
        return False
    state = file_status(entry, folder)
    if state == "verified" and not force:
        return True
    if state != "verified" and not force:
        raise WeightsError(f"{str(target)!r} exists but is not the published {entry.filename} "
                           f"(SHA-256 differs); pass --force (force=True) to replace it")
    return False


def add(name: str, source: str | Path, force: bool = False,
        folder: str | Path | None = None) -> Path:
    """Verify a file obtained elsewhere and copy it into the cache.

    Args:
        name: registry name, e.g. ``"i3d"``.
        source: the file.
        force: replace an installed file that differs from the published one.

    Returns:
        The installed path.

    Raises:
        WeightsError: unknown name, missing source, size or SHA-256 mismatch (nothing installed).
    """
    if name not in REGISTRY:
        raise WeightsError(f"unknown weights {name!r}; known: {', '.join(REGISTRY)}")
    entry, source = REGISTRY[name], Path(source).expanduser()
    folder = Path(folder) if folder is not None else weights_dir()
    if not source.is_file():
        raise WeightsError(f"{str(source)!r} does not exist")
    _verify(entry, source, str(source))
    if _refuse_existing(entry, folder, force):
        return folder / entry.filename
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (entry.filename + ".add")
    try:
        shutil.copyfile(source, tmp)
        _verify(entry, tmp, f"the copy of {str(source)!r}")
        _install(tmp, folder / entry.filename)
    finally:
        tmp.unlink(missing_ok=True)
    return folder / entry.filename


def fetch(name: str, force: bool = False, folder: str | Path | None = None,
          progress: bool = True, retries: int = 3, timeout: float = 60.0,
          entry: WeightFile | None = None) -> Path:
    """Download one registry file into the cache (see the module docstring).

    Args:
        name: registry name (ignored when ``entry`` is given).
        force: download again even if a verified copy is installed, and replace a file that
            differs from the published one.
        progress: show a progress bar on stderr (when it is a terminal).
        retries: resumed attempts after an interrupted transfer, per URL.
        timeout: seconds without data before a connection counts as interrupted.
        entry: a :class:`WeightFile` outside the registry (a private mirror, tests).

    Returns:
        The installed path.

    Raises:
        WeightsError: HTTP or network failure at every URL (one line naming each), an
            interruption that persists (the partial file is kept for the next call), or a
            size or checksum mismatch (the partial file is deleted; nothing is installed).
    """
    if entry is None:
        if name not in REGISTRY:
            raise WeightsError(f"unknown weights {name!r}; known: {', '.join(REGISTRY)}")
        entry = REGISTRY[name]
    folder = Path(folder) if folder is not None else weights_dir()
    if _refuse_existing(entry, folder, force):
        return folder / entry.filename
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / (entry.filename + ".part")
    failures: list[str] = []
    for url in entry.urls:
        try:
            _download(url, part, entry, progress, retries, timeout)
        except _TransferFailed as exc:
            failures.append(f"{url}: {exc}")
            continue
        try:
            _verify(entry, part, f"the download from {url}")
        except WeightsError:
            part.unlink(missing_ok=True)
            raise
        _install(part, folder / entry.filename)
        return folder / entry.filename
    kept = (f"; {part.stat().st_size} bytes kept in {str(part)!r}, run the command again to "
            "resume" if part.is_file() and part.stat().st_size else "")
    raise WeightsError(f"could not download {entry.filename}: {'; '.join(failures)}{kept}")


class _TransferFailed(Exception):
    """A URL failed (HTTP status, network error or a transfer cut short)."""


def _download(url: str, part: Path, entry: WeightFile, progress: bool, retries: int,
              timeout: float) -> None:
    """Fill ``part`` with the file at ``url``, resuming from its current size."""
    from hvrnn import __version__
    from hvrnn.log import progress as progress_bar

    last_error = ""
    for _ in range(retries + 1):
        have = part.stat().st_size if part.is_file() else 0
        if have >= entry.size:
            return  # complete (or too long: the size check reports it)
        request = urllib.request.Request(url, headers={"User-Agent": f"hvrnn/{__version__}"})
        if have:
            request.add_header("Range", f"bytes={have}-")
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:  # nothing left to send: verify what we have
                return
            raise _TransferFailed(f"HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise _TransferFailed(f"{type(exc).__name__}: {reason}") from None
        with response:
            resumed = response.status == 206 and (response.headers.get("Content-Range") or ""
                                                  ).startswith(f"bytes {have}-")
            if not resumed:
                have = 0  # the server sent the whole file
            length = response.headers.get("Content-Length")
            expected = have + int(length) if length and length.isdigit() else entry.size
            bar = progress_bar(total=entry.size, initial=have, unit="B", unit_scale=True,
                               unit_divisor=1024, desc=entry.filename,
                               enabled=None if progress else False, leave=False)
            try:
                with open(part, "ab" if resumed else "wb") as f:
                    while block := response.read(CHUNK):
                        f.write(block)
                        have += len(block)
                        bar.update(len(block))
            except (OSError, http.client.HTTPException) as exc:
                last_error = f"transfer interrupted after {have} bytes ({type(exc).__name__})"
                continue
            finally:
                bar.close()
        if have >= expected:
            return
        last_error = f"transfer interrupted after {have} of {expected} bytes"
    raise _TransferFailed(last_error)
