"""The pickle canary: a file whose unpickling would touch a marker, offered everywhere a
checkpoint, weights or array file is accepted. The marker never appears and each refusal is
a GeocspError (API) or one line with exit status 2 (CLI).

The canary comes as raw pickle bytes, a torch zip checkpoint (``data.pkl``), an object-dtype
``.npy`` / ``.npz``, a ``.safetensors``-named pickle and a ``.pt2`` whose weight is marked
as pickled (torch.export.load would run it with ``weights_only=False``).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from geocsp import checkpoints
from geocsp.cli.main import cli
from geocsp.data.geoworld import make_world
from geocsp.errors import GeocspError
from geocsp.features.backends import load_backbone
from geocsp.nets import LocationEncoder
from geocsp.nets.location_encoder import LocationEncoderConfig
from geocsp.prior import GeoPrior


class _Canary:
    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str, ...]]:
        return (os.system, (f"touch {self.path}",))


@pytest.fixture(scope="module")
def marker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("canary") / "MARKER"


@pytest.fixture(scope="module")
def canaries(tmp_path_factory: pytest.TempPathFactory, marker: Path) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("files")
    blob = pickle.dumps(_Canary(marker), protocol=2)
    files = {name: d / name for name in ("evil.pkl", "evil.safetensors", "evil.pt", "evil.pth", "evil.ckpt",
                                         "evil.npy", "evil.npz", "evil.pt2")}
    files["evil.pkl"].write_bytes(blob)
    files["evil.safetensors"].write_bytes(blob)
    for name in ("evil.pt", "evil.pth", "evil.ckpt"):
        with zipfile.ZipFile(files[name], "w") as z:
            z.writestr("archive/data.pkl", blob)
            z.writestr("archive/constants.pkl", blob)
            z.writestr("archive/version", "3\n")
            z.writestr("archive/byteorder", "little")
    obj = np.empty((4, 3), dtype=object)
    obj[0, 0] = _Canary(marker)
    np.save(files["evil.npy"], obj, allow_pickle=True)
    np.savez(files["evil.npz"], features=obj, probs=obj)
    good = d / "good.pt2"
    torch.export.save(torch.export.export(torch.nn.Linear(3, 2), (torch.zeros(1, 3),)), good)
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(files["evil.pt2"], "w") as z:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("model_weights_config.json"):
                cfg = json.loads(data)
                for meta in cfg["config"].values():
                    meta["use_pickle"] = True
                data = json.dumps(cfg).encode()
            elif "/data/weights/weight_" in info.filename:
                data = blob
            z.writestr(info.filename, data)
    assert not marker.exists()
    return files


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory, canaries: dict[str, Path]) -> dict[str, Path]:
    """Real encoder / prior / run directories whose model.safetensors is the canary."""
    d = tmp_path_factory.mktemp("artifacts")
    enc = LocationEncoder(LocationEncoderConfig(dim=8))
    enc.save_pretrained(d / "run" / "encoder")
    GeoPrior(enc, torch.zeros(3, 8), ["a", "b", "c"]).save_pretrained(d / "run" / "prior")
    (d / "run" / "model").mkdir(parents=True)
    (d / "run" / "model" / "config.json").write_text(json.dumps({"kind": "sdm"}))
    for sub in ("encoder", "prior", "model"):
        if (d / "run" / sub).is_dir():
            shutil.copyfile(canaries["evil.safetensors"], d / "run" / sub / "model.safetensors")
    world = d / "world"
    shutil.copytree(make_world("small", seed=0), world)
    shutil.copyfile(canaries["evil.npy"], world / "train.features.npy")
    return {"run": d / "run", "world": world}


def _one_line_exit_2(args: list[str], marker: Path) -> None:
    res = CliRunner().invoke(cli, args)
    assert not marker.exists(), f"unpickled by: geocsp {' '.join(args)}"
    assert res.exit_code == 2, (args, res.output, res.exception)
    assert "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith(("geocsp: error", "Error"))]
    assert len(lines) == 1, res.output


@pytest.mark.parametrize("name", ["evil.pkl", "evil.safetensors", "evil.pt", "evil.pth", "evil.ckpt",
                                  "evil.npy", "evil.npz"])
@pytest.mark.parametrize("backbone", ["efficientnet-lite0", "torchscript", "torch-export"])
def test_feature_backbones_refuse_the_canary(canaries: dict[str, Path], marker: Path, name: str,
                                             backbone: str) -> None:
    with pytest.raises(GeocspError):
        load_backbone(backbone, canaries[name], device="cpu")
    assert not marker.exists()


@pytest.mark.parametrize("backbone", ["torch-export", "torchscript", "efficientnet-lite0"])
def test_pt2_with_pickled_weights_is_refused(canaries: dict[str, Path], marker: Path, backbone: str) -> None:
    with pytest.raises(GeocspError):
        load_backbone(backbone, canaries["evil.pt2"], device="cpu")
    assert not marker.exists()


def test_torchvision_backbone_refuses_the_canary(canaries: dict[str, Path], marker: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    stubs = Path(__file__).parent / "features" / "_stubs"
    monkeypatch.syspath_prepend(str(stubs))
    for name in ("evil.pth", "evil.safetensors", "evil.pkl"):
        with pytest.raises(GeocspError):
            load_backbone("torchvision:resnet18", canaries[name], device="cpu")
    assert not marker.exists()


def test_checkpoint_loaders_refuse_the_canary(artifacts: dict[str, Path], marker: Path) -> None:
    run = artifacts["run"]
    calls: list[Callable[[], object]] = [
        lambda: LocationEncoder.from_pretrained(run / "encoder"),
        lambda: checkpoints.load(run / "encoder"),
        lambda: checkpoints.load_encoder(run),
        lambda: checkpoints.load(run / "model"),
    ]
    calls += [lambda: GeoPrior.from_pretrained(run / "prior"), lambda: checkpoints.load_prior(run)]
    for call in calls:
        with pytest.raises(GeocspError):
            call()
    assert not marker.exists()


def test_cli_commands_refuse_the_canary(artifacts: dict[str, Path], canaries: dict[str, Path],
                                        marker: Path, tmp_path: Path) -> None:
    run, world = artifacts["run"], artifacts["world"]
    points = tmp_path / "points.csv"
    points.write_text("lon,lat\n10,20\n-30,40\n1,2\n3,4\n")
    images = tmp_path / "images"
    images.mkdir()
    commands = [
        ["embed", str(run), str(points), "--out", str(tmp_path / "e.npy")],
        ["predict", str(run), str(points), "--out", str(tmp_path / "p.csv"), "--image-probs",
         str(canaries["evil.npy"])],
        ["data", "import-table", str(points), "--out", str(tmp_path / "t"), "--features", str(canaries["evil.npy"])],
        ["data", "check", str(world)],
        ["sdm", "predict", str(run), str(points), "--out", str(tmp_path / "s.csv")],
        ["finetune", "--data", str(world), "--out", str(tmp_path / "ft"), "--init", str(run), "--epochs", "1",
         "--quiet"],
    ]
    for backbone in ("efficientnet-lite0", "torchscript", "torch-export", "torchvision:resnet18"):
        for name in ("evil.pth", "evil.safetensors", "evil.pt2"):
            commands.append(["features", "extract", str(images), "--backbone", backbone, "--weights",
                             str(canaries[name]), "--out", str(tmp_path / "f"), "--device", "cpu", "--quiet"])
    inat = tmp_path / "inat"
    inat.mkdir()
    for split in ("train", "val"):
        shutil.copyfile(canaries["evil.npy"], inat / f"{split}.features.npy")
        shutil.copyfile(canaries["evil.npz"], inat / f"{split}.npz")
    commands.append(["data", "import-inat", str(inat), "--out", str(tmp_path / "i")])
    for args in commands:
        _one_line_exit_2(args, marker)
