"""Local-weights helpers: hub refusals, optional imports, SHA-256 of files and folders."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from geocsp.errors import ConfigError, MissingDependencyError, MissingFileError
from geocsp.features.weights import check_model_name, local_weights, require, sha256_path


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
