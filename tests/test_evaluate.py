"""Protocol scoring: files written, values against closed forms and scikit-image, CLI refusals."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity
from torch import Tensor, nn

from hvrnn.cli.evaluate import add_parser as add_evaluate_parser
from hvrnn.errors import UserError
from hvrnn.evaluation.from_checkpoint import evaluate_checkpoint
from hvrnn.evaluation.predictions import evaluate_predictions, evaluate_predictions_file
from hvrnn.evaluation.protocols import PROTOCOLS, Protocol, get_protocol
from hvrnn.io.files import sha256_file

# 3 sequences, 2 context + 10 predicted frames of 32x32 grey, as the demo protocol.
PROTO = get_protocol("smmnist32-c2-p10-n10")
S, N = 3, 2


def _clips(seed: int = 0) -> np.ndarray:
    """(S, K + T, H, W, 1) uint8 with values in [30, 200] so that +-20 never clips."""
    rng = np.random.default_rng(seed)
    t = PROTO.n_ctx + PROTO.n_pred
    return rng.integers(30, 201, size=(S, t, 32, 32, 1), dtype=np.uint8)


def _offset_samples(clips: np.ndarray, offsets: tuple[int, ...]) -> np.ndarray:
    """Sample i = future frames + offsets[i] grey levels: (S, len(offsets), T, H, W, 1)."""
    fut = clips[:, PROTO.n_ctx:].astype(np.int16)
    return np.stack([fut + o for o in offsets], axis=1).astype(np.uint8)


def _psnr_offset(levels: int) -> float:
    return float(-20 * np.log10(levels / 255))


def test_protocols_registered() -> None:
    for pid in ("smmnist64-c5-p20-n100", "bair64-c2-p28-n100", "cityscapes128-c2-p28-n100",
                "kth64-c10-p30-n100", "smmnist32-c2-p10-n10"):
        p = PROTOCOLS[pid]
        assert p.id == pid and p.fvd_frames == "context+pred"
        assert pid.startswith(f"{p.dataset}{p.image_size}-c{p.n_ctx}-p{p.n_pred}-n{p.n_samples}")
    tiny = PROTOCOLS["smmnist32-c2-p10-n10"]
    assert (tiny.image_size, tiny.channels, tiny.max_sequences) == (32, 1, 64)
    with pytest.raises(UserError, match="unknown protocol"):
        get_protocol("bair-128")
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiny.n_samples = 5  # type: ignore[misc]


def test_predictions_file_scores_closed_form(tmp_path: Path) -> None:
    clips = _clips()
    samples = _offset_samples(clips, (10, 20))  # sample 0 is better on every frame
    npz = tmp_path / "pred.npz"
    np.savez_compressed(npz, samples=samples, context=clips[:, :PROTO.n_ctx])
    out = tmp_path / "eval"
    res = evaluate_predictions_file(npz, PROTO.id, out, targets=clips)

    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(res.record)) == res
    assert res.folder == out and res.metrics_file == out / "metrics.json"
    assert res.wall_seconds == on_disk["wall_seconds"] and res.sampling_seconds is None
    assert on_disk["protocol_id"] == PROTO.id and on_disk["protocol"]["n_pred"] == 10
    assert on_disk["n_sequences"] == S and on_disk["n_samples"] == N
    assert on_disk["predictions_sha256"] == sha256_file(npz)
    assert on_disk["hvrnn_version"]
    m = on_disk["metrics"]
    psnr = m["psnr"]
    assert psnr["best"]["mean"] == pytest.approx(_psnr_offset(10), abs=1e-9)
    assert psnr["worst"]["mean"] == pytest.approx(_psnr_offset(20), abs=1e-9)
    assert psnr["mean"]["mean"] == pytest.approx((_psnr_offset(10) + _psnr_offset(20)) / 2)
    assert psnr["best"]["std"] == pytest.approx(0, abs=1e-9)
    assert psnr["best"]["ci95"] == pytest.approx([_psnr_offset(10)] * 2, abs=1e-9)
    assert psnr["best"]["per_frame_mean"] == pytest.approx([_psnr_offset(10)] * 10)
    # SSIM of the selected sample against scikit-image, computed here frame by frame.
    ref = np.mean([[structural_similarity(samples[i, 0, t, ..., 0], clips[i, 2 + t, ..., 0],
                                          data_range=255) for t in range(10)] for i in range(S)])
    assert m["ssim"]["best"]["mean"] == pytest.approx(ref, abs=1e-6)
    assert m["ssim_legacy"]["best"]["mean"] > m["ssim"]["best"]["mean"]
    assert m["lpips"] == "skipped: no weights" and m["fvd"] == "skipped: no weights"
    impl = on_disk["implementations"]
    assert impl["ssim"]["convention"] == "skimage" and impl["ssim"]["parameters"]["win_size"] == 7
    assert impl["psnr"]["psnr"] == "global"
    assert impl["lpips"] == "skipped: no weights"

    with open(out / "per_frame.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["t"]) for r in rows] == list(range(3, 13))
    assert float(rows[4]["psnr_best"]) == pytest.approx(_psnr_offset(10))
    assert float(rows[4]["psnr_worst"]) == pytest.approx(_psnr_offset(20))
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    with pytest.raises(UserError, match="already exists"):
        evaluate_predictions_file(npz, PROTO.id, out, targets=clips)
    again = evaluate_predictions_file(npz, PROTO.id, out, targets=clips, force=True)
    assert again["metrics"]["psnr"] == res["metrics"]["psnr"]


def test_predictions_file_shape_and_order_errors(tmp_path: Path) -> None:
    clips = _clips()
    samples = _offset_samples(clips, (10,))
    bad_t = tmp_path / "bad_t.npz"
    np.savez(bad_t, samples=samples[:, :, :9])
    with pytest.raises(UserError, match=r"'samples' has shape .*expected \(3, \*, 10, 32, 32, 1\)"):
        evaluate_predictions_file(bad_t, PROTO.id, tmp_path / "o1", targets=clips)
    as_float = tmp_path / "float.npz"
    np.savez(as_float, samples=samples.astype(np.float32))
    with pytest.raises(UserError, match="dtype float32"):
        evaluate_predictions_file(as_float, PROTO.id, tmp_path / "o2", targets=clips)
    no_key = tmp_path / "nokey.npz"
    np.savez(no_key, frames=samples)
    with pytest.raises(UserError, match="no 'samples' array"):
        evaluate_predictions_file(no_key, PROTO.id, tmp_path / "o3", targets=clips)
    swapped = tmp_path / "swapped.npz"
    np.savez(swapped, samples=samples, context=clips[[1, 0, 2], :PROTO.n_ctx])
    with pytest.raises(UserError, match="sequence 0 differs"):
        evaluate_predictions_file(swapped, PROTO.id, tmp_path / "o4", targets=clips)
    with pytest.raises(UserError, match="does not exist"):
        evaluate_predictions_file(tmp_path / "none.npz", PROTO.id, tmp_path / "o5",
                                  targets=clips)


def test_one_sample_and_max_sequences(tmp_path: Path) -> None:
    """A deterministic baseline has N = 1; --max-sequences scores a prefix."""
    clips = _clips(1)
    samples = _offset_samples(clips, (5,))[:2]
    npz = tmp_path / "p.npz"
    np.savez(npz, samples=samples)
    res = evaluate_predictions_file(npz, PROTO.id, tmp_path / "o", targets=clips,
                                    max_sequences=2)
    assert res["n_sequences"] == 2 and res["protocol"]["max_sequences"] == 2
    assert "note" in res  # 1 sample scored, the protocol asks for 10
    for sel in ("best", "mean", "worst"):
        assert res["metrics"]["psnr"][sel]["mean"] == pytest.approx(_psnr_offset(5))


# --------------------------------------------------------------------------------------------
# LPIPS and FVD through the protocol
# --------------------------------------------------------------------------------------------


class _TinyDetector(nn.Module):
    """TorchScript stand-in for i3d_torchscript.pt: (B, 3, T, H, W) -> (B, 8)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 8)

    def forward(self, x: Tensor, rescale: bool = True, resize: bool = True,
                return_features: bool = False) -> Tensor:
        if rescale or resize or not return_features:
            raise RuntimeError("wrong call convention")
        stats = torch.stack([x.mean(dim=(1, 2, 3, 4)), x.std(dim=(1, 2, 3, 4)),
                             x[:, :, 0].mean(dim=(1, 2, 3)), x[:, :, -1].mean(dim=(1, 2, 3))], 1)
        return self.proj(stats)


