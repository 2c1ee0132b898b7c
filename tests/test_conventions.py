"""Metric conventions against the values printed by each paper's own code.

The reference values in tests/fixtures/conventions/reference_*.json were produced once by running
the original code (command and versions in that folder's README.md) on inputs.npz.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hvrnn.metrics import conventions as cv
from hvrnn.metrics.reduce import select_samples

FIX = Path(__file__).parent / "fixtures" / "conventions"
CASES = ("grey", "rgb", "mnist")
TOL = 1e-6
# PSNRs that the reference code computes in float32 (SRVP, SVG's finn_psnr, OpenSTL, MCVD) are
# themselves rounded to float32: at 25 dB its spacing is 1.9e-6. They are compared to within two
# float32 spacings of the reference value instead of 1e-6 dB.
F32 = 2.0 ** -22


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    with np.load(FIX / "inputs.npz") as z:
        return {k: z[k] for k in z.files}


def _ref(code: str) -> dict:
    return json.loads((FIX / f"reference_{code}.json").read_text())["cases"]


def _scores(inputs: dict, case: str, name: str) -> dict[str, np.ndarray]:
    """Per (sequence, sample, frame) values of our convention on a fixture case."""
    pred = torch.from_numpy(inputs[f"{case}_pred"])  # (S, N, T, C, H, W) float32
    true = torch.from_numpy(inputs[f"{case}_true"])  # (S, T, C, H, W) uint8
    s, n = pred.shape[:2]
    flat = pred.flatten(0, 1)
    target = true.repeat_interleave(n, 0)
    dataset = "smmnist" if case == "mnist" else "bair"
    res = cv.convention_scores(flat, target, [name], dataset=dataset)[cv.get_convention(name).name]
    return {k: v.reshape(s, n, -1).numpy() for k, v in res.items()}


def _check_best_of_n(ours: dict, ref: dict, ssim_atol: float) -> None:
    """The best of N per sequence (mean over frames, per metric) and its printed mean against
    the reference's ``best`` and ``printed``; PSNR to 1e-6 dB or two float32 spacings."""
    for metric, atol in (("ssim", ssim_atol), ("psnr", TOL)):
        sel = select_samples(torch.from_numpy(ours[metric]), True, "sequence")
        rtol = F32 if metric == "psnr" else 0
        np.testing.assert_allclose(sel["value_best"].numpy(), ref["best"][metric], atol=atol,
                                   rtol=rtol)
        np.testing.assert_allclose(float(sel["value_best"].mean()), ref["printed"][metric],
                                   atol=atol, rtol=rtol)


@pytest.mark.parametrize("case", CASES)
def test_svg_matches_eval_seq(inputs: dict, case: str) -> None:
    ref = _ref("svg")[case]
    ours = _scores(inputs, case, "svg")
    np.testing.assert_allclose(ours["ssim"], ref["ssim"], atol=TOL, rtol=0)
    np.testing.assert_allclose(ours["psnr"], ref["psnr"], atol=TOL, rtol=0)
    finn = _scores(inputs, case, "svg_finn")
    np.testing.assert_allclose(finn["ssim"], ref["finn_ssim"], atol=TOL, rtol=0)
    np.testing.assert_allclose(finn["psnr"], ref["finn_psnr"], atol=TOL, rtol=F32)


@pytest.mark.parametrize("case", CASES)
def test_srvp_matches_test_py(inputs: dict, case: str) -> None:
    ref = _ref("srvp")[case]
    ours = _scores(inputs, case, "slamp")  # the alias of srvp
    np.testing.assert_allclose(ours["ssim"], ref["ssim"], atol=TOL, rtol=0)
    np.testing.assert_allclose(ours["psnr"], ref["psnr"], atol=TOL, rtol=F32)
    _check_best_of_n(ours, ref, ssim_atol=TOL)


@pytest.mark.parametrize("case", CASES)
def test_savp_matches_tf_image_ssim_and_psnr(inputs: dict, case: str) -> None:
    """TensorFlow computes SSIM and PSNR in float32 whatever the input (``tf.image.ssim``
    converts to float32): SSIM is compared to 1e-5 (its float32 rounding reaches 4.5e-6 on
    these cases), PSNR to two float32 spacings."""
    ref = _ref("savp")[case]
    ours = _scores(inputs, case, "savp")
    np.testing.assert_allclose(ours["ssim"], ref["ssim"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(ours["psnr"], ref["psnr"], atol=TOL, rtol=F32)
    _check_best_of_n(ours, ref, ssim_atol=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_mcvd_matches_ncsn_runner(inputs: dict, case: str) -> None:
    ref = _ref("mcvd")[case]
    ours = _scores(inputs, case, "mcvd")
    np.testing.assert_allclose(ours["ssim"], ref["frame_ssim"], atol=TOL, rtol=0)
    np.testing.assert_allclose(ours["mse"], ref["frame_mse"], atol=TOL * 1e-2, rtol=1e-6)
    psnr = select_samples(torch.from_numpy(ours["mse"]), True, "clip_mse")
    np.testing.assert_allclose(psnr["value_best"].numpy(), ref["psnr_list"], atol=TOL, rtol=F32)
    ssim = select_samples(torch.from_numpy(ours["ssim"]), True, "sequence")
    np.testing.assert_allclose(ssim["value_best"].numpy(), ref["ssim_list"], atol=TOL, rtol=0)


@pytest.mark.parametrize("case", CASES)
def test_openstl_matches_metric(inputs: dict, case: str) -> None:
    ref = _ref("openstl")[case]
    ours = _scores(inputs, case, "openstl")
    np.testing.assert_allclose(ours["ssim"], ref["ssim"], atol=TOL, rtol=0)
    np.testing.assert_allclose(ours["psnr"], ref["psnr"], atol=TOL, rtol=F32)
    assert abs(ours["ssim"][:, 0].mean() - ref["sample0_mean"]["ssim"]) < TOL
    np.testing.assert_allclose(ours["psnr"][:, 0].mean(), ref["sample0_mean"]["psnr"],
                               atol=TOL, rtol=F32)
