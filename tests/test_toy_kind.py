"""A model kind added the way docs/architecture.md describes, in two files: one module
(``tests/toy_kind.py``: config class, network, objective, registration) and one preset
(``tests/fixtures/toy.yaml``). It trains, samples and is evaluated through the public API, and
the contract suite of tests/test_model_contract.py covers it as it covers the built-in kinds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import toy_kind
from conftest import FakeVideos
from helpers import child_env

import hvrnn
from hvrnn.checkpoint import checkpoint_config
from hvrnn.errors import CheckpointError
from hvrnn.evaluate import evaluate_checkpoint
from hvrnn.evaluation.protocols import Protocol
from hvrnn.model import MODEL_PRESETS, MODEL_REGISTRY
from hvrnn.training import read_metrics, train

TESTS = Path(__file__).resolve().parent


def run_python(args: list[str], cwd: Path, path: list[Path]) -> subprocess.CompletedProcess:
    """A fresh interpreter (nothing registered yet) with ``path`` on PYTHONPATH."""
    return subprocess.run([sys.executable, *args], cwd=cwd, env=child_env(*path),
                          capture_output=True, text=True, timeout=300)


def test_the_kind_is_registered_from_its_module():
    assert MODEL_REGISTRY["toy"] is toy_kind.ToyModel
    # registered as "fixtures/toy.yaml": a relative preset is read beside its module
    assert MODEL_PRESETS["toy"] == toy_kind.PRESET and Path(toy_kind.PRESET).is_file()
    cfg = hvrnn.load_config(toy_kind.PRESET)
    assert isinstance(cfg.model, toy_kind.ToyConfig) and cfg.model.latent_shapes == ((4, 1, 1),)
    assert isinstance(hvrnn.build_model(cfg.model), toy_kind.ToyModel)


def test_a_kind_from_one_module_trains_samples_and_is_evaluated(tmp_path, smmnist16_root):
    cfg = hvrnn.load_config(toy_kind.PRESET, [
        f"data.root={smmnist16_root}", "data.num_workers=0", "train.batch_size=4",
        "train.max_steps=1", "train.val_every=1", "train.val_batches=1", "train.image_every=0",
        "train.val_n_samples=2"])
    d = cfg.data
    result = train(cfg, tmp_path / "run", train_set=FakeVideos(8, d.seq_len, d.image_size),
                   val_set=FakeVideos(4, d.seq_len, d.image_size, offset=100))
    assert result.status == "finished" and result.step == 1
    (record,) = read_metrics(result.run_dir)
    assert record["nelbo"] > record["nll"] > 0 and record["grad_norm"] > 0
    torch.manual_seed(cfg.train.seed)
    initial = hvrnn.build_model(cfg.model)

    model, loaded = hvrnn.load_checkpoint(result.run_dir)
    assert isinstance(model, toy_kind.ToyModel) and loaded == cfg
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                      initial.state_dict().values(),
                                                      strict=True))  # the step changed it
    context = FakeVideos(2, d.n_ctx, d.image_size)[0][None].repeat(2, 1, 1, 1, 1)
    first, again = (hvrnn.sample(model, context, horizon=4, n_samples=3,
                                 generator=torch.Generator().manual_seed(0)) for _ in range(2))
    assert first.shape == (2, 3, 4, 1, 16, 16) and torch.equal(first, again)
    assert 0 <= first.min() and first.max() <= 1 and (first[:, 0] != first[:, 1]).any()

    protocol = Protocol("smmnist16-toy", "smmnist", 16, 1, 2, 4, 3, max_sequences=4,
                        data_root=smmnist16_root)
    scores = evaluate_checkpoint(result.run_dir, protocol, tmp_path / "eval", batch_size=2)
    assert scores["n_sequences"] == 4 and scores["n_samples"] == 3
    elbo = scores["elbo"]["per_clip_mean"]
    assert elbo["nelbo"] > elbo["nll"] > 0
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert written["n_sequences"] == 4


@pytest.mark.parametrize("how", ["module", "file"])
def test_the_command_imports_a_kind_of_ones_own(tmp_path, how):
    """``hvrnn --import MODULE``: the kind is known to every command; without it, the unknown
    kind is one error line that says how to make it known."""
    preset = str(TESTS / "fixtures" / "toy.yaml")
    cwd, module = ((TESTS, "toy_kind") if how == "module"
                   else (tmp_path, str(TESTS / "toy_kind.py")))
    done = run_python(["-m", "hvrnn.cli", "--import", module, "info", preset], cwd, [])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("toy (toy): 4x1x1 latents")
    listed = run_python(["-m", "hvrnn.cli", "--import", module, "info", "--presets"], cwd, [])
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[-1].split()[:3] == [preset, "toy", "16x16"]

    unknown = run_python(["-m", "hvrnn.cli", "info", preset], cwd, [])
    assert unknown.returncode == 2 and unknown.stdout == ""
    (line,) = unknown.stderr.splitlines()
    assert line.startswith("error: model.kind='toy' is invalid: expected one of ['hvrnn', ")
    assert "hvrnn --import MODULE" in line and "'hvrnn.model_kinds'" in line


@pytest.mark.parametrize(("module", "says"), [
    ("no_such_module", "no module named 'no_such_module'"),
    ("needs_missing", "it imports 'no_such_dependency', which is not installed"),
    ("absent.py", "absent.py: no such file")])
def test_a_module_that_cannot_be_imported_is_one_error_line(tmp_path, module, says):
    (tmp_path / "needs_missing.py").write_text("import no_such_dependency\n")
    done = run_python(["-m", "hvrnn.cli", "--import", module, "info", "tiny"], tmp_path, [])
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: --import {module}: ") and says in line


def test_an_installed_packages_entry_point_names_a_kinds_module(tmp_path):
    """A package declaring ``[hvrnn.model_kinds] ep_toy = epkind`` (its dist-info on the path,
    as pip installs it) makes ``model.kind: ep_toy`` loadable with no import of the user's."""
    (tmp_path / "epkind.py").write_text(
        "from dataclasses import dataclass\n"
        "import toy_kind\n"
        "from hvrnn.model import register_model\n\n"
        "@dataclass(frozen=True)\n"
        "class EPConfig(toy_kind.ToyConfig):\n"
        "    kind: str = 'ep_toy'\n\n"
        "@register_model('ep_toy', config=EPConfig)\n"
        "class EPModel(toy_kind.ToyModel):\n"
        "    pass\n")
    info = tmp_path / "epkind-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: epkind\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[hvrnn.model_kinds]\nep_toy = epkind\n")
    code = ("import sys, hvrnn, hvrnn.config\n"
            "assert 'epkind' not in sys.modules\n"
            "print('ep_toy' in hvrnn.config.model_kinds())\n"
            "cfg = hvrnn.load_config('toy.yaml', ['model.kind=ep_toy'])\n"
            "print(type(cfg.model).__module__, type(hvrnn.build_model(cfg.model)).__name__)\n")
    done = run_python(["-c", code], TESTS / "fixtures", [tmp_path, TESTS])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["True", "epkind EPModel"]


def test_a_checkpoint_of_an_unregistered_kind_says_so():
    saved = hvrnn.load_config(toy_kind.PRESET).to_dict()
    saved["model"]["kind"] = "not_imported"
    with pytest.raises(CheckpointError, match=r"^'run/last.pt' holds a model of kind "
                       r"'not_imported', which is not registered; .*hvrnn --import MODULE"):
        checkpoint_config({"config": saved}, "run/last.pt")
