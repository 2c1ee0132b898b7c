"""Bad inputs and faults through the real command line (docs/reliability.md).

Every case runs ``hvrnn.cli.main([...])`` in this process and checks the promise of the error
boundary: exit status 2, exactly one ``error:`` line (naming the case's key words), no
traceback, and the folders involved (the case's own folder and the shared run, data and input
files) byte for byte as they were (SHA-256 of every file). Full disks and read-only file
systems are simulated by making the low-level writes fail (tests/faults.py). A few cases also
run as real processes at the end.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import TINY_OVERRIDES, fake_digits
from faults import Faults, fingerprint
from helpers import child_env

from hvrnn import checkpoint as ck
from hvrnn.cli import main
from hvrnn.evaluation.protocols import PROTOCOLS, Protocol

TEST_PROTOCOL = "smmnist16-c2-p3-n2"  # registered for these tests: the tiny model's geometry
REAL_PROTOCOL = "smmnist32-c2-p10-n10"


@dataclass
class World:
    """The inputs shared by every case (never written by them) and the case's own folder."""

    shared: Path
    data: Path  # a prepared 16x16 SM-MNIST folder
    mnist: Path  # fake MNIST digits (.npz)
    run: Path  # a trained tiny run (2 steps)
    preds: Path  # predictions for REAL_PROTOCOL: 3 sequences, 2 samples
    targets: Path  # their ground truth
    tmp: Path = Path()
    stack: ExitStack | None = None

    @property
    def ckpt(self) -> Path:
        return self.run / "checkpoints" / "last.pt"


def _overrides(w: World) -> list[str]:
    return [o for o in TINY_OVERRIDES if not o.startswith("train.max_steps")] + [
        f"data.root={w.data}", "data.train_length=16", "train.max_steps=2",
        "train.checkpoint_every=1"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    from hvrnn.data.smmnist import prepare_smmnist
    from hvrnn.training import train

    root = tmp_path_factory.mktemp("shared")
    mnist = root / "mnist.npz"
    np.savez(mnist, train=fake_digits(40, 0), test=fake_digits(20, 1))
    data = prepare_smmnist(root / "data", num_sequences=6, seq_len=8, image_size=16,
                           mnist_path=mnist)
    w = World(root, data, mnist, root / "run", root / "preds.npz", root / "targets.npz")
    from hvrnn.config import load_config

    train(load_config("tiny", _overrides(w)), w.run, progress=False)
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, (3, 12, 32, 32, 1), dtype=np.uint8)
    np.savez(w.targets, videos=clips)
    np.savez(w.preds, samples=rng.integers(0, 256, (3, 2, 10, 32, 32, 1), dtype=np.uint8),
             context=clips[:, :2])
    return w


@pytest.fixture(autouse=True)
def _test_protocol(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PROTOCOLS, TEST_PROTOCOL, Protocol(
        TEST_PROTOCOL, "smmnist", 16, 1, 2, 3, 2, max_sequences=4, data_root=str(world.data)))


# ---- arguments -------------------------------------------------------------------------------


def train_argv(w: World, *extra: str, run: str = "run") -> list[str]:
    return ["train", "tiny", *_overrides(w), "--run-dir", str(w.tmp / run), *extra]


def sample_argv(w: World, *extra: str, ckpt: Path | None = None) -> list[str]:
    return ["sample", str(ckpt or w.ckpt), "--n-samples", "2", "--num-sequences", "2",
            "--horizon", "3", "--out", str(w.tmp / "s"), *extra]


def eval_ckpt_argv(w: World, *extra: str, ckpt: Path | None = None) -> list[str]:
    return ["evaluate", str(ckpt or w.run), "--protocol", TEST_PROTOCOL, "--no-lpips",
            "--no-fvd", "--out", str(w.tmp / "ev"), *extra]


def eval_preds_argv(w: World, *extra: str, out: Path | None = None) -> list[str]:
    return ["evaluate", "--predictions", str(w.preds), "--protocol", REAL_PROTOCOL,
            "--targets", str(w.targets), "--no-lpips", "--no-fvd", "--out",
            str(out or w.tmp / "ev"), *extra]


def data_argv(w: World, *extra: str, out: Path | None = None) -> list[str]:
    return ["data", "smmnist", "--size", "32", "--num-sequences", "8", "--seq-len", "4",
            "--mnist", str(w.mnist), "--out", str(out or w.tmp / "new"), *extra]


# ---- inputs made by a case -------------------------------------------------------------------


def file(w: World, name: str, data: bytes) -> Path:
    p = w.tmp / name
    p.write_bytes(data)
    return p


def object_npz(w: World, name: str, key: str) -> Path:
    p = w.tmp / name
    np.savez(p, **{key: np.array([[1, "a"]], dtype=object)})
    return p


def data_copy(w: World, name: str = "data") -> Path:
    import shutil

    return Path(shutil.copytree(w.data, w.tmp / name))


def rehash(folder: Path, name: str, array: np.ndarray, manifest_edit: Callable | None = None
           ) -> None:
    """Rewrite ``folder/name`` and update its size and SHA-256 in the manifest (what a careless
    tool would do), optionally editing the manifest further."""
    from hvrnn.io.files import sha256_file

    np.save(folder / name, array)
    manifest = json.loads((folder / "manifest.json").read_text())
    entry = manifest["files"][name]
    entry.update(sha256=sha256_file(folder / name), bytes=(folder / name).stat().st_size)
    if manifest_edit is not None:
        manifest_edit(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def nan_checkpoint(w: World) -> Path:
    state = ck.read_checkpoint(w.ckpt)
    first = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][first] = state["model"][first].clone().fill_(float("nan"))
    path = w.tmp / "nan.pt"
    torch.save(state, path)
    return path


