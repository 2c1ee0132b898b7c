"""Protocols defined in YAML, the Moving MNIST test file, other codebases' prediction arrays,
conventions in one pass, trivial predictors and the stroke IoU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hvrnn.errors import UserError
from hvrnn.evaluation import PROTOCOLS, evaluate_predictions_file, get_protocol
from hvrnn.evaluation.protocols import load_protocol_yaml, protocol_yaml
from hvrnn.metrics import conventions as cv
from hvrnn.metrics.reduce import select_samples

K, T, H, S = 2, 3, 16, 4


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    from hvrnn.cli import main

    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _yaml(tmp_path: Path, **fields) -> Path:
    base = {"dataset": "mnist_test_seq", "image_size": H, "channels": 1, "n_ctx": K,
            "n_pred": T, "n_samples": 1, "data_root": str(tmp_path / "mnist_test_seq.npy"),
            "convention": "openstl", "conventions": ["srvp", "mcvd"],
            "metrics": ["psnr", "ssim", "stroke_iou"], "fvd_rounds": 1}
    base.update(fields)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def _time_major(tmp_path: Path, seed: int = 0) -> np.ndarray:
    """A small mnist_test_seq.npy: uint8 (K + T + 1, S, H, H), time-major, digit-like strokes."""
    rng = np.random.default_rng(seed)
    arr = (rng.random((K + T + 1, S, H, H)) > 0.8).astype(np.uint8) * 255
    np.save(tmp_path / "mnist_test_seq.npy", arr)
    return arr


def test_listed_protocols_round_trip_through_yaml(tmp_path: Path) -> None:
    for p in PROTOCOLS.values():
        path = tmp_path / f"{p.id}.yaml"
        path.write_text(protocol_yaml(p))
        back = load_protocol_yaml(path)
        assert back.to_dict() | {"source": ""} == p.to_dict()


def test_yaml_mistakes_give_one_error_line_each_and_exit_2(tmp_path: Path, capsys) -> None:
    bad = _yaml(tmp_path, n_pred=0, convention="srvpp", colour="red", metrics=["ssim", "iou"])
    code, out, err = _cli(["evaluate", "--predictions", "x.npz", "--protocol", str(bad)], capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert all(line.startswith("error: ") for line in lines)
    assert len(lines) == 4, lines
    joined = "\n".join(lines)
    for needle in ("'colour'", "n_pred must be an integer >= 1", "'srvpp'", "'iou'"):
        assert needle in joined
    missing = tmp_path / "short.yaml"
    missing.write_text("dataset: smmnist\n")
    with pytest.raises(UserError) as exc:
        get_protocol(str(missing))
    assert str(exc.value).count("missing key") == 5


def test_mnist_test_seq_protocol_scores_openstl_arrays(tmp_path: Path, capsys) -> None:
    """A time-major mnist_test_seq.npy read as distributed; OpenSTL's saved/ arrays scored."""
    arr = _time_major(tmp_path)
    proto = _yaml(tmp_path)
    clips = arr[:K + T].transpose(1, 0, 2, 3)[:, :, None].astype(np.float32) / 255  # (S,K+T,1,H,W)
    saved = tmp_path / "saved"
    saved.mkdir()
    rng = np.random.default_rng(1)
    preds = np.clip(clips[:, K:] + rng.normal(0, 0.2, clips[:, K:].shape), 0, 1)
    np.save(saved / "preds.npy", preds.astype(np.float32))
    np.save(saved / "trues.npy", clips[:, K:])
    np.save(saved / "inputs.npy", clips[:, :K])
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    code, text, err = _cli(["evaluate", "--predictions", str(saved), "--protocol", str(proto),
                            "--out", str(out_a), "--no-lpips", "--no-fvd"], capsys)
    assert code == 0, err
    assert "ssim@openstl" in text and "copy_last" in text
    a = json.loads((out_a / "metrics.json").read_text())
    assert a["ground_truth"].startswith("inputs.npy")
    # the same predictions against the time-major test file give the same numbers
    code, _, err = _cli(["evaluate", "--predictions", str(saved / "preds.npy"), "--protocol",
                         str(proto), "--out", str(out_b), "--no-lpips", "--no-fvd",
                         "--data-root", str(tmp_path / "mnist_test_seq.npy")], capsys)
    assert code == 0, err
    b = json.loads((out_b / "metrics.json").read_text())
    for m in ("psnr", "ssim", "ssim@srvp", "psnr@mcvd", "stroke_iou"):
        assert a["metrics"][m]["best"]["mean"] == pytest.approx(b["metrics"][m]["best"]["mean"])
    assert a["metrics"]["ssim"]["convention"] == "openstl"
    assert a["metrics"]["ssim@mcvd"]["convention"] == "mcvd"
    # OpenSTL's convention: global PSNR of each frame, mean over sequences and frames
    u8 = np.round(preds * 255) / 255
    mse = ((u8 - np.round(clips[:, K:] * 255) / 255) ** 2).mean(axis=(2, 3, 4))
    assert a["metrics"]["psnr"]["best"]["mean"] == pytest.approx(
        (10 * np.log10(1 / mse)).mean(), abs=1e-9)
    # trivial predictors: copying the last frame, blank frames
    base = a["baselines"]
    assert set(base) == {"copy_last", "blank", "context_mean"}
    blank = base["blank"]["stroke_iou"]["best"]["mean"]
    assert blank == pytest.approx(0.0)  # every target frame has strokes
    assert a["protocol"]["source"] == str(proto)


