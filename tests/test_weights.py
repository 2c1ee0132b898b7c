"""The weights cache: the real download code against a loopback HTTP server, add, and lookups."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from hvrnn import weights
from hvrnn.errors import WeightsError
from hvrnn.weights import WeightFile


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range: bytes=N-``; a path in ``server.cut`` gets half
    of its body on the first request and then the connection is closed."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        server = self.server
        server.log.append((self.path, self.headers.get("Range")))
        data = server.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and server.ranges:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in server.cut:
            server.cut.discard(self.path)
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture
def server() -> Iterator[http.server.ThreadingHTTPServer]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.cut, srv.log, srv.ranges = {}, set(), [], True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _entry(srv, name: str, data: bytes, sha256: str | None = None) -> WeightFile:
    srv.files[f"/{name}"] = data
    return WeightFile(name, f"{name}.bin", sha256 or hashlib.sha256(data).hexdigest(), len(data),
                      (f"http://127.0.0.1:{srv.server_port}/{name}",), "tests", "fixture")


def _payload(n: int = 300_000, seed: int = 0) -> bytes:
    return torch.randint(0, 256, (n,), generator=torch.Generator().manual_seed(seed),
                         dtype=torch.uint8).numpy().tobytes()


def test_fetch_installs_a_verified_file(server, tmp_path: Path) -> None:
    data = _payload()
    entry = _entry(server, "model", data)
    path = weights.fetch("", entry=entry, folder=tmp_path, progress=False)
    assert path == tmp_path / "model.bin" and path.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]  # no partial file left
    assert weights.file_status(entry, tmp_path) == "verified"
    # Already installed and verified: no second download.
    weights.fetch("", entry=entry, folder=tmp_path, progress=False)
    assert len(server.log) == 1


def test_checksum_mismatch_installs_nothing(server, tmp_path: Path) -> None:
    data = _payload()
    entry = _entry(server, "model", data, sha256="0" * 64)
    with pytest.raises(WeightsError, match="has SHA-256 .* nothing was installed") as info:
        weights.fetch("", entry=entry, folder=tmp_path, progress=False)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []
    # A wrong size is refused the same way.
    entry = dataclasses.replace(_entry(server, "model", data), size=len(data) + 1)
    with pytest.raises(WeightsError, match="nothing was installed"):
        weights.fetch("", entry=entry, folder=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_transfer_is_resumed(server, tmp_path: Path) -> None:
    data = _payload()
    entry = _entry(server, "model", data)
    server.cut.add("/model")
    path = weights.fetch("", entry=entry, folder=tmp_path, progress=False)
    assert path.read_bytes() == data
    assert server.log == [("/model", None), ("/model", f"bytes={len(data) // 2}-")]


def test_interrupted_transfer_is_resumed_by_the_next_call(server, tmp_path: Path) -> None:
    data = _payload()
    entry = _entry(server, "model", data)
    server.cut.add("/model")
    with pytest.raises(WeightsError, match="run the command again to resume") as info:
        weights.fetch("", entry=entry, folder=tmp_path, progress=False, retries=0)
    assert "\n" not in str(info.value)
    part = tmp_path / "model.bin.part"
    assert part.stat().st_size == len(data) // 2 and not (tmp_path / "model.bin").exists()
    assert weights.file_status(entry, tmp_path) == "partial"
    path = weights.fetch("", entry=entry, folder=tmp_path, progress=False)
    assert path.read_bytes() == data and not part.exists()
    assert server.log[-1] == ("/model", f"bytes={len(data) // 2}-")


def test_server_without_range_support_restarts_the_download(server, tmp_path: Path) -> None:
    data = _payload()
    entry = _entry(server, "model", data)
    (tmp_path / "model.bin.part").write_bytes(b"x" * 1000)  # stale bytes, replaced
    server.ranges = False
    assert weights.fetch("", entry=entry, folder=tmp_path, progress=False).read_bytes() == data


def test_404_is_one_line_and_the_next_url_is_tried(server, tmp_path: Path) -> None:
    data = _payload(1000)
    entry = _entry(server, "model", data)
    missing = dataclasses.replace(entry, urls=(f"http://127.0.0.1:{server.server_port}/gone",))
    with pytest.raises(WeightsError) as info:
        weights.fetch("", entry=missing, folder=tmp_path, progress=False)
    msg = str(info.value)
    assert "\n" not in msg and "HTTP 404" in msg and "/gone" in msg
    assert list(tmp_path.iterdir()) == []
    mirrors = dataclasses.replace(entry, urls=missing.urls + entry.urls)
    assert weights.fetch("", entry=mirrors, folder=tmp_path, progress=False).read_bytes() == data


def test_add_verifies_and_installs(tmp_path: Path, monkeypatch) -> None:
    data = _payload(5000)
    src = tmp_path / "copy.pt"
    src.write_bytes(data)
    cache = tmp_path / "cache"
    monkeypatch.setitem(weights.REGISTRY, "i3d", dataclasses.replace(
        weights.REGISTRY["i3d"], sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(data[:-1] + b"\x00")
    with pytest.raises(WeightsError, match="nothing was installed"):
        weights.add("i3d", bad, folder=cache)
    assert not (cache / "i3d_torchscript.pt").exists()
    path = weights.add("i3d", src, folder=cache)
    assert path == cache / "i3d_torchscript.pt" and path.read_bytes() == data
    assert weights.file_status(weights.REGISTRY["i3d"], cache) == "verified"
    path.write_bytes(b"changed")
    assert weights.file_status(weights.REGISTRY["i3d"], cache) == "corrupt"
    with pytest.raises(WeightsError, match="--force"):
        weights.add("i3d", src, folder=cache)
    assert weights.add("i3d", src, folder=cache, force=True).read_bytes() == data
    with pytest.raises(WeightsError, match="unknown weights"):
        weights.add("inception", src, folder=cache)


def test_registry_matches_the_published_names() -> None:
    for entry in weights.REGISTRY.values():
        assert len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0
        assert all(u.startswith("https://") for u in entry.urls)
        stem = entry.filename.rsplit(".", 1)[0]
        if entry.urls[0].startswith("https://download.pytorch.org/"):
            # torchvision names carry the first 8 hex digits of the file's SHA-256.
            assert entry.sha256.startswith(stem.rsplit("-", 1)[1]), entry.name
    assert len({e.filename for e in weights.REGISTRY.values()}) == len(weights.REGISTRY)
    assert [e.name for e in weights.resolve_names(["lpips", "alexnet", "fvd"])] == [
        "alexnet", "lpips-alex", "i3d"]
    with pytest.raises(WeightsError, match="unknown weights 'fid'"):
        weights.resolve_names(["fid"])


def test_cache_location_follows_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HVRNN_CACHE", str(tmp_path / "c"))
    assert weights.weights_dir() == tmp_path / "c" / "weights"
    monkeypatch.delenv("HVRNN_CACHE")
    assert weights.weights_dir() == Path.home() / ".cache" / "hvrnn" / "weights"


def test_missing_cached_weights_name_the_fetch_command() -> None:
    from hvrnn import metrics

    with pytest.raises(WeightsError, match=r"`hvrnn weights fetch alexnet lpips-alex`"):
        metrics.load_lpips("alex")
    with pytest.raises(WeightsError, match=r"`hvrnn weights fetch vgg16 lpips-vgg`"):
        metrics.lpips(torch.rand(1, 1, 3, 32, 32), torch.rand(1, 1, 3, 32, 32), net="vgg")
    with pytest.raises(WeightsError, match=r"`hvrnn weights fetch i3d`"):
        metrics.load_i3d(None)


def _register_fixture(monkeypatch, name: str, path: Path) -> None:
    """Pin a registry entry to a fixture file, as if it were the published one."""
    data = path.read_bytes()
    monkeypatch.setitem(weights.REGISTRY, name, dataclasses.replace(
        weights.REGISTRY[name], sha256=hashlib.sha256(data).hexdigest(), size=len(data)))


def test_metric_loaders_find_the_cache(tmp_path: Path, monkeypatch) -> None:
    from test_metrics_lpips import _alex_checkpoint, _heads

    from hvrnn import metrics

    gen = torch.Generator().manual_seed(0)
    torch.save(_alex_checkpoint(gen), tmp_path / "backbone.pth")
    torch.save(_heads("alex", gen), tmp_path / "heads.pth")
    torch.jit.script(torch.nn.Identity()).save(str(tmp_path / "i3d.pt"))
    for name, file in (("alexnet", "backbone.pth"), ("lpips-alex", "heads.pth"),
                       ("i3d", "i3d.pt")):
        _register_fixture(monkeypatch, name, tmp_path / file)
        weights.add(name, tmp_path / file)
    model = metrics.load_lpips("alex")
    assert model.weights_sha256["backbone"] == weights.REGISTRY["alexnet"].sha256
    x, y = torch.rand(1, 2, 3, 32, 32), torch.rand(1, 2, 3, 32, 32)
    torch.testing.assert_close(metrics.lpips(x, y), metrics.lpips(x, y, weights=model))
    assert metrics.load_i3d(None).weights_sha256 == weights.REGISTRY["i3d"].sha256
    # A cached file that is not the pinned one is refused before it is used.
    monkeypatch.setitem(weights.REGISTRY, "i3d", dataclasses.replace(
        weights.REGISTRY["i3d"], sha256="1" * 64))
    with pytest.raises(WeightsError, match="weights fetch i3d --force"):
        metrics.load_i3d(None)


def test_weights_commands_end_to_end(server, monkeypatch, capsys) -> None:
    from hvrnn.cli import main

    data = _payload(20_000)
    served = _entry(server, "alex.pth", data)
    monkeypatch.setitem(weights.REGISTRY, "lpips-alex", dataclasses.replace(
        weights.REGISTRY["lpips-alex"], sha256=served.sha256, size=served.size, urls=served.urls))
    server.cut.add("/alex.pth")
    assert main(["weights", "fetch", "lpips-alex"]) == 0
    installed = weights.weights_dir() / "alex.pth"
    assert installed.read_bytes() == data
    out = capsys.readouterr().out
    assert "lpips-alex: " in out and "verified" in out
    assert main(["weights", "list"]) == 0
    listing = capsys.readouterr().out
    line = next(x for x in listing.splitlines() if x.strip().startswith("lpips-alex"))
    assert "verified" in line and str(weights.weights_dir()) in listing

    def one_error_line(argv: list[str], *needles: str) -> None:
        assert main(argv) == 2
        lines = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        for needle in needles:
            assert needle in lines[0], lines[0]

    monkeypatch.setitem(weights.REGISTRY, "lpips-vgg", dataclasses.replace(
        weights.REGISTRY["lpips-vgg"], urls=(served.urls[0].replace("alex", "nothing"),)))
    one_error_line(["weights", "fetch", "lpips-vgg"], "HTTP 404", "vgg.pth")
    monkeypatch.setitem(weights.REGISTRY, "i3d", dataclasses.replace(
        weights.REGISTRY["i3d"], urls=served.urls, size=served.size))  # pinned SHA differs
    one_error_line(["weights", "fetch", "fvd"], "SHA-256", "nothing was installed")
    assert sorted(p.name for p in weights.weights_dir().iterdir()) == ["alex.pth"]
    one_error_line(["weights", "fetch", "inception"], "unknown weights 'inception'")
    one_error_line(["weights", "add", "i3d", str(installed)], "nothing was installed")


def test_weights_list_and_help_do_not_load_torch(tmp_path: Path) -> None:
    """`hvrnn weights list` and `hvrnn --help` start without importing torch or numpy."""
    import os
    import subprocess
    import sys

    code = ("import sys; from hvrnn.cli import main; rc = main(sys.argv[1:]); "
            "assert not {'torch', 'numpy'} & set(sys.modules), sorted("
            "{'torch', 'numpy'} & set(sys.modules)); sys.exit(rc)")
    src = str(Path(__file__).resolve().parent.parent / "src")
    env = {**os.environ, "HVRNN_CACHE": str(tmp_path),
           "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    for argv, shown in ((["weights", "list"], f"weights cache: {tmp_path / 'weights'}"),
                        (["--help"], "weights")):
        done = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert shown in done.stdout
