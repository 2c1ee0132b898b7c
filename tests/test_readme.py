"""The README: its Python snippet runs, and what it tells users to type exists."""

from __future__ import annotations

import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_the_two_setup_commands():
    first = re.search(r"```(\w*)\n(.*?)```", README, flags=re.S)
    assert first is not None and first.group(1) == "bash"
    commands = [line.split("#")[0].strip() for line in first.group(2).splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, flags=re.M) and re.search(r"^test:", makefile,
                                                                     flags=re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_python_snippet_runs_and_gives_the_documented_shape(capsys):
    (snippet,) = _blocks("python")
    documented = re.search(r"print\(samples\.shape\)\s*#.*= \(([\d, ]+)\)", snippet)
    assert documented, "the snippet documents the shape it prints"
    shape = tuple(int(v) for v in documented.group(1).split(","))
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    samples = namespace["samples"]
    assert samples.shape == shape
    assert samples.min() >= 0 and samples.max() <= 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == str(torch.Size(shape))
    assert int(out[1]) == sum(p.numel() for p in namespace["model"].parameters())


def test_documented_commands_and_links_exist():
    from hvrnn.cli import build_parser

    parser = build_parser([])
    sub = next(a for a in parser._actions if a.dest == "command")
    for command in re.findall(r"^hvrnn (\w+)", README, flags=re.M):
        assert command in sub.choices, command
    for link in re.findall(r"\]\(([^)#]+)\)", README):
        assert (ROOT / link).exists(), link
    assert "DEMO_" not in README, "results placeholders left in the README"


def test_parameter_counts_agree_with_the_presets():
    """Every "(`a`, `b`, ..., lo-hi M parameters" and "`p` (x M parameters" of the README
    agrees with ``hvrnn info --presets`` (to the rounding shown)."""
    from hvrnn.info import presets_info

    counts = {r["preset"]: r["parameters"] for r in presets_info()}
    text = " ".join(README.split())
    ranges = re.findall(r"\(((?:`\w+`, )+`\w+`)[^()]*?(\d+)-(\d+) M parameters", text)
    assert ranges, "the README states the full-size models' sizes"
    for names, lo, hi in ranges:
        sizes = [counts[n.strip("`")] / 1e6 for n in names.split(", ")]
        assert round(min(sizes)) == int(lo) and round(max(sizes)) == int(hi), (names, sizes)
    for name, size in re.findall(r"`pretrained:(\w+)` \(([\d.]+) M parameters", text):
        assert round(counts[name] / 1e6, 1) == float(size), name