def test_targets_npy_is_read(tmp_path: Path) -> None:
    """--targets T.npy (it used to end in a traceback): (S, K + T, H, W) grey clips."""
    arr = _time_major(tmp_path)
    proto = load_protocol_yaml(_yaml(tmp_path))
    clips = np.ascontiguousarray(arr[:K + T].transpose(1, 0, 2, 3))
    np.save(tmp_path / "targets.npy", clips)
    samples = clips[:, None, K:, :, :, None]
    np.savez(tmp_path / "pred.npz", samples=samples)
    res = evaluate_predictions_file(tmp_path / "pred.npz", proto, tmp_path / "out",
                                    targets=tmp_path / "targets.npy")
    assert res["metrics"]["ssim"]["best"]["mean"] == pytest.approx(1.0)
    assert res["metrics"]["stroke_iou"]["best"]["mean"] == pytest.approx(1.0)
    # the time-major file itself as targets
    res2 = evaluate_predictions_file(tmp_path / "pred.npz", proto, tmp_path / "out2",
                                     targets=tmp_path / "mnist_test_seq.npy")
    assert res2["metrics"]["ssim"] == res["metrics"]["ssim"]


def test_srvp_random_npz_folder(tmp_path: Path) -> None:
    arr = _time_major(tmp_path)
    proto = load_protocol_yaml(_yaml(tmp_path, n_samples=2))
    fut = np.ascontiguousarray(arr[K:K + T].transpose(1, 0, 2, 3))[..., None]  # (S, T, H, W, 1)
    folder = tmp_path / "srvp"
    folder.mkdir()
    np.savez_compressed(folder / "random_1.npz", samples=np.zeros_like(fut))
    np.savez_compressed(folder / "random_2.npz", samples=fut)
    res = evaluate_predictions_file(folder, proto, tmp_path / "out")
    assert res["n_samples"] == 2 and res["predictions_layout"] == "srvp"
    assert res["metrics"]["ssim"]["best"]["mean"] == pytest.approx(1.0)
    assert res["metrics"]["ssim"]["worst"]["mean"] == pytest.approx(
        res["baselines"]["blank"]["ssim"]["best"]["mean"])


def test_predrnn_folder_gets_one_line_how_to_convert(tmp_path: Path) -> None:
    (tmp_path / "res" / "1").mkdir(parents=True)
    (tmp_path / "res" / "1" / "gt1.png").write_bytes(b"")
    _time_major(tmp_path)
    with pytest.raises(UserError, match="PredRNN .*np.save"):
        evaluate_predictions_file(tmp_path / "res", load_protocol_yaml(_yaml(tmp_path)),
                                  tmp_path / "out")


def test_selection_modes_hand_made() -> None:
    v = torch.tensor([[[1.0, 5.0], [3.0, 2.0]]])  # (B=1, N=2, T=2)
    seq = select_samples(v, True, "sequence")
    assert seq["best"].tolist() == [[1.0, 5.0]]  # mean 3 > 2.5
    frame = select_samples(v, True, "frame")
    assert frame["best"].tolist() == [[3.0, 5.0]] and frame["worst"].tolist() == [[1.0, 2.0]]
    assert frame["value_best"].item() == pytest.approx(4.0)
    mse = torch.tensor([[[0.01, 0.0001], [0.001, 0.001]]])
    clip = select_samples(mse, True, "clip_mse")
    # sample 0: mean MSE 0.00505 (22.97 dB); sample 1: 0.001 (30 dB) is the best
    assert clip["best_index"].item() == 1
    assert clip["value_best"].item() == pytest.approx(30.0)
    assert clip["value_worst"].item() == pytest.approx(10 * np.log10(1 / 0.00505))
    assert clip["best"][0].tolist() == pytest.approx([30.0, 30.0])