def _write_alex_weights(folder: Path) -> None:
    """Random AlexNet features and v0.1 heads under the standard file names and keys."""
    gen = torch.Generator().manual_seed(0)
    backbone = {}
    for idx, c_out, c_in, k in ((0, 64, 3, 11), (3, 192, 64, 5), (6, 384, 192, 3),
                                (8, 256, 384, 3), (10, 256, 256, 3)):
        backbone[f"features.{idx}.weight"] = torch.randn(c_out, c_in, k, k, generator=gen) * (
            2 / (c_in * k * k)) ** 0.5
        backbone[f"features.{idx}.bias"] = torch.zeros(c_out)
    heads = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=gen)
             for i, c in enumerate((64, 192, 384, 256, 256))}
    folder.mkdir()
    torch.save(backbone, folder / "alexnet-owt-7be5be79.pth")
    torch.save(heads, folder / "alex.pth")


def test_lpips_and_fvd_recorded(tmp_path: Path) -> None:
    wdir = tmp_path / "lpips"
    _write_alex_weights(wdir)
    i3d = tmp_path / "i3d_torchscript.pt"
    torch.manual_seed(0)
    torch.jit.script(_TinyDetector()).save(str(i3d))

    clips = _clips(2)
    samples = _offset_samples(clips, (10, -25, 0))
    proto = dataclasses.replace(PROTO, i3d_size=0, fvd_rounds=5)
    res = evaluate_predictions(samples, clips[:, 2:], clips[:, :2], proto, tmp_path / "o",
                               lpips_weights=wdir, i3d_weights=i3d)
    lp = res["metrics"]["lpips"]
    assert lp["best"]["mean"] == pytest.approx(0.0, abs=1e-9)  # sample 2 equals the target
    assert lp["worst"]["mean"] > lp["mean"]["mean"] > 0
    impl = res["implementations"]
    assert impl["lpips"]["weights_sha256"]["heads"] == sha256_file(wdir / "alex.pth")
    assert impl["fvd"]["weights_sha256"] == sha256_file(i3d)
    assert impl["fvd"]["frames"] == "context+pred" and impl["fvd"]["format"] == "torchscript"
    fvd = res["metrics"]["fvd"]
    assert fvd["rounds"] == 5 and len(fvd["values"]) == 5 and fvd["mean"] >= 0
    # Independent recomputation of round 0 from the same seeded pick.
    from hvrnn import metrics

    det = metrics.load_i3d(i3d)
    real = torch.from_numpy(clips).permute(0, 1, 4, 2, 3).float() / 255
    fut = torch.from_numpy(samples).permute(0, 1, 2, 5, 3, 4).float() / 255
    fake = torch.cat([real[:, None, :2].expand(-1, 3, -1, -1, -1, -1), fut], dim=2)
    pick = np.random.default_rng(proto.seed).integers(0, 3, size=S)
    f_real = metrics.i3d_features(real, det, size=None)
    f_fake = metrics.i3d_features(fake[np.arange(S), pick], det, size=None)
    assert fvd["values"][0] == pytest.approx(metrics.fvd_from_features(f_real, f_fake),
                                             rel=1e-6, abs=1e-8)


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


