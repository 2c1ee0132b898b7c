"""``hvrnn compare`` on three tiny runs trained on SM-MNIST 32x32 (one per kind: the
hierarchical VRNN, PredNet, SAVP), each sampled and scored by ``hvrnn evaluate`` with no
special case; the table, curves and figures; refusals of mixed protocols and bad input."""

from __future__ import annotations

import csv
import json
import shutil

import imageio.v3 as iio
import numpy as np
import pytest
from conftest import fake_digits

from hvrnn.cli import main
from hvrnn.evaluation.compare_outputs import figure_steps

PROTOCOL = "smmnist32-c2-p10-n10"
KINDS = {"hvrnn": "tiny", "prednet": "tiny_prednet", "savp": "tiny_savp"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """SM-MNIST 32x32 from fake digits and a 2-step run of every kind; PredNet and SAVP are
    evaluated with ``hvrnn evaluate``, the VRNN is left for ``hvrnn compare`` to evaluate."""
    from hvrnn.data.smmnist import prepare_smmnist

    root = tmp_path_factory.mktemp("compare")
    mnist = root / "mnist.npz"
    np.savez(mnist, train=fake_digits(40, 0), test=fake_digits(40, 1))
    data = root / "smmnist32"
    prepare_smmnist(data, num_sequences=6, seq_len=12, image_size=32, mnist_path=mnist)
    out = {"data": data}
    for kind, preset in KINDS.items():
        run = root / kind
        code = main(["train", preset, f"data.root={data}", "data.train_length=8",
                     "train.batch_size=4", "train.max_steps=2", "train.checkpoint_every=2",
                     "train.log_every=1", "train.val_every=0", "train.image_every=0",
                     "eval.batch_size=4", "--run-dir", str(run)])
        assert code == 0
        out[kind] = run
        if kind != "hvrnn":
            assert main(["evaluate", str(run), "--protocol", PROTOCOL, "--max-sequences", "4",
                         "--data-root", str(data), "--device", "cpu"]) == 0
    return out


def _evaluation(run):
    """The folder where ``hvrnn evaluate RUN`` wrote (eval/step_<N>/<protocol>-<options>)."""
    (found,) = sorted((run / "eval").glob(f"step_*/{PROTOCOL}*"))
    return found


def _metrics(folder):
    return json.loads((folder / "metrics.json").read_text())


def test_baselines_are_scored_by_hvrnn_evaluate(runs):
    prednet = _metrics(_evaluation(runs["prednet"]))
    savp = _metrics(_evaluation(runs["savp"]))
    # The deterministic model is scored with one sample: best = mean = worst.
    assert prednet["n_samples"] == prednet["protocol"]["n_samples"] == 1
    for m in ("psnr", "ssim"):
        sel = prednet["metrics"][m]
        assert sel["best"]["mean"] == sel["mean"]["mean"] == sel["worst"]["mean"]
        assert savp["metrics"][m]["best"]["mean"] >= savp["metrics"][m]["mean"]["mean"]
    assert savp["n_samples"] == 10 and savp["n_sequences"] == prednet["n_sequences"] == 4
    assert prednet["elbo"]["score_term"] == "prediction_error"
    assert savp["elbo"]["score_term"] == "nelbo"
    for res in (prednet, savp):
        assert res["sampling"]["frames_per_second"] > 0
        assert res["sampling"]["frames"] == res["n_sequences"] * res["n_samples"] * 10
    with np.load(_evaluation(runs["prednet"]) / "predictions.npz") as z:
        assert z["samples"].shape == (4, 1, 10, 32, 32, 1)


@pytest.mark.parametrize("kind,n", [("prednet", 1), ("savp", 3)])
def test_baselines_sample_from_the_command_line(runs, tmp_path, kind, n):
    out = tmp_path / "samples"
    assert main(["sample", str(runs[kind]), "--n-samples", "3", "--horizon", "4",
                 "--num-sequences", "2", "--out", str(out), "--device", "cpu"]) == 0
    with np.load(out / "samples.npz") as z:
        assert z["samples"].shape == (2, n, 4, 32, 32, 1)
    assert json.loads((out / "samples.json").read_text())["n_samples"] == n
    assert (out / "seq_001.png").is_file()


def test_compare_writes_table_curves_and_figures(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    entries = [str(runs[k]) for k in KINDS]
    assert main(["compare", *entries, "--protocol", PROTOCOL, "--out", str(out),
                 "--data-root", str(runs["data"]), "--sequences", "0", "2",
                 "--labels", "VRNN", "PredNet", "SAVP"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "compare.json").read_text())
    # PredNet and SAVP reuse their evaluations; the VRNN is evaluated into the output folder,
    # on as many sequences as the reused ones.
    where = {e["label"]: e["metrics"] for e in summary["entries"]}
    assert where["PredNet"] == str(_evaluation(runs["prednet"]) / "metrics.json")
    assert where["VRNN"] == str(out / "evaluations" / "VRNN" / "metrics.json")
    vrnn = _metrics(out / "evaluations" / "VRNN")
    assert vrnn["n_sequences"] == 4 and vrnn["n_samples"] == 10
    with open(out / "table.csv") as f:
        rows = {r["label"]: r for r in csv.DictReader(f)}
    assert list(rows) == ["VRNN", "PredNet", "SAVP", "copy_last (trivial)", "blank (trivial)",
                          "context_mean (trivial)"]
    first = json.loads(open(where["VRNN"]).read())["baselines"]
    for b in ("copy_last", "blank", "context_mean"):  # the trivial predictors, same sequences
        assert rows[f"{b} (trivial)"]["kind"] == "trivial"
        assert float(rows[f"{b} (trivial)"]["ssim_best_mean"]) == first[b]["ssim"]["best"]["mean"]
    for label, path in where.items():
        res = json.loads(open(path).read())
        for m in ("psnr", "ssim"):
            for s in ("best", "mean"):
                summ = res["metrics"][m][s]
                assert float(rows[label][f"{m}_{s}_mean"]) == summ["mean"]
                assert float(rows[label][f"{m}_{s}_ci95_lo"]) == summ["ci95"][0]
        assert float(rows[label]["frames_per_second"]) == res["sampling"]["frames_per_second"]
        assert rows[label]["fvd_mean"] == ""  # no I3D weights given
        per = res["elbo"]["per_clip_mean"]
        if "nelbo" not in per:  # PredNet: a prediction error, no ELBO
            assert rows[label]["nelbo"] == rows[label]["kl_per_level"] == ""
            continue
        assert float(rows[label]["nelbo"]) == per["nelbo"]
        kls = [float(v) for v in rows[label]["kl_per_level"].split(";") if v]
        if "kl/level_0" in per:  # else a kind that records only the total KL
            assert kls == [per[f"kl/level_{i}"] for i in range(len(kls))]
        assert sum(kls) == pytest.approx(per["kl"], rel=1e-5, abs=1e-6)
    assert rows["PredNet"]["n_samples"] == "1" and rows["SAVP"]["kind"] == "savp"
    table = (out / "table.md").read_text()
    assert table in printed and table.count("\n| ") == 7  # header, three models, three trivial
    assert f"{float(rows['SAVP']['ssim_best_mean']):.4f} ±" in table
    curves = iio.imread(out / "curves.png")
    assert curves.ndim == 3 and curves.shape[1] > 800  # one panel per metric
    assert summary["figure_steps"] == list(range(3, 13))  # 10 predicted frames: every one
    figs = [iio.imread(out / "figures" / f"seq_{i:04d}.png") for i in (0, 2)]
    for fig in figs:
        assert fig.shape[0] > 4 * 40  # ground truth and three model rows
    # Both sequences one under another: the first figure's pixels are the top of the stack.
    stacked = iio.imread(out / "figures" / "sequences.png")[..., :3].astype(int)
    assert stacked.shape[0] == figs[0].shape[0] + figs[1].shape[0]
    top = figs[0][..., :3].astype(int)
    assert np.abs(stacked[:top.shape[0], :top.shape[1]] - top).max() <= 1
    # An occupied output folder needs --force.
    assert main(["compare", *entries, "--protocol", PROTOCOL, "--out", str(out),
                 "--data-root", str(runs["data"])]) == 2
    assert "already exists" in capsys.readouterr().err


def test_predictions_files_and_evaluation_folders_are_entries(runs, tmp_path):
    pred = _evaluation(runs["savp"]) / "predictions.npz"
    out = tmp_path / "cmp2"
    assert main(["compare", str(pred), str(_evaluation(runs["prednet"])),
                 "--protocol", PROTOCOL, "--out", str(out), "--data-root", str(runs["data"]),
                 "--show", "random", "--labels", "savp", "prednet"]) == 0
    summary = json.loads((out / "compare.json").read_text())
    assert [e["kind"] for e in summary["entries"]] == ["predictions", "evaluation"]
    assert not (out / "evaluations").exists()  # both evaluations were reused
    assert (out / "figures" / "seq_0000.png").is_file()


def _one_error_line(capsys, argv, needle):
    assert main(argv) == 2
    lines = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines


def test_mixed_protocols_and_bad_input_are_refused(runs, tmp_path, capsys):
    good = _evaluation(runs["prednet"])
    other = tmp_path / "other_settings"
    shutil.copytree(_evaluation(runs["savp"]), other)
    res = _metrics(other)
    res["protocol"]["max_sequences"] = 3
    (other / "metrics.json").write_text(json.dumps(res))
    base = ["--protocol", PROTOCOL, "--out", str(tmp_path / "x"), "--data-root",
            str(runs["data"])]
    _one_error_line(capsys, ["compare", str(good), str(other), *base], "different protocols")
    res["protocol_id"] = "bair64-c2-p28-n100"
    (other / "metrics.json").write_text(json.dumps(res))
    _one_error_line(capsys, ["compare", str(good), str(other), *base],
                    "scored under protocol bair64-c2-p28-n100")
    _one_error_line(capsys, ["compare", str(good), *base, "--labels", "a", "b"], "--labels")
    _one_error_line(capsys, ["compare", str(tmp_path / "nope"), *base], "does not exist")
    _one_error_line(capsys, ["compare", str(good), *base, "--sequences", "9"], "sequence 9")
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_figure_columns_follow_the_paper():
    assert figure_steps(2, 28) == [3, 4, 6, 8, 10, 12, 15, 18, 20, 25]  # BAIR 2 -> 28
    assert figure_steps(5, 20) == [6, 8, 10, 12, 15, 18, 20, 25]  # SM-MNIST 5 -> 20
    assert figure_steps(2, 10) == list(range(3, 13))  # short horizons: every frame
    assert figure_steps(10, 30) == [12, 15, 18, 20, 25]  # KTH 10 -> 30


def test_shipped_models_are_entries_and_starting_points(runs, tmp_path, monkeypatch, capsys):
    """``pretrained:<name>`` works wherever a checkpoint does: as a compare entry (evaluated
    into the output folder, labelled with its name) and as train.init_from."""
    from hvrnn import pretrained

    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path / "shipped")
    monkeypatch.chdir(tmp_path)
    pretrained.export_pretrained(runs["prednet"], tmp_path / "shipped" / "tinypred",
                                 {"summary": "test"})
    out = tmp_path / "cmp3"
    assert main(["compare", "pretrained:tinypred", str(runs["prednet"]), "--protocol",
                 PROTOCOL, "--out", str(out), "--data-root", str(runs["data"]),
                 "--labels", "shipped", "run"]) == 0
    with open(out / "table.csv") as f:
        rows = {r["label"]: r for r in csv.DictReader(f)}
    assert rows["shipped"]["ssim_best_mean"] == rows["run"]["ssim_best_mean"]  # same weights
    assert (out / "evaluations" / "shipped" / "metrics.json").is_file()
    assert main(["train", "tiny_prednet", f"data.root={runs['data']}", "data.train_length=4",
                 "train.batch_size=4", "train.max_steps=1", "train.val_every=0",
                 "train.image_every=0", "model.extrap_finetune=true",
                 "train.init_from=pretrained:tinypred", "--run-dir",
                 str(tmp_path / "tuned")]) == 0
    capsys.readouterr()


def test_a_failure_midway_leaves_no_partial_comparison(runs, tmp_path, capsys, monkeypatch):
    """The table, curves, figures and compare.json appear together or not at all."""
    import errno

    from hvrnn.evaluation import compare_outputs

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "cmp3" / "x.png"))

    monkeypatch.setattr(compare_outputs, "write_figures", full_disk)
    out = tmp_path / "cmp3"
    argv = ["compare", str(_evaluation(runs["savp"])), str(_evaluation(runs["prednet"])),
            "--protocol", PROTOCOL, "--out", str(out), "--data-root", str(runs["data"])]
    assert main(argv) == 2
    assert "No space left" in capsys.readouterr().err
    assert not out.exists()  # the table and curves written before the failure are gone
    monkeypatch.undo()
    assert main(argv) == 0  # nothing left in the way
    assert {"table.md", "table.csv", "curves.png", "compare.json"} <= {
        p.name for p in out.iterdir()}


def test_an_evaluation_folder_is_named_after_what_it_scored(tmp_path):
    import json

    from hvrnn.evaluation.compare import _evaluation_label

    cases = {"runs/a/checkpoints/step_00000040.pt": "a/step_00000040",
             "/x/hvrnn/pretrained/smmnist32/model.safetensors": "smmnist32",
             "pretrained:smmnist32": "smmnist32"}
    for i, (ckpt, label) in enumerate(cases.items()):
        folder = tmp_path / f"e{i}" / "smmnist32-c2-p10-n10"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"checkpoint": ckpt}))
        assert _evaluation_label(folder) == label
    folder = tmp_path / "p" / "smmnist32-c2-p10-n10"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"predictions_file": "/d/copy_last.npz"}))
    assert _evaluation_label(folder) == "copy_last"