def nan_sampler(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sampler returns NaN in sample 1 of the first sequence and inf in sample 0 of the
    second: 2 of the samples of 2 sequences."""
    import hvrnn.evaluation.from_checkpoint as fc
    import hvrnn.sample_files as sf
    from hvrnn.sampling import sample as real

    def poisoned(*args: Any, **kwargs: Any) -> torch.Tensor:
        out = real(*args, **kwargs).clone()
        out[0, 1, 0, 0, 0, 0] = float("nan")
        if out.shape[0] > 1:
            out[1, 0, -1, 0, 0, 0] = float("inf")
        return out

    monkeypatch.setattr(sf, "sample", poisoned)
    monkeypatch.setattr(fc, "sample", poisoned)


def missing(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """``module`` cannot be imported, as after ``pip install hvrnn`` without extras."""
    for name in list(sys.modules):
        if name == module or name.startswith(module + "."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)


def hold_lock(w: World, folder: Path) -> int:
    """Another live process holds the lock of ``folder``; returns its PID."""
    folder.mkdir(parents=True, exist_ok=True)
    code = ("import sys, time; from hvrnn.io.locks import FolderLock; "
            "FolderLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(120)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE,
                            text=True, env=env)
    w.stack.callback(proc.wait)
    w.stack.callback(proc.kill)
    assert proc.stdout.readline().strip() == "locked"
    return proc.pid


# ---- the table -------------------------------------------------------------------------------


@dataclass
class Case:
    """``argv(world)`` must end in one error line holding every ``needle`` and no ``absent``
    text; ``prepare`` runs
    before the folders are fingerprinted, ``faults`` after; ``changes``: the folder a case may
    change (checked by ``check`` instead of the fingerprint)."""

    id: str
    argv: Callable[[World], list[str]]
    needles: tuple[str, ...] = ()
    prepare: Callable[[World, pytest.MonkeyPatch], Any] | None = None
    faults: Callable[[World], Faults] | None = None
    changes: str = ""
    check: Callable[[World, str], None] | None = None
    absent: tuple[str, ...] = ()


def _enospc(match: str) -> Callable[[World], Faults]:
    return lambda w: Faults(w.tmp, errno.ENOSPC, match=match)


def _erofs(w: World) -> Faults:
    return Faults(w.tmp / "RO", errno.EROFS)


def _ro(w: World, mp: Any) -> None:
    (w.tmp / "RO").mkdir()


def _failed_run(w: World, line: str) -> None:
    """A run that failed mid-way: no temporary file, metrics.jsonl ends with the failure."""
    run = w.tmp / "run"
    assert not [p for p in run.rglob("*") if ".tmp-" in p.name or p.name == ".hvrnn.lock"]
    end = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert end["kind"] == "end" and end["status"] == "failed", end
    assert "No space left on device" in end["error"]
    for p in ck.list_checkpoints(run):
        ck.read_checkpoint(p)  # every checkpoint left is whole


def _n_z_huge(w: World) -> list[str]:
    return train_argv(w, "model.n_z=1000000000")


def _cpu_only_torch(mp: pytest.MonkeyPatch, cuda: str | None = None, devices: int = 0) -> None:
    """This torch as a CPU-only build (or a CUDA build seeing ``devices`` GPUs), whatever the
    machine the tests run on has."""
    mp.setattr(torch.version, "cuda", cuda)
    mp.setattr(torch.cuda, "is_available", lambda: devices > 0)
    mp.setattr(torch.cuda, "device_count", lambda: devices)


CASES = [
    # -- 1. a traceback before: output on a read-only file system, or a file given as a folder
    Case("data-out-read-only", lambda w: data_argv(w, out=w.tmp / "RO" / "new"),
         ("RO/new", "Read-only file system"), _ro, _erofs),
    Case("evaluate-out-read-only", lambda w: eval_preds_argv(w, out=w.tmp / "RO" / "ev"),
         ("RO/ev", "Read-only file system"), _ro, _erofs),
    Case("sample-out-read-only", lambda w: sample_argv(w, "--out", str(w.tmp / "RO" / "s")),
         ("RO/s", "Read-only file system"), _ro, _erofs),
    Case("train-run-dir-read-only", lambda w: train_argv(w, run="RO/run"),
         ("RO/run", "Read-only file system"), _ro, _erofs),
    Case("evaluate-out-is-a-file", lambda w: eval_preds_argv(w, out=w.tmp / "f"),
         ("exists and is not a folder",), lambda w, mp: file(w, "f", b"x")),
    Case("data-out-is-a-file", lambda w: data_argv(w, out=w.tmp / "f"),
         ("exists and is not a folder",), lambda w, mp: file(w, "f", b"x")),
    Case("sample-out-below-a-file", lambda w: sample_argv(w, "--out", str(w.tmp / "f" / "s")),
         ("is a file, not a folder",), lambda w, mp: file(w, "f", b"x")),
    Case("train-run-dir-is-a-file", lambda w: train_argv(w, run="f"),
         ("exists and is not a folder",), lambda w, mp: file(w, "f", b"x")),
    # -- a full disk while preparing data, checkpointing, sampling or evaluating
    Case("data-enospc-digits", data_argv, ("No space left on device", "digits"),
         faults=_enospc("*digits*")),
    Case("data-enospc-test-array", data_argv, ("No space left on device", "test"),
         faults=_enospc("*test*")),
    Case("train-enospc-config", train_argv, ("No space left on device", "config.yaml"),
         faults=_enospc("*config*")),
    Case("evaluate-quota-per-frame-csv", eval_preds_argv, ("quota", "per_frame.csv"),
         faults=lambda w: Faults(w.tmp, errno.EDQUOT, match="*per_frame*")),
    Case("data-out-permission-denied", lambda w: data_argv(w, out=w.tmp / "RO" / "new"),
         ("RO/new", "Permission denied"), _ro, lambda w: Faults(w.tmp / "RO", errno.EACCES)),
    Case("train-enospc-checkpoint", train_argv, ("No space left on device", "step_"),
         faults=_enospc("*step_*"), changes="run", check=_failed_run),
    Case("sample-enospc-npz", sample_argv, ("No space left on device", "samples.npz"),
         faults=_enospc("*samples*")),
    Case("sample-enospc-png", sample_argv, ("No space left on device", "seq_000.png"),
         faults=_enospc("*seq_000*.png")),
    Case("evaluate-enospc-predictions", eval_ckpt_argv, ("No space left", "predictions.npz"),
         faults=_enospc("*predictions*")),
    Case("evaluate-enospc-metrics", eval_preds_argv, ("No space left", "metrics.json"),
         faults=_enospc("*metrics*")),
    # -- unreadable inputs, wherever they are read
    Case("config-not-utf8", lambda w: ["train", str(w.tmp / "bad.yaml")],
         ("bad.yaml", "not UTF-8"), lambda w, mp: file(w, "bad.yaml", b"name: \xff\xfe\n")),
    Case("info-config-not-utf8", lambda w: ["info", str(w.tmp / "bad.yaml")],
         ("bad.yaml", "not UTF-8"), lambda w, mp: file(w, "bad.yaml", b"\xc3\x28: 1\n")),
    Case("mnist-npz-corrupt", lambda w: data_argv(w, "--mnist", str(w.tmp / "m.npz")),
         ("m.npz",), lambda w, mp: file(w, "m.npz", b"PK\x03\x04 not a zip at all")),
    Case("mnist-npz-garbage", lambda w: data_argv(w, "--mnist", str(w.tmp / "m.npz")),
         ("m.npz",), lambda w, mp: file(w, "m.npz", os.urandom(256))),
    Case("mnist-npz-object-array", lambda w: data_argv(w, "--mnist", str(w.tmp / "o.npz")),
         ("o.npz",), lambda w, mp: object_npz(w, "o.npz", "train")),
    Case("mnist-pickle-corrupt", lambda w: data_argv(w, "--mnist", str(w.tmp / "m.pkl.gz")),
         ("m.pkl.gz",), lambda w, mp: file(w, "m.pkl.gz", b"\x1f\x8b\x08 broken")),
    Case("mnist-idx-gzip-corrupt", lambda w: data_argv(w, "--mnist", str(w.tmp / "idx")),
         ("idx",), lambda w, mp: [(w.tmp / "idx").mkdir(),
                                  file(w, "idx/train-images-idx3-ubyte.gz", b"\x1f\x8b\x08x"),
                                  file(w, "idx/t10k-images-idx3-ubyte.gz", b"\x1f\x8b\x08x")]),
    Case("targets-corrupt", lambda w: eval_preds_argv(w, "--targets", str(w.tmp / "t.npz")),
         ("t.npz",), lambda w, mp: file(w, "t.npz", b"PK\x03\x04garbage")),
    Case("targets-object-array",
         lambda w: eval_preds_argv(w, "--targets", str(w.tmp / "t.npz")),
         ("t.npz",), lambda w, mp: object_npz(w, "t.npz", "videos")),
    Case("predictions-corrupt",
         lambda w: [*eval_preds_argv(w)[:2], str(w.tmp / "p.npz"), *eval_preds_argv(w)[3:]],
         ("p.npz",), lambda w, mp: file(w, "p.npz", b"not an archive")),
    Case("predictions-object-array",
         lambda w: [*eval_preds_argv(w)[:2], str(w.tmp / "p.npz"), *eval_preds_argv(w)[3:]],
         ("p.npz", "objects"), lambda w, mp: object_npz(w, "p.npz", "samples")),
    Case("context-corrupt", lambda w: sample_argv(w, "--context", str(w.tmp / "c.npz")),
         ("c.npz",), lambda w, mp: file(w, "c.npz", b"PK\x03\x04broken")),
    Case("context-object-array", lambda w: sample_argv(w, "--context", str(w.tmp / "c.npz")),
         ("c.npz",), lambda w, mp: object_npz(w, "c.npz", "context")),
    Case("context-float32", lambda w: sample_argv(w, "--context", str(w.tmp / "c.npy")),
         ("c.npy", "uint8"),
         lambda w, mp: np.save(w.tmp / "c.npy", np.zeros((2, 4, 16, 16), np.float32))),
    Case("digits-damaged-same-size", lambda w: train_argv(w, f"data.root={w.tmp / 'd'}"),
         ("digits.npz", "hvrnn data smmnist --out"), lambda w, mp: _damage_digits(w)),
    Case("checkpoint-truncated", lambda w: sample_argv(w, ckpt=w.tmp / "t.pt"),
         ("t.pt", "corrupt"), lambda w, mp: file(w, "t.pt", w.ckpt.read_bytes()[:3000])),
    # -- devices
    Case("sample-device-cuda-cpu-only", lambda w: sample_argv(w, "--device", "cuda"),
         ("cuda",), lambda w, mp: _cpu_only_torch(mp)),
    Case("sample-device-tpu9", lambda w: sample_argv(w, "--device", "tpu9"), ("tpu9",)),
    Case("sample-horizon-past-the-clips", lambda w: sample_argv(w, "--horizon", "500"),
         ("fewer than data.n_ctx + data.n_pred = 502 (sampling 500 frames: --horizon",
          "--seq-len 502")),
    Case("evaluate-device-cuda-cpu-only", lambda w: eval_ckpt_argv(w, "--device", "cuda:1"),
         ("cuda:1",), lambda w, mp: _cpu_only_torch(mp)),
    Case("evaluate-device-cuda-index-too-high",
         lambda w: eval_ckpt_argv(w, "--device", "cuda:1"), ("cuda:1", "1 CUDA device"),
         lambda w, mp: _cpu_only_torch(mp, cuda="12.8", devices=1)),
    Case("train-device-cuda-cpu-only", lambda w: train_argv(w, "train.device=cuda"),
         ("cuda",), lambda w, mp: _cpu_only_torch(mp)),
    Case("train-device-tpu9", lambda w: train_argv(w, "train.device=tpu9"), ("tpu9",)),
    # -- values that passed validation and failed later
    Case("train-adam-betas", lambda w: train_argv(w, "train.betas=[2,3]"), ("adam_betas",)),
    Case("train-n-z-huge-memory", _n_z_huge, ("parameters", "GB")),
    Case("evaluate-n-samples-negative", lambda w: eval_ckpt_argv(w, "--n-samples", "-2"),
         ("--n-samples", "-2")),
    Case("evaluate-batch-size-negative", lambda w: eval_ckpt_argv(w, "--batch-size", "-1"),
         ("--batch-size", "-1")),
    Case("evaluate-max-sequences-zero", lambda w: eval_ckpt_argv(w, "--max-sequences", "0"),
         ("--max-sequences",)),
    Case("sample-n-samples-zero", lambda w: sample_argv(w, "--n-samples", "0"),
         ("--n-samples",)),
    Case("info-gn-groups-zero", lambda w: ["info", "tiny", "model.gn_groups=0"],
         ("model.gn_groups",)),
    Case("evaluate-n-samples-with-predictions", lambda w: eval_preds_argv(w, "--n-samples", "3"),
         ("--n-samples", "CHECKPOINT")),
    # -- a missing optional package: which extra to install
    Case("demo-without-ffmpeg", lambda w: ["demo", "--out", str(w.tmp / "demo"), "--data",
                                           str(w.data)],
         ("imageio-ffmpeg", "pip install 'hvrnn[viz]'"),
         lambda w, mp: missing(mp, "imageio_ffmpeg")),
    Case("sample-without-imageio", sample_argv, ("imageio", "hvrnn[viz]"),
         lambda w, mp: missing(mp, "imageio")),
    Case("evaluate-without-matplotlib", eval_preds_argv, ("matplotlib", "hvrnn[viz]"),
         lambda w, mp: missing(mp, "matplotlib")),
    # -- one line for what used to take 4 to 8
    Case("config-yaml-syntax", lambda w: ["train", str(w.tmp / "bad.yaml")],
         ("bad.yaml", "line 3, column 1"),
         lambda w, mp: file(w, "bad.yaml", b"name: x\ntrain: {lr: [1, 2\n")),
    Case("i3d-weights-unreadable", lambda w: [*eval_preds_argv(w)[:-4], "--no-lpips",
                                              "--i3d-weights", str(w.tmp / "i3d.pt"),
                                              "--out", str(w.tmp / "ev")],
         ("i3d.pt",), lambda w, mp: file(w, "i3d.pt", b"garbage" * 50)),
    Case("bair-source-not-a-tar", lambda w: ["data", "bair", str(w.tmp / "b.tar"), "--out",
                                             str(w.tmp / "bair")],
         ("b.tar", "not a readable tar"), lambda w, mp: file(w, "b.tar", os.urandom(600))),
    # -- 2. silently wrong results before: non-finite values
    Case("train-lr-inf", lambda w: train_argv(w, "train.lr=inf"), ("train.lr", "finite")),
    Case("train-lr-1e400", lambda w: train_argv(w, "train.lr=1e400"), ("train.lr", "finite")),
    Case("train-lr-yaml-inf", lambda w: ["train", str(w.tmp / "c.yaml"), *_overrides(w),
                                         "--run-dir", str(w.tmp / "run")],
         ("train.lr", "finite"), lambda w, mp: file(w, "c.yaml", b"base: tiny\ntrain:\n"
                                                                  b"  lr: .inf\n")),
    Case("train-beta-nan", lambda w: train_argv(w, "train.beta=nan"), ("loss.kl_beta",)),
    Case("sample-temperature-nan", lambda w: sample_argv(w, "--temperature", "nan"),
         ("--temperature", "nan")),
    Case("sample-temperature-negative", lambda w: sample_argv(w, "--temperature", "-1"),
         ("--temperature", "-1")),
    Case("sample-nan-weights", lambda w: sample_argv(w, ckpt=w.tmp / "nan.pt"),
         ("nan.pt", "NaN or infinite weights"), lambda w, mp: nan_checkpoint(w)),
    Case("evaluate-nan-weights", lambda w: eval_ckpt_argv(w, ckpt=w.tmp / "nan.pt"),
         ("nan.pt", "NaN or infinite weights"), lambda w, mp: nan_checkpoint(w)),
    Case("sample-non-finite-samples", sample_argv,
         ("NaN or infinite", "2 of 4 samples of 2 of 2 sequences"),
         lambda w, mp: nan_sampler(mp)),
    Case("evaluate-non-finite-samples", eval_ckpt_argv,
         ("NaN or infinite", "2 of 8 samples of 2 of 4 sequences"),
         lambda w, mp: nan_sampler(mp)),
    # -- 3. a re-hashed array that the manifest does not describe
    Case("verify-float32", lambda w: ["data", "verify", str(w.tmp / "d")],
         ("test.npy", "float32", "--num-sequences 6 --seq-len 8"),
         lambda w, mp: _rewrite(w, np.float32)),
    Case("verify-int16", lambda w: ["data", "verify", str(w.tmp / "d")],
         ("test.npy", "int16"), lambda w, mp: _rewrite(w, np.int16)),
    Case("verify-wrong-frame-size", lambda w: ["data", "verify", str(w.tmp / "d")],
         ("test.npy", "(6, 8, 8, 8, 1)"), lambda w, mp: _rewrite(w, np.uint8, size=8)),
    Case("verify-manifest-contradicts-itself", lambda w: ["data", "verify", str(w.tmp / "d")],
         ("contradicts itself", "counts.test"), lambda w, mp: _contradict(w)),
    Case("train-on-float32-data", lambda w: train_argv(w, f"data.root={w.tmp / 'd'}",
                                                       "train.val_every=1"),
         ("test.npy", "float32"), lambda w, mp: _rewrite(w, np.float32)),
    Case("evaluate-on-resized-data", lambda w: eval_ckpt_argv(w, "--data-root", str(w.tmp / "d")),
         ("test.npy", "(6, 8, 8, 8, 1)"), lambda w, mp: _rewrite(w, np.uint8, size=8)),
    # -- 4. nothing overwritten without --force
    Case("evaluate-over-predictions-npz", eval_ckpt_argv, ("predictions.npz", "--force"),
         lambda w, mp: [(w.tmp / "ev").mkdir(), file(w, "ev/predictions.npz", b"earlier")]),
    Case("evaluate-over-per-frame-csv", eval_preds_argv, ("per_frame.csv", "--force"),
         lambda w, mp: [(w.tmp / "ev").mkdir(), file(w, "ev/per_frame.csv", b"t\n")]),
    Case("sample-over-earlier-samples", sample_argv, ("not empty", "--force"),
         lambda w, mp: [(w.tmp / "s").mkdir(), file(w, "s/samples.npz", b"x")]),
    Case("train-over-a-run-without-resume", lambda w: train_argv(w, run="r"),
         ("already exists", "--resume"),
         lambda w, mp: [(w.tmp / "r").mkdir(), file(w, "r/config.yaml", b"name: x\n")]),
    # -- 6. a second writer
    Case("train-resume-while-running", lambda w: train_argv(w, "--resume", run="r"),
         ("in use by process",), lambda w, mp: _locked_run(w)),
    Case("data-out-being-written", lambda w: data_argv(w, "--force", out=w.tmp / "busy"),
         ("in use by process",), lambda w, mp: hold_lock(w, w.tmp / "busy")),
    Case("evaluate-out-being-written", lambda w: eval_preds_argv(w, out=w.tmp / "busy"),
         ("in use by process",), lambda w, mp: hold_lock(w, w.tmp / "busy")),
    # -- 8. the fix-it hint names this folder and every original argument, quoted
    Case("hint-of-a-moved-folder", lambda w: train_argv(w, f"data.root={w.tmp / 'moved it'}",
                                                        "train.val_every=1"),
         ("--out '{tmp}/moved it' --size 16 --num-sequences 6 --seq-len 8",),
         lambda w, mp: _truncated_copy(w, "moved it")),
    Case("hint-seq-len-too-short", lambda w: train_argv(w, "data.n_pred=9", "train.val_every=1"),
         ("--seq-len 11", "--num-sequences 6", "--force")),
    # -- 9. the command line as typed
    Case("demo-has-no-force", lambda w: ["demo", "--out", str(w.tmp / "demo"), "--data",
                                         str(w.tmp / "half"), "--mnist", str(w.mnist)],
         ("half", "not empty"), lambda w, mp: [(w.tmp / "half").mkdir(),
                                               file(w, "half/test.npy", b"x")],
         absent=("--force",)),
    Case("config-base-cycle", lambda w: ["info", str(w.tmp / "a.yaml")],
         ("a.yaml -> b.yaml -> a.yaml",),
         lambda w, mp: [file(w, "a.yaml", f"base: {w.tmp / 'b.yaml'}\n".encode()),
                        file(w, "b.yaml", f"base: {w.tmp / 'a.yaml'}\n".encode())]),
    Case("config-base-self", lambda w: ["info", str(w.tmp / "a.yaml")], ("its own base",),
         lambda w, mp: file(w, "a.yaml", f"base: {w.tmp / 'a.yaml'}\n".encode())),
    Case("unknown-argument-after-options", lambda w: ["info", "tiny", "--json", "--frobnicate"],
         ("--frobnicate",)),
    Case("resume-a-missing-run", lambda w: train_argv(w, "--resume", run="none"),
         ("does not exist",)),
    # -- third round: empty inputs, refused before any work
    Case("videos-npy-no-clips", lambda w: ["data", "videos", str(w.tmp / "e.npy"), "--out",
                                           str(w.tmp / "new")],
         ("e.npy", "(0, 5, 16, 16, 3)"),
         lambda w, mp: np.save(w.tmp / "e.npy", np.zeros((0, 5, 16, 16, 3), np.uint8))),
    Case("videos-npy-no-frames", lambda w: ["data", "videos", str(w.tmp / "e.npy"), "--out",
                                            str(w.tmp / "new")],
         ("e.npy", "(3, 0, 16, 16, 3)"),
         lambda w, mp: np.save(w.tmp / "e.npy", np.zeros((3, 0, 16, 16, 3), np.uint8))),
    Case("kth-no-person-1-25", lambda w: ["data", "kth", str(w.tmp / "kth"), "--out",
                                          str(w.tmp / "new")],
         ("kth", "persons 1-25"), lambda w, mp: _kth_persons(w)),
    Case("predictions-no-sequences", lambda w: preds_argv(w, w.tmp / "p.npz"),
         ("p.npz", "empty", "(0, 2, 10, 32, 32, 1)"),
         lambda w, mp: np.savez(w.tmp / "p.npz",
                                samples=np.zeros((0, 2, 10, 32, 32, 1), np.uint8))),
    Case("predictions-no-samples", lambda w: preds_argv(w, w.tmp / "p.npz"),
         ("p.npz", "empty"),
         lambda w, mp: np.savez(w.tmp / "p.npz",
                                samples=np.zeros((3, 0, 10, 32, 32, 1), np.uint8))),
    Case("targets-no-clips", lambda w: eval_preds_argv(w, "--targets", str(w.tmp / "t.npz")),
         ("t.npz", "empty"),
         lambda w, mp: np.savez(w.tmp / "t.npz", videos=np.zeros((0, 12, 32, 32, 1), np.uint8))),
    Case("targets-npy-no-frames", lambda w: eval_preds_argv(w, "--targets", str(w.tmp / "t.npy")),
         ("t.npy", "empty"),
         lambda w, mp: np.save(w.tmp / "t.npy", np.zeros((3, 0, 32, 32, 1), np.uint8))),
    Case("targets-npy-wrong-shape",
         lambda w: eval_preds_argv(w, "--targets", str(w.tmp / "t.npy")),
         ("targets", "(3, 5, 32, 32, 1)"),
         lambda w, mp: np.save(w.tmp / "t.npy", np.zeros((3, 5, 32, 32, 1), np.uint8))),
    Case("targets-text-named-npy",
         lambda w: eval_preds_argv(w, "--targets", str(w.tmp / "t.npy")),
         ("t.npy", "not a NumPy array file"),
         lambda w, mp: (w.tmp / "t.npy").write_text("not an array\n")),
    Case("context-no-clips", lambda w: sample_argv(w, "--context", str(w.tmp / "c.npy")),
         ("c.npy", "empty"),
         lambda w, mp: np.save(w.tmp / "c.npy", np.zeros((0, 4, 16, 16, 1), np.uint8))),
    Case("context-npz-zero-width", lambda w: sample_argv(w, "--context", str(w.tmp / "c.npz")),
         ("c.npz", "empty"),
         lambda w, mp: np.savez(w.tmp / "c.npz", context=np.zeros((2, 4, 16, 0, 1), np.uint8))),
    Case("png-folder-without-sample-folders", lambda w: preds_argv(w, w.tmp / "pf"),
         ("0000", "no sample folders"), lambda w, mp: _png_folder_without_samples(w)),
    # -- damaged or foreign inputs
    Case("predictions-unsupported-compression", lambda w: preds_argv(w, w.tmp / "p.npz"),
         ("p.npz", "compression"), lambda w, mp: unsupported_compression(
             w, "p.npz", samples=np.zeros((3, 2, 10, 32, 32, 1), np.uint8))),
    Case("targets-unsupported-compression",
         lambda w: eval_preds_argv(w, "--targets", str(w.tmp / "t.npz")),
         ("t.npz", "compression"), lambda w, mp: unsupported_compression(
             w, "t.npz", videos=np.zeros((3, 12, 32, 32, 1), np.uint8))),
    Case("context-unsupported-compression",
         lambda w: sample_argv(w, "--context", str(w.tmp / "c.npz")),
         ("c.npz", "compression"), lambda w, mp: unsupported_compression(
             w, "c.npz", context=np.zeros((2, 4, 16, 16, 1), np.uint8))),
    Case("compare-metrics-json-a-list",
         lambda w: ["compare", str(w.tmp / "evf"), "--protocol", TEST_PROTOCOL, "--out",
                    str(w.tmp / "cmp")],
         ("evf/metrics.json", "not the metrics.json"), lambda w, mp: _metrics_json(w, b"[]")),
    Case("compare-metrics-json-no-metrics",
         lambda w: ["compare", str(w.tmp / "evf"), "--protocol", TEST_PROTOCOL, "--out",
                    str(w.tmp / "cmp")],
         ("evf/metrics.json",), lambda w, mp: _metrics_json(w, b'{"protocol_id": 3}')),
    Case("bair-tar-gz-cut", lambda w: ["data", "bair", str(w.tmp / "b.tar.gz"), "--out",
                                       str(w.tmp / "bair-out")],
         ("b.tar.gz",), lambda w, mp: _cut_tar_gz(w)),
    Case("bair-tfrecord-links-to-a-folder",
         lambda w: ["data", "bair", str(w.tmp / "bair"), "--out", str(w.tmp / "bair-out")],
         ("traj_0_to_255.tfrecords",), lambda w, mp: _symlinked_tfrecord(w)),
    Case("resume-config-a-list", lambda w: train_argv(w, "--resume", run="r"),
         ("config.yaml", "list"), lambda w, mp: _run_with_config(w, b"- a\n- b\n")),
    Case("resume-config-a-number", lambda w: train_argv(w, "--resume", run="r"),
         ("config.yaml", "int"), lambda w, mp: _run_with_config(w, b"3\n")),
    Case("videos-frame-bomb", lambda w: ["data", "videos", str(w.tmp / "vids"), "--out",
                                         str(w.tmp / "new")],
         ("0000.png", "too large"), lambda w, mp: bomb_png(w.tmp / "vids" / "a" / "0000.png")),
    Case("cityscapes-frame-bomb", lambda w: ["data", "cityscapes", str(w.tmp / "cs"), "--out",
                                             str(w.tmp / "new"), "--size", "8"],
         ("bonn_000000_000007_leftImg8bit.png", "too large"),
         lambda w, mp: _cityscapes_with_a_bomb(w)),
    Case("cityscapes-zip-unsupported-compression",
         lambda w: ["data", "cityscapes", str(w.tmp / "cs.zip"), "--out", str(w.tmp / "new"),
                    "--size", "8"],
         ("bonn_000000_000007_leftImg8bit.png", "compression"),
         lambda w, mp: _cityscapes_with_a_bomb(w, as_zip=True)),
    Case("predictions-png-bomb", lambda w: preds_argv(w, w.tmp / "pf"),
         ("0000.png", "too large"), lambda w, mp: _png_folder_with_a_bomb(w)),
    Case("compare-over-an-earlier-evaluation",
         lambda w: [*cmp_argv(w, w.tmp / "zeros.npz"), "--labels", "a"],
         ("evaluations/a", "per_frame.csv", "--force"),
         lambda w, mp: _earlier_evaluation_of(w, "a")),
    Case("compare-entries-of-other-frame-sizes", lambda w: cmp_argv(w, w.tmp / "evf"),
         ("evf/predictions.npz", "(4, 2, 3, 8, 8, 1)"),
         lambda w, mp: _evaluation_with_other_frames(w)),
    # -- an error found after the run directory would have been made leaves it as it was
    Case("train-init-from-other-model", lambda w: train_argv(
        w, f"train.init_from={w.run}", "model.base_channels=16", "model.max_channels=32"),
         ("train.init_from", "do not fit")),
    Case("train-init-from-other-model-into-an-empty-folder", lambda w: train_argv(
        w, f"train.init_from={w.run}", "model.base_channels=16", "model.max_channels=32"),
         ("train.init_from", "do not fit"), lambda w, mp: (w.tmp / "run").mkdir()),
    # -- the memory a training step needs: weights, optimiser state and activations
    Case("train-smmnist64-on-a-23-gb-machine",
         lambda w: ["train", "smmnist64", "--run-dir", str(w.tmp / "run"), "train.max_steps=2"],
         ("24.9 GB", "21.6 GB of activations", "train.batch_size=16", "23.0 GB in all"),
         lambda w, mp: mp.setattr("hvrnn.memory.device_memory", lambda d: 23_000_000_000)),
    Case("gif-predictions-short", lambda w: preds_argv(w, w.tmp / "gifs"),
         ("0000_0000.gif", "5 frames"), lambda w, mp: _short_gifs(w)),
]


def preds_argv(w: World, path: Path, *extra: str) -> list[str]:
    """``evaluate --predictions PATH`` with the shared targets (REAL_PROTOCOL)."""
    return ["evaluate", "--predictions", str(path), "--protocol", REAL_PROTOCOL, "--targets",
            str(w.targets), "--no-lpips", "--no-fvd", "--out", str(w.tmp / "ev"), *extra]


def unsupported_compression(w: World, name: str, **arrays: np.ndarray) -> Path:
    """An ``.npz`` whose members say they are compressed with deflate64 (method 9), which
    Python's zipfile cannot read."""
    import zipfile

    p = w.tmp / name
    np.savez(p, **arrays)  # stored members
    raw = bytearray(p.read_bytes())
    with zipfile.ZipFile(p) as z:
        infos = z.infolist()
    for info in infos:  # the local header's method field, then the central directory's
        raw[info.header_offset + 8:info.header_offset + 10] = (9).to_bytes(2, "little")
    central = raw.find(b"PK\x01\x02")
    while central >= 0:
        raw[central + 10:central + 12] = (9).to_bytes(2, "little")
        central = raw.find(b"PK\x01\x02", central + 4)
    p.write_bytes(bytes(raw))
    return p


def bomb_png(path: Path, side: int = 100_000) -> Path:
    """A small PNG whose header declares ``side`` x ``side`` RGB pixels (PIL refuses to decode
    more than twice its ``MAX_IMAGE_PIXELS``)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8,
                                                                    2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return path


def _cut_tar_gz(w: World) -> Path:
    import io
    import tarfile

    data = os.urandom(200_000)  # incompressible: the cut falls inside the member
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("softmotion30_44k/test/traj_0_to_255.tfrecords")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return file(w, "b.tar.gz", buf.getvalue()[:120_000])


def _symlinked_tfrecord(w: World) -> None:
    folder = w.tmp / "bair" / "softmotion30_44k" / "test"
    folder.mkdir(parents=True)
    (w.tmp / "adir").mkdir()
    (folder / "traj_0_to_255.tfrecords").symlink_to(w.tmp / "adir")


def _run_with_config(w: World, text: bytes) -> None:
    import shutil

    shutil.copytree(w.run, w.tmp / "r")
    (w.tmp / "r" / "config.yaml").write_bytes(text)


def _black_pngs(w: World, sub: str, frames: int) -> None:
    """3 sequences of ``frames`` black 32x32 PNGs in ``pf/<sequence>/<sub>/``."""
    from PIL import Image

    for seq in range(3):
        folder = w.tmp / "pf" / f"{seq:04d}" / sub
        folder.mkdir(parents=True)
        for i in range(frames):
            Image.fromarray(np.zeros((32, 32), np.uint8)).save(folder / f"{i:04d}.png")


def _png_folder_without_samples(w: World) -> None:
    _black_pngs(w, "ctx", 2)


def _png_folder_with_a_bomb(w: World) -> None:
    """3 sequences x 1 sample x 10 frames; frame 0 of sequence 0 is a decompression bomb."""
    _black_pngs(w, "0000", 10)
    bomb_png(w.tmp / "pf" / "0000" / "0000" / "0000.png")


def _cityscapes_with_a_bomb(w: World, as_zip: bool = False) -> None:
    """One 30-frame test snippet of 8 x 16 frames; frame 7 is a decompression bomb (or, in a
    zip, a member compressed with deflate64)."""
    import zipfile

    from PIL import Image

    folder = w.tmp / "cs" / "leftImg8bit_sequence" / "test" / "bonn"
    folder.mkdir(parents=True)
    for i in range(30):
        path = folder / f"bonn_000000_{i:06d}_leftImg8bit.png"
        Image.fromarray(np.zeros((8, 16, 3), np.uint8)).save(path)
    if not as_zip:
        bomb_png(folder / "bonn_000000_000007_leftImg8bit.png")
        return
    with zipfile.ZipFile(w.tmp / "cs.zip", "w", zipfile.ZIP_STORED) as z:
        for p in sorted(folder.iterdir()):
            z.write(p, p.relative_to(w.tmp / "cs").as_posix())
    raw = bytearray((w.tmp / "cs.zip").read_bytes())
    with zipfile.ZipFile(w.tmp / "cs.zip") as z:
        info = z.getinfo("leftImg8bit_sequence/test/bonn/bonn_000000_000007_leftImg8bit.png")
    raw[info.header_offset + 8:info.header_offset + 10] = (9).to_bytes(2, "little")
    central = raw.rfind(b"PK\x01\x02", 0, raw.rfind(info.filename.encode()))
    raw[central + 10:central + 12] = (9).to_bytes(2, "little")
    (w.tmp / "cs.zip").write_bytes(bytes(raw))


def _gif(path: Path, frames: np.ndarray, duration: int) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration, loop=0)
    return path


def _short_gifs(w: World) -> None:
    """3 sequences x 2 samples of GIFs holding 5 different frames of 100 ms each: half the 10
    predicted frames (REAL_PROTOCOL); no frame was merged, nothing may be repeated."""
    rng = np.random.default_rng(3)
    for i in range(3):
        for j in range(2):
            frames = rng.integers(0, 256, (5, 32, 32), dtype=np.uint8)
            _gif(w.tmp / "gifs" / f"{i:04d}_{j:04d}.gif", frames, 100)


def _kth_persons(w: World) -> None:
    folder = w.tmp / "kth" / "boxing"
    folder.mkdir(parents=True)
    file(w, "kth/boxing/person99_boxing_d1_uncomp.avi", b"never decoded")
    file(w, "kth/boxing/person00_boxing_d2_uncomp.avi", b"never decoded")


def _metrics_json(w: World, text: bytes) -> None:
    (w.tmp / "evf").mkdir()
    file(w, "evf/metrics.json", text)


def tp_preds(w: World, name: str, value: int, size: int = 16) -> Path:
    """Predictions for TEST_PROTOCOL (4 sequences, 2 samples, 3 frames) all ``value``."""
    path = w.tmp / name
    np.savez(path, samples=np.full((4, 2, 3, size, size, 1), value, np.uint8))
    return path


def cmp_argv(w: World, *entries: str | Path, out: str = "cmp") -> list[str]:
    return ["compare", *map(str, entries), "--protocol", TEST_PROTOCOL, "--no-lpips", "--no-fvd",
            "--out", str(w.tmp / out)]


def _earlier_evaluation_of(w: World, label: str) -> None:
    """``cmp/evaluations/<label>`` holds the per-frame file of an earlier evaluation of
    something else under that label."""
    tp_preds(w, "zeros.npz", 0)
    folder = w.tmp / "cmp" / "evaluations" / label
    folder.mkdir(parents=True)
    file(w, f"cmp/evaluations/{label}/per_frame.csv", b"frame,psnr\n3,1.0\n")


def _evaluation_with_other_frames(w: World) -> None:
    """An evaluation folder whose metrics.json is an evaluation under TEST_PROTOCOL but whose
    predictions.npz holds 8 x 8 frames (replaced after the evaluation)."""
    assert main(["evaluate", "--predictions", str(tp_preds(w, "p.npz", 0)), "--protocol",
                 TEST_PROTOCOL, "--no-lpips", "--no-fvd", "--out", str(w.tmp / "evf")]) == 0
    np.savez(w.tmp / "evf" / "predictions.npz",
             samples=np.zeros((4, 2, 3, 8, 8, 1), np.uint8))
    metrics = json.loads((w.tmp / "evf" / "metrics.json").read_text())
    metrics["predictions_file"] = str(w.tmp / "evf" / "predictions.npz")
    (w.tmp / "evf" / "metrics.json").write_text(json.dumps(metrics))


def _damage_digits(w: World) -> None:
    d = data_copy(w, "d")
    raw = bytearray((d / "digits.npz").read_bytes())
    raw[100] ^= 0xFF  # same size, a byte of the compressed train digits (the first member)
    (d / "digits.npz").write_bytes(bytes(raw))


def _rewrite(w: World, dtype: Any, size: int = 16) -> None:
    d = data_copy(w, "d")
    old = np.load(d / "test.npy")
    rehash(d, "test.npy", np.zeros((*old.shape[:2], size, size, 1), dtype))


def _contradict(w: World) -> None:
    d = data_copy(w, "d")
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["counts"]["test"] = 7
    (d / "manifest.json").write_text(json.dumps(manifest))


def _truncated_copy(w: World, name: str) -> None:
    d = data_copy(w, name)
    with open(d / "test.npy", "r+b") as f:
        f.truncate(f.seek(0, 2) - 10)


def _locked_run(w: World) -> int:
    import shutil

    shutil.copytree(w.run, w.tmp / "r")
    return hold_lock(w, w.tmp / "r")


def _fingerprint(w: World, case: Case) -> dict[str, str]:
    """Every file of the shared inputs and of the case's folder (but the folder it may
    change), so that a new stray file or folder is seen too."""
    kept = {k: v for k, v in fingerprint(w.tmp).items()
            if not (case.changes and k.startswith(str(w.tmp / case.changes)))}
    return {**fingerprint(w.shared), **kept}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_or_fault_is_one_error_line(case: Case, world: World, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    with ExitStack() as stack:
        w = World(**{**world.__dict__, "tmp": tmp_path, "stack": stack})
        if case.prepare is not None:
            case.prepare(w, monkeypatch)
        before = _fingerprint(w, case)
        capsys.readouterr()
        faults = case.faults(w).install(monkeypatch) if case.faults else None
        code = main(case.argv(w))
        monkeypatch.undo()
        err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert code == 2, err
    assert len(errors) == 1 and "Traceback" not in err, err
    for needle in case.needles:
        assert needle.replace("{tmp}", str(tmp_path)) in errors[0], errors[0]
    for text in case.absent:
        assert text not in errors[0], errors[0]
    assert _fingerprint(w, case) == before, "a failed command changed its folders"
    if faults is not None:
        assert faults.hits > 0, "the fault was never reached"
    if case.check is not None:
        case.check(w, errors[0])


def test_compare_labels_name_distinct_folders(world: World, tmp_path: Path, capsys) -> None:
    """Labels that would share or leave the evaluations folder (``a/b`` and ``a_b``, ``..``)
    each get their own folder, and each label its own entry's metrics."""
    w = World(**{**world.__dict__, "tmp": tmp_path})
    zeros, white = tp_preds(w, "zeros.npz", 0), tp_preds(w, "white.npz", 255)
    for labels in (["a/b", "a_b"], ["..", "."]):
        out = tmp_path / labels[0].replace("/", "-").replace(".", "dot")
        assert main([*cmp_argv(w, zeros, white, out=out.name), "--labels", *labels]) == 0
        summary = json.loads((out / "compare.json").read_text())
        folders = [Path(e["metrics"]).parent for e in summary["entries"]]
        assert [e["label"] for e in summary["entries"]] == labels
        assert len(set(folders)) == 2 and all(f.parent == out / "evaluations" for f in folders)
        for entry, source in zip(summary["entries"], (zeros, white), strict=True):
            metrics = json.loads(Path(entry["metrics"]).read_text())
            from hvrnn.io.files import sha256_file

            assert metrics["predictions_sha256"] == sha256_file(source)
        assert sorted(p.name for p in tmp_path.rglob(".hvrnn.lock")) == []
    capsys.readouterr()