def test_stroke_iou_and_blank_frames() -> None:
    g = torch.zeros(1, 1, 1, 4, 4, dtype=torch.uint8)
    g[..., 0, :2] = 255  # two stroke pixels
    p = torch.zeros_like(g)
    p[..., 0, 1:3] = 200  # one shared, one extra
    assert cv.stroke_iou(p, g).item() == pytest.approx(1 / 3)
    assert cv.stroke_iou(torch.zeros_like(g), g).item() == 0.0
    assert cv.stroke_iou(torch.zeros_like(g), torch.zeros_like(g)).item() == 1.0


def test_luma_matches_pillow() -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    ours = cv.luma_uint8(torch.from_numpy(rgb).permute(2, 0, 1))[0].numpy()
    assert np.array_equal(ours, np.asarray(Image.fromarray(rgb).convert("L")))


def test_convention_option_scores_several_in_one_pass(tmp_path: Path) -> None:
    arr = _time_major(tmp_path)
    proto = load_protocol_yaml(_yaml(tmp_path)).with_options(conventions=["slamp", "svg"])
    assert proto.convention == "srvp" and proto.conventions == ("svg",)
    clips = np.ascontiguousarray(arr[:K + T].transpose(1, 0, 2, 3))[..., None]
    noisy = np.clip(clips[:, None, K:].astype(int) + 40, 0, 255).astype(np.uint8)
    np.savez(tmp_path / "pred.npz", samples=noisy)
    res = evaluate_predictions_file(tmp_path / "pred.npz", proto, tmp_path / "out",
                                    targets=clips)
    x = torch.from_numpy(noisy[:, 0]).permute(0, 1, 4, 2, 3)
    y = torch.from_numpy(clips[:, K:]).permute(0, 1, 4, 2, 3)
    direct = cv.convention_scores(x, y, ["srvp", "svg"])
    assert res["metrics"]["ssim"]["best"]["mean"] == pytest.approx(
        float(direct["srvp"]["ssim"].mean()), abs=1e-12)
    assert res["metrics"]["ssim@svg"]["best"]["mean"] == pytest.approx(
        float(direct["svg"]["ssim"].mean()), abs=1e-12)
    assert set(res["conventions"]) == {"srvp", "svg"}


def test_builtin_mmnist_protocol_reads_mnist_test_seq(tmp_path: Path, capsys) -> None:
    """mmnist64-c10-p10-n1: the time-major file as distributed; OpenSTL's preds.npy alone."""
    rng = np.random.default_rng(3)
    arr = (rng.random((20, 3, 64, 64)) > 0.85).astype(np.uint8) * 255
    np.save(tmp_path / "mnist_test_seq.npy", arr)
    clips = arr.transpose(1, 0, 2, 3)[:, :, None].astype(np.float32) / 255  # (S, 20, 1, H, W)
    np.save(tmp_path / "preds.npy", clips[:, 10:])  # a perfect prediction, OpenSTL's layout
    code, out, err = _cli(["evaluate", "--predictions", str(tmp_path / "preds.npy"),
                           "--protocol", "mmnist64-c10-p10-n1", "--data-root", str(tmp_path),
                           "--out", str(tmp_path / "ev"), "--no-lpips", "--no-fvd"], capsys)
    assert code == 0, err
    res = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert res["n_sequences"] == 3 and res["metrics"]["ssim"]["convention"] == "openstl"
    assert res["metrics"]["ssim"]["best"]["mean"] == pytest.approx(1.0)
    assert res["metrics"]["stroke_iou"]["best"]["mean"] == pytest.approx(1.0)
    assert res["baselines"]["blank"]["stroke_iou"]["best"]["mean"] == pytest.approx(0.0)
    code, out, _ = _cli(["evaluate", "--list-conventions"], capsys)
    assert code == 0 and all(f"{name}\n" in out for name in cv.CONVENTIONS)


