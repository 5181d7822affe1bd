"""Local-weights helpers: hub refusals, optional imports, SHA-256 of files and folders."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import pytest

from geocsp.errors import CheckpointError, ConfigError, MissingDependencyError, MissingFileError
from geocsp.features.weights import (
    cached_safetensors,
    check_model_name,
    is_safetensors,
    local_weights,
    read_state_dict,
    require,
    sha256_path,
)


def test_sha256_of_file_and_folder(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "b.bin").write_bytes(b"bb")
    (tmp_path / "d" / "sub" / "a.bin").write_bytes(b"a")
    assert sha256_path(tmp_path / "d" / "b.bin") == hashlib.sha256(b"bb").hexdigest()
    expected = hashlib.sha256(b"b.bin\0bb" + b"sub/a.bin\0a").hexdigest()
    assert sha256_path(tmp_path / "d") == expected


def test_local_weights_and_model_names(tmp_path: Path) -> None:
    (tmp_path / "w.pth").write_bytes(b"x")
    assert local_weights(tmp_path / "w.pth", "timm:x") == tmp_path / "w.pth"
    assert local_weights(None, "efficientnet-lite0", required=False) is None
    with pytest.raises(ConfigError, match="needs --weights"):
        local_weights(None, "onnx")
    with pytest.raises(ConfigError, match="refused"):
        local_weights("hf-hub:timm/resnet18", "timm:resnet18")
    with pytest.raises(MissingFileError, match="file not found"):
        local_weights(tmp_path / "nope.pth", "onnx")
    assert check_model_name("resnet18.a1_in1k", "timm") == "resnet18.a1_in1k"
    for bad in ("", "timm/resnet18", "hf-hub:x"):
        with pytest.raises(ConfigError, match="hub prefix"):
            check_model_name(bad, "timm")


def test_require_names_the_pip_package(monkeypatch: pytest.MonkeyPatch) -> None:
    assert require("json", "json", "test").dumps([1]) == "[1]"
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match="pip install onnxruntime"):
        require("onnxruntime", "onnxruntime", "onnx")


def test_read_state_dict_safetensors_by_content_and_pth_via_weights_only(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from geocsp.io import save_tensors

    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2)}
    save_tensors(tmp_path / "w.safetensors", state)
    (tmp_path / "renamed.bin").write_bytes((tmp_path / "w.safetensors").read_bytes())
    torch.save(state, tmp_path / "w.pth")
    for name in ("w.safetensors", "renamed.bin", "w.pth"):
        assert is_safetensors(tmp_path / name) == (name != "w.pth")
        got = read_state_dict(tmp_path / name, "test")
        assert set(got) == {"w", "b"} and torch.equal(got["w"], state["w"]), name


def test_read_state_dict_never_runs_pickled_code(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    marker = tmp_path / "MARKER"
    blob = pickle.dumps(_Canary(str(marker)))
    (tmp_path / "evil.pth").write_bytes(blob)
    (tmp_path / "evil.safetensors").write_bytes(blob)
    for name in ("evil.pth", "evil.safetensors"):
        with pytest.raises(CheckpointError, match=name):
            read_state_dict(tmp_path / name, "test")
    assert not marker.exists()


def test_cached_safetensors_converts_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("GEOCSP_CACHE", str(tmp_path / "cache"))
    torch.save({"w": torch.ones(3)}, tmp_path / "bundled.pth")
    target = cached_safetensors(tmp_path / "bundled.pth", "net")
    assert target.parent == tmp_path / "cache" / "weights" and is_safetensors(target)
    assert target.name == f"net-{sha256_path(tmp_path / 'bundled.pth')}.safetensors"
    mtime = target.stat().st_mtime_ns
    assert cached_safetensors(tmp_path / "bundled.pth", "net") == target
    assert target.stat().st_mtime_ns == mtime  # not converted again


class _Canary:
    """Unpickling this touches a marker file: the test that nothing unpickles it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, ...]]:
        return (os.system, (f"touch {self.path}",))