def test_the_table_holds_at_least_sixty_cases() -> None:
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)


# ---- a few as real processes ------------------------------------------------------------------


@pytest.mark.parametrize("argv, needle", [
    (lambda w: sample_argv(w, "--device", "tpu9"), "tpu9"),
    (lambda w: ["train", str(w.tmp / "bad.yaml")], "not UTF-8"),
    (lambda w: data_argv(w, "--mnist", str(w.tmp / "bad.yaml")), "bad.yaml"),
], ids=["device", "config-not-utf8", "mnist-not-an-archive"])
def test_in_a_real_process(argv: Callable, needle: str, world: World, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_bytes(b"\xff\xfe\x00")
    w = World(**{**world.__dict__, "tmp": tmp_path})
    before = fingerprint(world.shared, tmp_path)
    env = child_env()
    done = subprocess.run([sys.executable, "-m", "hvrnn.cli", *argv(w)], capture_output=True,
                          text=True, env=env, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert len([ln for ln in lines if ln.startswith("error: ")]) == 1 and needle in lines[-1]
    assert fingerprint(world.shared, tmp_path) == before


def _env() -> dict[str, str]:
    return child_env()


def _default_sigint() -> None:
    """In the child: SIGINT as in a terminal. A suite started in the background (``make test
    &``) inherits SIGINT ignored, and Python then leaves it ignored."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


# A command whose writer (or download) stops once it has begun, until a signal comes.
_STALLED = """
import os, sys, time
import hvrnn.io.npy as npy
from hvrnn.evaluation.protocols import PROTOCOLS, Protocol
name = os.environ["TEST_PROTOCOL"]
PROTOCOLS[name] = Protocol(name, "smmnist", 16, 1, 2, 3, 2, max_sequences=4,
                           data_root=os.environ["TEST_DATA"])
import hvrnn.weights as weights
real = npy.NpyWriter.write
def stalled(self, block):
    real(self, block)
    print("begun", flush=True)
    time.sleep(120)
def download(url, part, *args, **kwargs):
    part.write_bytes(b"partial")
    print("begun", flush=True)
    time.sleep(120)
npy.NpyWriter.write = stalled
weights._download = download
from hvrnn.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("signum", [2, 15], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command", ["evaluate", "weights-fetch"])
def test_a_signal_stops_a_command_with_nothing_left(command: str, signum: int, world: World,
                                                    tmp_path: Path) -> None:
    """SIGINT and SIGTERM alike, mid-write: exit 130, one line, no traceback; an evaluation
    leaves no temporary file, no lock and no folder (a download keeps its ``.part`` to resume,
    docs/reliability.md)."""
    import signal

    w = World(**{**world.__dict__, "tmp": tmp_path})
    argv = eval_ckpt_argv(w) if command == "evaluate" else ["weights", "fetch", "alexnet"]
    env = {**_env(), "HVRNN_CACHE": str(tmp_path / "cache"), "TEST_DATA": str(world.data),
           "TEST_PROTOCOL": TEST_PROTOCOL}
    before = fingerprint(world.shared, tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", _STALLED, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_default_sigint)
    try:
        while (line := proc.stdout.readline()) and line.strip() != "begun":
            pass
        assert line.strip() == "begun", proc.stderr.read()
        proc.send_signal(signal.Signals(signum))
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert [ln for ln in lines if ln.startswith("error: ")] == [lines[-1]], err
    if command == "evaluate":
        assert fingerprint(world.shared, tmp_path) == before
    else:
        left = [p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()]
        assert all(name.endswith(".part") for name in left), left


@pytest.mark.parametrize("signum", [2, 15], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_process_group_saves_a_run_with_loader_workers(
        signum: int, world: World, tmp_path: Path) -> None:
    """``timeout 40 hvrnn train ... data.num_workers=2`` and Ctrl-C in a terminal signal every
    process of the group, the data-loader workers too: the run still saves a checkpoint of
    its last step and records ``interrupted``."""
    import signal
    import time

    w = World(**{**world.__dict__, "tmp": tmp_path})
    argv = train_argv(w, "train.max_steps=100000", "data.num_workers=2", "train.log_every=1",
                      "train.checkpoint_every=100000", "train.val_every=0",
                      "train.image_every=0")
    proc = subprocess.Popen([sys.executable, "-m", "hvrnn.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(),
                            start_new_session=True, preexec_fn=_default_sigint)
    log = tmp_path / "run" / "metrics.jsonl"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if log.is_file() and '"kind": "train"' in log.read_text():
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1]
        os.killpg(proc.pid, signal.Signals(signum))
        _, err = proc.communicate(timeout=240)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == 130 and "Traceback" not in err, err
    end = json.loads(log.read_text().splitlines()[-1])
    assert end["kind"] == "end" and end["status"] == "interrupted", end
    saved = ck.read_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert saved["step"] == end["step"] >= 1


def test_a_closed_stdout_stops_the_command_quietly() -> None:
    """``hvrnn evaluate --list-protocols | head -1``: the reader is gone before the command
    writes; it stops with the SIGPIPE status and no traceback."""
    env = child_env()
    proc = subprocess.Popen([sys.executable, "-m", "hvrnn.cli", "evaluate", "--list-protocols"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # long before the interpreter has started and printed
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141 and b"Traceback" not in err, err.decode()


# ---- what the command line accepts -------------------------------------------------------------


def test_overrides_are_accepted_after_options(tmp_path: Path, capsys, monkeypatch) -> None:
    import hvrnn.training as training

    got = []
    monkeypatch.setattr(training, "train", lambda cfg, *a, **k: got.append(cfg) or _Stop())
    with pytest.raises(_Stop):
        main(["train", "tiny", "--run-dir", str(tmp_path / "x"), "train.max_steps=5",
              "model.n_z=3"])
    assert got[0].train.max_steps == 5 and got[0].model.n_z == 3
    assert main(["info", "tiny", "--json", "model.n_z=4"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"resolution": 1, "channels": 4} in info["latent_levels"]


class _Stop(BaseException):
    def __init__(self) -> None:
        super().__init__()
        raise self


def test_evaluations_of_other_checkpoints_or_options_get_their_own_folders(
        world: World, tmp_path: Path, capsys) -> None:
    import shutil

    run = Path(shutil.copytree(world.run, tmp_path / "run"))
    argv = ["--protocol", TEST_PROTOCOL, "--no-lpips", "--no-fvd"]
    folders = []
    for extra in ([str(run / "checkpoints" / "step_00000001.pt")], [str(run)],
                  [str(run), "--n-samples", "3"], [str(run), "--max-sequences", "2"],
                  [str(run), "--temperature", "0.5"]):
        assert main(["evaluate", *extra, *argv]) == 0
        out = capsys.readouterr().out
        folders.append(Path(out.strip().splitlines()[-1].removeprefix("results: ")).parent)
    assert len(set(folders)) == 5, folders
    # The checkpoint config's eval section asks for its own number of sequences (-s<S>).
    base = folders[0].name
    assert base.startswith(TEST_PROTOCOL) and folders[1].name == base
    assert [f.parent for f in folders[:2]] == [run / "eval" / "step_00000001",
                                               run / "eval" / "step_00000002"]
    assert [f.name for f in folders[2:]] == [base.replace(TEST_PROTOCOL, f"{TEST_PROTOCOL}-n3"),
                                             f"{TEST_PROTOCOL}-s2", f"{base}-t0.5"]
    # The same evaluation again finds its folder taken.
    assert main(["evaluate", str(run), *argv]) == 2
    assert "already exists" in capsys.readouterr().err


def test_a_file_system_error_without_a_path_is_a_bug() -> None:
    """A missing or unreadable file is the user's only when the error names it; a full or
    read-only disk is theirs in any case."""
    import errno

    from hvrnn.cli.boundary import EXIT_USER_ERROR, user_error_line

    assert user_error_line(OSError(errno.ENOENT, "No such file or directory")) is None
    assert user_error_line(OSError(errno.EIO, "Input/output error")) is None
    code, line = user_error_line(OSError(errno.ENOENT, "No such file or directory", "a/b.npz"))
    assert code == EXIT_USER_ERROR and line == "cannot access 'a/b.npz': No such file or directory"
    code, line = user_error_line(OSError(errno.ENOSPC, "No space left on device"))
    assert code == EXIT_USER_ERROR and line.startswith("cannot write: No space left on device")


def test_resume_keeps_the_runs_own_settings_and_says_so(world: World, tmp_path: Path,
                                                        capsys) -> None:
    """A run started with ``train.max_steps=3`` resumed with the bare preset continues to 3
    steps (not the preset's), says so, and an override on the command line wins."""
    w = World(**{**world.__dict__, "tmp": tmp_path})
    overrides = [o for o in _overrides(w) if not o.startswith("train.max_steps")]
    argv = ["train", "tiny", *overrides, "--run-dir", str(tmp_path / "run")]
    assert main([*argv, "train.max_steps=2"]) == 0
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 0  # no max_steps given: the run's 2, nothing to do
    err = capsys.readouterr().err
    assert "continuing from step 2" in err and "train.max_steps=2," in err, err
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text()
           .splitlines()]
    assert max(r["step"] for r in log) == 2
    assert main([*argv, "--resume", "train.max_steps=3"]) == 0
    err = capsys.readouterr().err
    assert "continuing from step 2" in err and "train.max_steps=3" in err, err
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text()
           .splitlines()]
    assert max(r["step"] for r in log) == 3
    # CONFIG that differs from the run on a model key is still refused.
    assert main([*argv, "--resume", "model.n_z=5"]) == 2
    assert "model.n_z" in capsys.readouterr().err


def test_the_activation_estimate_extrapolates_exactly() -> None:
    """The estimate from one and two predicted frames of one clip equals the bytes saved by a
    whole batch (meta device, tiny model: 3 clips of 2 + 4 frames)."""
    from hvrnn.config import load_config
    from hvrnn.memory import _saved_bytes, training_activations
    from hvrnn.model import build_model

    cfg = load_config("tiny", ["train.batch_size=3", "data.n_pred=4", "data.image_size=16"])
    with torch.device("meta"):
        model = build_model(cfg.model)
    model.train()
    whole = _saved_bytes(model, cfg, 3, 4)
    assert whole > 0 and training_activations(cfg, torch.device("cpu")) == whole


def test_long_commands_log_progress_lines_off_a_terminal(world: World, tmp_path: Path,
                                                         monkeypatch, capsys) -> None:
    """With stderr not a terminal (captured here), training and evaluation print progress
    lines instead of staying silent: every HVRNN_PROGRESS_SECONDS and one at the end."""
    monkeypatch.setenv("HVRNN_PROGRESS_SECONDS", "0")
    w = World(**{**world.__dict__, "tmp": tmp_path})
    assert main(train_argv(w)) == 0
    err = capsys.readouterr().err
    steps = [ln for ln in err.splitlines() if ln.startswith("train:")]
    assert len(steps) >= 2 and "2/2" in steps[-1] and "\r" not in err, err
    assert main(eval_ckpt_argv(w, ckpt=tmp_path / "run")) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "seq" in ln and "%|" in ln]
    assert len(lines) >= 2 and "100%" in lines[-1] and lines[-1] != lines[-2], err