def test_evaluate_checkpoint_end_to_end(tmp_path: Path, tiny_config, smmnist16_root) -> None:
    from hvrnn.checkpoint import make_checkpoint, save_checkpoint
    from hvrnn.model import build_model

    cfg = dataclasses.replace(tiny_config, data=dataclasses.replace(tiny_config.data,
                                                                    root=smmnist16_root))
    torch.manual_seed(0)
    model = build_model(cfg.model)
    path = save_checkpoint(make_checkpoint(model=model, optimizer=None, step=0, cfg=cfg),
                           tmp_path / "run")
    proto = Protocol("smmnist16-test", "smmnist", 16, 1, 2, 4, 3, max_sequences=5,
                     data_root=smmnist16_root)
    out = tmp_path / "eval"
    res = evaluate_checkpoint(path, proto, out, batch_size=2)
    assert res["checkpoint_sha256"] == sha256_file(path)
    assert res["n_sequences"] == 5 and res["n_samples"] == 3
    # The result: the numbers as written, the timings, the folder.
    assert json.loads((out / "metrics.json").read_text()) == res.record
    assert res.folder == out and res["predictions_file"] == str(out / "predictions.npz")
    assert 0 < res.sampling_seconds <= res.wall_seconds + 0.01  # wall: rounded to 0.01 s
    assert res["sampling"]["frames"] == 5 * 3 * 4
    elbo = res["elbo"]["per_clip_mean"]
    assert elbo["nelbo"] == pytest.approx(elbo["nll"] + elbo["kl"], rel=1e-6)
    levels = [v for k, v in elbo.items() if k.startswith("kl/level_")]
    assert len(levels) == len(cfg.model.latent_resolutions)
    assert sum(levels) == pytest.approx(elbo["kl"], rel=1e-5)
    # The saved predictions rescore to exactly the same per-frame metrics.
    with np.load(out / "predictions.npz") as z:
        assert z["samples"].shape == (5, 3, 4, 16, 16, 1) and z["samples"].dtype == np.uint8
        assert z["context"].shape == (5, 2, 16, 16, 1)
    again = evaluate_predictions_file(out / "predictions.npz", proto, tmp_path / "re")
    for m in ("psnr", "ssim"):
        assert again["metrics"][m] == res["metrics"][m]
    # Same seed, same samples.
    res2 = evaluate_checkpoint(path, proto, tmp_path / "eval2", batch_size=2)
    assert res2["metrics"]["ssim"] == res["metrics"]["ssim"]
    with pytest.raises(UserError, match="needs 32"):
        evaluate_checkpoint(path, PROTO, tmp_path / "eval3")
    # Sampling stopped after the first block: nothing is left, not even the folder.
    from hvrnn.sampling import sample

    calls = []

    def stops(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return sample(*args, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        evaluate_checkpoint(path, proto, tmp_path / "eval4", batch_size=2, sampler=stops)
    assert len(calls) == 2 and not (tmp_path / "eval4").exists()


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hvrnn")
    add_evaluate_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["evaluate", *argv])


def test_cli_handler(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clips = _clips(3)
    samples = _offset_samples(clips, (10, 20))
    pred, targets = tmp_path / "pred.npz", tmp_path / "truth.npz"
    np.savez(pred, samples=samples)
    np.savez(targets, videos=clips)
    args = _parse(["--predictions", str(pred), "--protocol", PROTO.id, "--targets",
                   str(targets), "--out", str(tmp_path / "o"), "--device", "cpu"])
    assert args.func(args) == 0
    assert "psnr" in capsys.readouterr().out
    res = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert res["metrics"]["psnr"]["best"]["mean"] == pytest.approx(_psnr_offset(10))
    with pytest.raises(UserError, match="already exists"):
        args.func(args)
    with pytest.raises(UserError, match="either a CHECKPOINT"):
        a = _parse(["--protocol", PROTO.id])
        a.func(a)
    with pytest.raises(UserError, match="unknown protocol"):
        a = _parse(["--predictions", str(pred), "--protocol", "nope"])
        a.func(a)


def test_perfect_prediction_gives_strict_json(tmp_path: Path) -> None:
    """PSNR of an exact copy is +inf: metrics.json stays strict JSON (null + non_finite)."""
    clips = _clips(2)
    samples = _offset_samples(clips, (0, 3))  # sample 0 is the ground truth itself
    npz = tmp_path / "p.npz"
    np.savez(npz, samples=samples)
    evaluate_predictions_file(npz, PROTO.id, tmp_path / "o", targets=clips)
    text = (tmp_path / "o" / "metrics.json").read_text()

    def refuse(const: str):
        raise ValueError(f"non-standard JSON constant {const}")

    data = json.loads(text, parse_constant=refuse)
    assert data["metrics"]["psnr"]["best"]["mean"] is None
    assert any(p.startswith("metrics.psnr.best.mean=inf") for p in data["non_finite"])
    assert data["metrics"]["psnr"]["worst"]["mean"] == pytest.approx(_psnr_offset(3))
    assert data["metrics"]["ssim"]["best"]["mean"] == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------
# Edge cases of the summary and of FVD; cached weights; other predictions layouts
# --------------------------------------------------------------------------------------------


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    from hvrnn.cli import main

    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_summary_prints_inf_and_na_for_a_perfect_sample(tmp_path: Path, capsys) -> None:
    """Copy-last-frame predictions for the demo protocol, one sample equal to the truth."""
    p = PROTO
    rng = np.random.default_rng(7)
    clips = rng.integers(0, 256, (p.max_sequences, p.n_ctx + p.n_pred, 32, 32, 1), np.uint8)
    last = clips[:, p.n_ctx - 1:p.n_ctx]  # (S, 1, H, W, C)
    samples = np.repeat(last[:, None], p.n_samples, axis=1).repeat(p.n_pred, axis=2)
    samples[5, 3] = clips[5, p.n_ctx:]  # one sample of one sequence is the ground truth
    pred, truth = tmp_path / "copy_last.npz", tmp_path / "truth.npz"
    np.savez(pred, samples=samples)
    np.savez(truth, videos=clips)
    code, out, err = _cli(["evaluate", "--predictions", str(pred), "--protocol", p.id,
                           "--targets", str(truth), "--out", str(tmp_path / "o"),
                           "--device", "cpu"], capsys)
    assert code == 0, err
    psnr_line = next(line for line in out.splitlines() if line.strip().startswith("psnr"))
    assert "best inf +- n/a" in psnr_line
    res = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert res["metrics"]["psnr"]["best"]["mean"] is None
    # The other sequences' best is the copy of the last frame: a finite mean of N.
    assert res["metrics"]["psnr"]["mean"]["mean"] is None  # sequence 5 has an inf sample
    assert res["metrics"]["psnr"]["worst"]["mean"] == pytest.approx(
        float(np.mean([peak_psnr(samples[i, 0], clips[i, p.n_ctx:])
                       for i in range(p.max_sequences)])), rel=1e-12)
    assert "note: LPIPS skipped" in err and "hvrnn weights fetch alexnet lpips-alex" in err
    assert "hvrnn weights fetch i3d" in err


def peak_psnr(pred: np.ndarray, truth: np.ndarray) -> float:
    """Frame-averaged scikit-image PSNR of uint8 frames (T, H, W, C)."""
    from skimage.metrics import peak_signal_noise_ratio

    return float(np.mean([peak_signal_noise_ratio(truth[t], pred[t]) for t in range(len(pred))]))


def _i3d_file(tmp_path: Path) -> Path:
    i3d = tmp_path / "i3d_torchscript.pt"
    torch.manual_seed(0)
    torch.jit.script(_TinyDetector()).save(str(i3d))
    return i3d


def test_fvd_with_one_video_fails_before_sampling(tmp_path: Path, tiny_config,
                                                  smmnist16_root, capsys) -> None:
    from hvrnn.checkpoint import make_checkpoint, save_checkpoint
    from hvrnn.model import build_model

    i3d = _i3d_file(tmp_path)
    cfg = dataclasses.replace(tiny_config, data=dataclasses.replace(tiny_config.data,
                                                                    root=smmnist16_root))
    ckpt = save_checkpoint(make_checkpoint(model=build_model(cfg.model), optimizer=None, step=0,
                                           cfg=cfg), tmp_path / "run")
    proto = Protocol("smmnist16-c2-p9", "smmnist", 16, 1, 2, 9, 2, max_sequences=1,
                     data_root=smmnist16_root)

    def never(*args, **kwargs):
        raise AssertionError("sampling started")

    with pytest.raises(UserError, match=r"at least 2 test sequences .*, got 1"):
        evaluate_checkpoint(ckpt, proto, tmp_path / "e1", i3d_weights=i3d, sampler=never)
    short = dataclasses.replace(proto, n_pred=5, fvd_frames="pred", max_sequences=4)
    with pytest.raises(UserError, match="at least 9 frames; protocol smmnist16-c2-p9 gives 5"):
        evaluate_checkpoint(ckpt, short, tmp_path / "e2", i3d_weights=i3d, sampler=never)
    assert not (tmp_path / "e1" / "metrics.json").exists()
    # The command: one line, exit 2, before anything is scored.
    clips = _clips(4)
    pred, truth = tmp_path / "p.npz", tmp_path / "t.npz"
    np.savez(pred, samples=_offset_samples(clips, (5,))[:1])
    np.savez(truth, videos=clips)
    code, out, err = _cli(["evaluate", "--predictions", str(pred), "--protocol", PROTO.id,
                           "--targets", str(truth), "--max-sequences", "1", "--i3d-weights",
                           str(i3d), "--out", str(tmp_path / "o")], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: FVD needs at least 2")
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_fewer_videos_than_the_test_set_is_a_recorded_warning(tmp_path: Path) -> None:
    i3d = _i3d_file(tmp_path)
    clips = _clips(5)
    npz = tmp_path / "p.npz"
    np.savez(npz, samples=_offset_samples(clips, (5, -5))[:2])
    proto = dataclasses.replace(PROTO, i3d_size=0, fvd_rounds=3)
    res = evaluate_predictions_file(npz, proto, tmp_path / "o", targets=clips, max_sequences=2,
                                    i3d_weights=i3d)
    assert res["warnings"] and "from 2 videos" in res["warnings"][0] and "has 3" in res[
        "warnings"][0]
    assert res["protocol"]["fvd_resize"] == "tf1"
    assert res["implementations"]["fvd"]["resize"] == "tf1"
    np.savez(tmp_path / "all.npz", samples=_offset_samples(clips, (5, -5)))
    full = evaluate_predictions_file(tmp_path / "all.npz", proto, tmp_path / "o2",
                                     targets=clips, i3d_weights=i3d)
    assert "warnings" not in full


def test_fvd_resize_choice_changes_the_embedding_input(tmp_path: Path) -> None:
    i3d = _i3d_file(tmp_path)
    clips = _clips(6)
    samples = _offset_samples(clips, (5, -5))
    base = dataclasses.replace(PROTO, i3d_size=48, fvd_rounds=2)
    a = evaluate_predictions(samples, clips[:, 2:], clips[:, :2], base, tmp_path / "a",
                             i3d_weights=i3d)
    b = evaluate_predictions(samples, clips[:, 2:], clips[:, :2],
                             dataclasses.replace(base, fvd_resize="torch"), tmp_path / "b",
                             i3d_weights=i3d)
    assert a["metrics"]["fvd"]["values"] != b["metrics"]["fvd"]["values"]
    assert b["implementations"]["fvd"]["resize"] == "torch"


def test_evaluate_uses_cached_weights_without_flags(tmp_path: Path, capsys, monkeypatch) -> None:
    from test_weights import _register_fixture

    from hvrnn import weights

    wdir = tmp_path / "lpips"
    _write_alex_weights(wdir)
    i3d = _i3d_file(tmp_path)
    for name, file in (("alexnet", wdir / "alexnet-owt-7be5be79.pth"),
                       ("lpips-alex", wdir / "alex.pth"), ("i3d", i3d)):
        _register_fixture(monkeypatch, name, file)
        assert _cli(["weights", "add", name, str(file)], capsys)[0] == 0
    code, out, _ = _cli(["weights", "list"], capsys)
    assert code == 0 and out.count("verified") == 3 and out.count("missing") == 2
    clips = _clips(8)
    pred, truth = tmp_path / "p.npz", tmp_path / "t.npz"
    np.savez(pred, samples=_offset_samples(clips, (5, 0)))
    np.savez(truth, videos=clips)
    code, out, err = _cli(["evaluate", "--predictions", str(pred), "--protocol", PROTO.id,
                           "--targets", str(truth), "--out", str(tmp_path / "o")], capsys)
    assert code == 0, err
    res = json.loads((tmp_path / "o" / "metrics.json").read_text())
    impl = res["implementations"]
    assert impl["lpips"]["weights_sha256"]["backbone"] == weights.REGISTRY["alexnet"].sha256
    assert impl["fvd"]["weights_sha256"] == weights.REGISTRY["i3d"].sha256
    assert res["metrics"]["lpips"]["best"]["mean"] == pytest.approx(0.0, abs=1e-9)
    assert res["metrics"]["fvd"]["rounds"] == PROTO.fvd_rounds
    # --no-lpips / --no-fvd skip them even when cached.
    code, out, _ = _cli(["evaluate", "--predictions", str(pred), "--protocol", PROTO.id,
                         "--targets", str(truth), "--out", str(tmp_path / "o2"), "--no-lpips",
                         "--no-fvd"], capsys)
    assert code == 0 and "lpips        skipped" in out and "fvd          skipped" in out


def test_weights_given_then_configured_then_cached(tmp_path: Path, monkeypatch) -> None:
    """A flag wins, then a path in the checkpoint config's eval section, then the cache (its
    folder); False (--no-lpips / --no-fvd) skips whatever the config names; a metric the
    protocol does not score gets none. Decoded once, in MetricWeights.resolve."""
    from hvrnn import weights
    from hvrnn.config import EvalConfig
    from hvrnn.evaluation.request import FROM_CACHE, MetricWeights

    monkeypatch.setenv("HVRNN_CACHE", str(tmp_path))
    cache = tmp_path / "weights"
    configured = EvalConfig(lpips_weights="cfg/lpips", i3d_weights="")
    resolve = MetricWeights.resolve
    assert resolve(FROM_CACHE, FROM_CACHE, configured=configured) == MetricWeights(
        Path("cfg/lpips"), cache)
    assert resolve("flag/lpips", None, configured=configured) == MetricWeights(
        Path("flag/lpips"), None)
    assert resolve(None, None, configured=configured) == MetricWeights(Path("cfg/lpips"), None)
    assert resolve(False, False, configured=configured) == MetricWeights(None, None)
    assert resolve(FROM_CACHE, None) == MetricWeights(cache, None)
    assert weights.is_cache(cache) and not weights.is_cache(tmp_path)
    no_fvd = dataclasses.replace(PROTO, metrics=("psnr", "ssim", "lpips"))
    assert resolve(FROM_CACHE, FROM_CACHE, no_fvd) == MetricWeights(cache, None)
    module = torch.nn.Identity()
    assert resolve(None, module).i3d is module
    with pytest.raises(TypeError, match="int"):
        resolve(3, None)


@pytest.mark.parametrize("layout", ["png", "mp4"])
def test_png_and_video_folders_score_like_the_npz(tmp_path: Path, layout: str) -> None:
    from test_prediction_files import write_png_folder, write_video_folder

    clips = _clips(9)
    samples = _offset_samples(clips, (7, -12, 3))
    context = clips[:, :PROTO.n_ctx]
    npz = tmp_path / "p.npz"
    np.savez(npz, samples=samples, context=context)
    ref = evaluate_predictions_file(npz, PROTO.id, tmp_path / "ref", targets=clips)
    if layout == "png":
        folder = write_png_folder(tmp_path / "samples", samples, context)
    else:
        folder = write_video_folder(tmp_path / "videos", samples, context, ".mp4")
    res = evaluate_predictions_file(folder, PROTO.id, tmp_path / "got", targets=clips)
    assert res["metrics"] == ref["metrics"]
    assert res["predictions_layout"] == ("png" if layout == "png" else "video")
    assert res["predictions_source"] == str(folder)
    with np.load(tmp_path / "got" / "predictions.npz") as z:
        np.testing.assert_array_equal(z["samples"], samples)
    # A wrong test order is caught through the converted context.
    if layout == "png":
        write_png_folder(tmp_path / "swap", samples, context[::-1])
        with pytest.raises(UserError, match="differs from test sequence 0"):
            evaluate_predictions_file(tmp_path / "swap", PROTO.id, tmp_path / "bad",
                                      targets=clips)


def test_list_protocols_and_presets(capsys) -> None:
    code, out, _ = _cli(["evaluate", "--list-protocols"], capsys)
    assert code == 0
    import yaml

    blocks = out.strip().split("\n---\n")
    assert len(blocks) == len(PROTOCOLS)
    for block, (pid, p) in zip(blocks, PROTOCOLS.items(), strict=True):
        data = yaml.safe_load(block)  # the YAML form of a protocol file
        assert data["id"] == pid and data["fvd_resize"] == p.fvd_resize
        assert data["convention"] == p.convention
    from hvrnn.config import load_config, preset_names

    code, out, _ = _cli(["info", "--presets"], capsys)
    assert code == 0
    for name in preset_names():
        line = next(x for x in out.splitlines() if x.split()[0] == name)
        assert load_config(name).model.kind in line and "parameters" in line
    code, _, err = _cli(["evaluate", "--predictions", "x.npz"], capsys)
    assert code == 2 and "--protocol ID is required" in err


def test_evaluation_does_not_depend_on_the_batch_size(tmp_path: Path, tiny_config,
                                                      smmnist16_root) -> None:
    """Each test sequence draws its noise from its own generator: sampling 1, 2 or 5 sequences
    together gives the same samples (to float rounding, which uint8 quantisation absorbs here)
    and the same numbers."""
    from hvrnn.checkpoint import make_checkpoint, save_checkpoint
    from hvrnn.model import build_model

    cfg = dataclasses.replace(tiny_config, data=dataclasses.replace(tiny_config.data,
                                                                    root=smmnist16_root))
    torch.manual_seed(0)
    path = save_checkpoint(make_checkpoint(model=build_model(cfg.model), optimizer=None, step=0,
                                           cfg=cfg), tmp_path / "run")
    proto = Protocol("smmnist16-test", "smmnist", 16, 1, 2, 4, 3, max_sequences=5,
                     data_root=smmnist16_root)
    results, samples = [], []
    for batch in (1, 2, 5):
        results.append(evaluate_checkpoint(path, proto, tmp_path / f"b{batch}",
                                           batch_size=batch))
        with np.load(tmp_path / f"b{batch}" / "predictions.npz") as z:
            samples.append(z["samples"])
    assert np.abs(samples[0].astype(int) - samples[2]).max() <= 1
    assert (samples[0] != samples[2]).mean() < 1e-3
    for res in results[1:]:
        for m in ("psnr", "ssim"):
            assert res["metrics"][m]["best"]["mean"] == pytest.approx(
                results[0]["metrics"][m]["best"]["mean"], rel=1e-3)
    assert not np.array_equal(samples[0][:, 0], samples[0][:, 1])  # samples still differ
