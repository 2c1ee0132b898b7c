"""The help of every command: each option documented, each default said once."""

from __future__ import annotations

import argparse
import re

import pytest

from hvrnn.cli import build_parser


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    out: list[tuple[str, argparse.ArgumentParser]] = []

    def walk(name: str, parser: argparse.ArgumentParser) -> None:
        out.append((name, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, p in action.choices.items():
                    walk(f"{name} {sub}".strip(), p)

    walk("", build_parser())
    return out


@pytest.mark.parametrize("name, parser", _parsers(), ids=lambda x: x if isinstance(x, str) else "")
def test_every_option_is_documented_and_its_default_said_once(name, parser) -> None:
    undocumented = [a.option_strings or a.dest for a in parser._actions
                    if not a.help and not isinstance(a, (argparse._HelpAction,
                                                         argparse._SubParsersAction))]
    assert not undocumented, f"hvrnn {name}: options without help: {undocumented}"
    text = parser.format_help()
    assert "(default: None)" not in text and "(default: False)" not in text
    # One paragraph per option: it names its default at most once.
    for para in re.split(r"\n  (?=-)", text):
        assert para.lower().count("(default") <= 1, para
        assert not ("(default:" in para and "default" in para.split("(default:")[0].lower()), \
            para


def test_sample_and_evaluate_name_a_checkpoint_alike(tmp_path) -> None:
    """``hvrnn sample`` and ``hvrnn evaluate`` name last.pt's folder after its step file."""
    import os

    from hvrnn.evaluation.from_checkpoint import default_eval_folder
    from hvrnn.evaluation.protocols import get_protocol
    from hvrnn.sample_files import default_sample_folder

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    step = run / "checkpoints" / "step_00000007.pt"
    step.write_bytes(b"x")
    os.link(step, run / "checkpoints" / "last.pt")
    p = get_protocol("smmnist32-c2-p10-n10")
    last = run / "checkpoints" / "last.pt"
    assert default_sample_folder(run, last) == run / "samples" / "step_00000007"
    assert default_eval_folder(run, last, p).parent == run / "eval" / "step_00000007"


def test_a_default_of_zero_is_shown() -> None:
    """0 is a value (a seed), not "off": its default is said."""
    sample = dict(_parsers())["sample"].format_help()
    seed = next(p for p in re.split(r"\n  (?=-)", sample) if p.startswith("--seed"))
    assert "(default: 0)" in seed, seed
