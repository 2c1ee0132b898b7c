"""Every number a user can give, set to nan, inf, -inf, 0, -1 and a huge value, never starts
training, sampling or evaluation with a value out of its range and never prints a traceback.

The config keys are generated from the config dataclasses (every section, every registered model
kind with its tiny preset), the command-line numbers from the parser (every option of every
command), so a new setting or option is covered without a change here.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from pathlib import Path
from typing import Any

import helpers  # noqa: F401  (registers the toy kind)
import pytest

import hvrnn.cli as cli
from hvrnn.cli.common import Checked
from hvrnn.config import (
    MODEL_CONFIGS,
    DataConfig,
    EvalConfig,
    ExperimentConfig,
    LossConfig,
    TrainConfig,
)
from hvrnn.config.checks import number_range
from hvrnn.model import MODEL_PRESETS

VALUES = ("nan", "inf", "-inf", "0", "-1", "huge")
HUGE = {int: 10**12, float: 1e300}


class Started(BaseException):
    """Raised instead of the work itself: the command got past every check."""

    def __init__(self, what: Any) -> None:
        super().__init__()
        self.what = what


def _numeric(tp: Any) -> tuple[type, int] | None:
    """(element type, tuple length: 0 scalar, -1 variable) of a numeric field type."""
    if tp in (int, float):
        return tp, 0
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis and args[0] in (int, float):
            return args[0], -1
        if args and all(a in (int, float) for a in args):
            return args[0], len(args)
    return None


def config_keys() -> list[tuple[str, str, type, int, Any]]:
    """(preset, dotted key, element type, tuple length, default) of every numeric setting."""
    sections = [("data", DataConfig), ("loss", LossConfig), ("train", TrainConfig),
                ("eval", EvalConfig)]
    keys = []
    for name, cls in sections:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if (kind := _numeric(hints[f.name])) is not None:
                keys.append(("tiny", f"{name}.{f.name}", *kind, f))
    missing = sorted(set(MODEL_CONFIGS) - set(MODEL_PRESETS))
    assert not missing, f"model kinds registered without a preset: {missing}"
    for kind, cls in sorted(MODEL_CONFIGS.items()):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if not f.metadata.get("derived") and (numeric := _numeric(hints[f.name])):
                keys.append((MODEL_PRESETS[kind], f"model.{f.name}", *numeric, f))
    return keys


def _yaml(value: str, tp: type, length: int, default: Any) -> str:
    one = {"nan": ".nan", "inf": ".inf", "-inf": "-.inf", "huge": repr(HUGE[tp])}.get(value,
                                                                                     value)
    if length == 0:
        return one
    n = length if length > 0 else max(1, len(default))
    return "[" + ", ".join([one] * n) + "]"


def _expected_refusal(value: str) -> bool:
    return value != "0"  # 0 is a valid setting of some keys (train.max_steps, free_bits, ...)


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record what would start, instead of starting it."""
    import hvrnn.training as training

    calls: list[Any] = []

    def record(cfg: ExperimentConfig, *args: Any, **kwargs: Any) -> None:
        calls.append(cfg)
        raise Started(cfg)

    monkeypatch.setattr(training, "train", record)
    return calls


KEYS = config_keys()


@pytest.mark.parametrize("preset, key, tp, length, field", KEYS,
                         ids=[f"{p}:{k}" for p, k, *_ in KEYS])
def test_every_config_number(preset: str, key: str, tp: type, length: int, field: Any,
                             started: list[Any], tmp_path: Path,
                             capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    for value in VALUES:
        override = f"{key}={_yaml(value, tp, length, field.default)}"
        try:
            code = cli.main(["train", preset, override, "--run-dir", str(run)])
        except Started as got:
            cfg = got.what
            assert not _expected_refusal(value), f"{override} started training"
            section, name = key.split(".")
            stored = getattr(getattr(cfg, section), name)
            for v in stored if isinstance(stored, tuple) else (stored,):
                low, high = number_range(field, v)
                assert math.isfinite(v) and low <= v <= high, f"{override} started: {v}"
            if section == "model":  # what was accepted builds a model (no division by zero)
                from hvrnn.memory import parameter_count

                assert parameter_count(cfg.model) > 0
            continue
        finally:
            err = capsys.readouterr().err
        assert code == 2, f"{override}: exit {code}\n{err}"
        line = _one_error_line(err)
        assert key.split(".")[1] in line or "override" in line, (override, line)
        assert not run.exists(), f"{override} created the run directory"
    assert len(started) <= 1  # at most the 0


# ---- the command line ------------------------------------------------------------------------

# A valid command line of every command with numeric options; its handler never runs.
BASE = {
    ("sample",): ["sample", "run"],
    ("evaluate",): ["evaluate", "run", "--protocol", "smmnist32-c2-p10-n10"],
    ("compare",): ["compare", "a", "b", "--protocol", "smmnist32-c2-p10-n10", "--out", "o"],
    ("data", "smmnist"): ["data", "smmnist", "--out", "o"],
    ("data", "cityscapes"): ["data", "cityscapes", "src", "--out", "o"],
    ("data", "kth"): ["data", "kth", "src", "--out", "o"],
    ("data", "videos"): ["data", "videos", "src", "--out", "o"],
    ("demo",): ["demo"],
}


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
            ) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [(path, parser)]
    return [leaf for name, p in subs[0].choices.items() for leaf in _leaves(p, (*path, name))]


def numeric_options() -> list[tuple[tuple[str, ...], str, Checked]]:
    """(command, option, type) of every numeric option of the parser."""
    found = []
    for path, parser in _leaves(cli.build_parser()):
        for action in parser._actions:
            if action.type in (int, float):
                raise AssertionError(f"hvrnn {' '.join(path)} {action.option_strings}: a bare "
                                     "int/float type; use hvrnn.cli.common.integer/number")
            if isinstance(action.type, Checked):
                assert action.option_strings, "positional numbers are not expected"
                found.append((path, action.option_strings[-1], action.type))
    return found


OPTIONS = numeric_options()


def test_every_command_with_numbers_has_a_base_command_line() -> None:
    missing = sorted({" ".join(p) for p, _, _ in OPTIONS if p not in BASE})
    assert not missing, f"add a valid command line to BASE for: {missing}"
    assert len(OPTIONS) >= 20


@pytest.mark.parametrize("path, option, kind", OPTIONS,
                         ids=[f"{' '.join(p)} {o}" for p, o, _ in OPTIONS])
def test_every_command_line_number(path: tuple[str, ...], option: str, kind: Checked,
                                   monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture) -> None:
    real = cli._parse

    def parse_without_work(parser: Any, argv: Any) -> argparse.Namespace:
        args = real(parser, argv)

        def record(args: argparse.Namespace) -> int:
            raise Started(getattr(args, option.lstrip("-").replace("-", "_")))

        args.func = record
        return args

    monkeypatch.setattr(cli, "_parse", parse_without_work)
    for value in VALUES:
        text = repr(HUGE[kind.kind]) if value == "huge" else value
        try:
            code = cli.main([*BASE[path], f"{option}={text}"])
        except Started as got:
            err = capsys.readouterr().err
            assert not _expected_refusal(value), f"{option}={text} started the command"
            given = got.what[0] if isinstance(got.what, list) else got.what
            assert kind.accepts(given) and given == 0
            continue
        err = capsys.readouterr().err
        assert code == 2, f"{option}={text}: exit {code}\n{err}"
        assert option in _one_error_line(err)