def test_yaml_protocol_on_a_prepared_videos_folder(tmp_path: Path) -> None:
    """A prepared `videos` dataset as a protocol's data root; the model's own context as its
    prediction equals the copy-last trivial predictor."""
    from hvrnn.data import prepare_videos

    rng = np.random.default_rng(4)
    np.save(tmp_path / "clips.npy", rng.integers(0, 256, (6, 7, 12, 12, 3), dtype=np.uint8))
    root = prepare_videos(tmp_path / "clips.npy", tmp_path / "prep", size=12, channels=3,
                          test_fraction=0.5, seed=1)
    proto = load_protocol_yaml(_yaml(tmp_path, dataset="videos", data_root=str(root),
                                     image_size=12, channels=3, n_ctx=2, n_pred=3,
                                     convention="svg", conventions=[],
                                     metrics=["psnr", "ssim"]))
    from hvrnn.evaluation.ground_truth import clips_uint8, ground_truth

    gt = ground_truth(proto, None)
    clips = clips_uint8(gt, 0, len(gt), proto)
    last = np.repeat(clips[:, 1:2], 3, axis=1)[:, None]  # copy the last context frame
    res = evaluate_predictions_file_arrays(last, proto, tmp_path / "ev")
    assert res["metrics"]["ssim"]["best"]["mean"] == pytest.approx(
        res["baselines"]["copy_last"]["ssim"]["best"]["mean"], abs=1e-12)
    assert res["metrics"]["psnr"]["convention"] == "svg"


def evaluate_predictions_file_arrays(samples: np.ndarray, proto, out: Path) -> dict:
    np.savez(out.with_suffix(".npz"), samples=samples)
    return evaluate_predictions_file(out.with_suffix(".npz"), proto, out)


def test_compare_scores_openstl_preds_under_two_conventions(tmp_path: Path, capsys) -> None:
    import csv

    arr = _time_major(tmp_path)
    proto = _yaml(tmp_path)
    clips = arr[:K + T].transpose(1, 0, 2, 3)[:, :, None].astype(np.float32) / 255
    np.save(tmp_path / "preds.npy", np.clip(clips[:, K:] + 0.1, 0, 1))
    code, out, err = _cli(["compare", str(tmp_path / "preds.npy"), "--protocol", str(proto),
                           "--convention", "mcvd,openstl", "--out", str(tmp_path / "cmp"),
                           "--no-lpips", "--no-fvd"], capsys)
    assert code == 0, err
    with open(tmp_path / "cmp" / "table.csv") as f:
        rows = {r["label"]: r for r in csv.DictReader(f)}
    assert list(rows) == ["preds", "copy_last (trivial)", "blank (trivial)",
                          "context_mean (trivial)"]
    ev = json.loads((tmp_path / "cmp" / "evaluations" / "preds" / "metrics.json").read_text())
    assert ev["metrics"]["ssim"]["convention"] == "mcvd"
    assert float(rows["preds"]["ssim@openstl_best_mean"]) == \
        ev["metrics"]["ssim@openstl"]["best"]["mean"]
    assert "under the mcvd metric convention" in (tmp_path / "cmp" / "table.md").read_text()


def test_a_protocol_file_keeps_its_n_and_sequences_over_the_checkpoint_eval_section(
        tmp_path: Path, tiny_config, smmnist16_root) -> None:
    """With the checkpoint's eval section as defaults (hvrnn evaluate), a protocol file's
    n_samples and max_sequences hold; a registered protocol takes the eval section's."""
    import dataclasses

    import torch

    from hvrnn.checkpoint import make_checkpoint, save_checkpoint
    from hvrnn.evaluation.from_checkpoint import evaluate_checkpoint
    from hvrnn.evaluation.protocols import Protocol
    from hvrnn.model import build_model

    cfg = dataclasses.replace(
        tiny_config, data=dataclasses.replace(tiny_config.data, root=smmnist16_root),
        eval=dataclasses.replace(tiny_config.eval, n_samples=3, max_sequences=4))
    torch.manual_seed(0)
    path = save_checkpoint(make_checkpoint(model=build_model(cfg.model), optimizer=None, step=0,
                                           cfg=cfg), tmp_path / "run")
    fields = dict(dataset="smmnist", image_size=16, channels=1, n_ctx=2, n_pred=4,
                  n_samples=2, max_sequences=2, data_root=smmnist16_root, convention="skimage",
                  conventions=[], metrics=["psnr", "ssim"])
    from_file = evaluate_checkpoint(path, str(_yaml(tmp_path, **fields)), tmp_path / "f",
                                    save_predictions=False, config_defaults=True)
    assert (from_file["n_samples"], from_file["n_sequences"]) == (2, 2)
    fields.pop("conventions"), fields.pop("metrics")
    registered = Protocol("smmnist16-reg", **{k: v for k, v in fields.items()
                                               if k not in ("convention",)})
    res = evaluate_checkpoint(path, registered, tmp_path / "r", save_predictions=False,
                              config_defaults=True)
    assert (res["n_samples"], res["n_sequences"]) == (3, 4)
