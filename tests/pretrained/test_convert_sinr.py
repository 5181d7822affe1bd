"""``geocsp convert sinr``: a SINR ``model.pt`` converts to a geocsp encoder with SINR's outputs.

No SINR package is on the package index (the PyPI name ``sinr`` is an unrelated graph
library), so the oracle is written here from SINR's published layout (elijahcole/sinr
``models.py``, ``utils.py``, ``train.py``): ``ResidualFCNet`` = ``feats`` Sequential of
Linear(input_dim, num_filts), ReLU and ``depth`` residual layers
``x + ReLU(w2(Dropout(ReLU(w1 x))))``, plus ``class_emb`` (no bias); inputs ``sin_cos`` =
[sin(π·lon/180), sin(π·lat/90), cos(π·lon/180), cos(π·lat/90)], ``sin_cos_env`` appends the
raster covariates; the file is ``{"state_dict": ..., "params": {...}}``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from tests.pretrained.peers import max_abs_diff, sphere_points
from torch import nn

from geocsp.errors import CheckpointError
from geocsp.nets import LocationEncoder
from geocsp.pretrained import convert_checkpoint


class _Res(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.w1, self.w2, self.drop = nn.Linear(n, n), nn.Linear(n, n), nn.Dropout()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.relu(self.w2(self.drop(torch.relu(self.w1(x)))))


class SinrOracle(nn.Module):
    """SINR's ResidualFCNet as published; ``forward(feats, return_feats=True)`` is the embedding."""

    def __init__(self, input_dim: int, num_classes: int, num_filts: int, depth: int) -> None:
        super().__init__()
        self.class_emb = nn.Linear(num_filts, num_classes, bias=False)
        self.feats = nn.Sequential(nn.Linear(input_dim, num_filts), nn.ReLU(), *(_Res(num_filts) for _ in range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feats(x)


def sin_cos(lonlat: torch.Tensor) -> torch.Tensor:
    """SINR's CoordEncoder('sin_cos'): normalise to [-1, 1], then [sin(πx), cos(πx)]."""
    x = lonlat / lonlat.new_tensor([180.0, 90.0])
    return torch.cat((torch.sin(math.pi * x), torch.cos(math.pi * x)), 1)


def sinr_params(**over: Any) -> dict[str, Any]:
    params = {"device": "cpu", "model": "ResidualFCNet", "num_filts": 64, "input_enc": "sin_cos", "depth": 4,
              "loss": "an_full", "pos_weight": 2048, "input_dim": 4, "num_classes": 20,
              "class_to_taxa": list(range(20)), "save_path": "./experiments/demo"}
    return {**params, **over}


def save_sinr(params: dict[str, Any], path: Path) -> tuple[SinrOracle, Path]:
    torch.manual_seed(0)
    model = SinrOracle(params["input_dim"], params["num_classes"], params["num_filts"], params["depth"]).eval()
    torch.save({"state_dict": model.state_dict(), "params": params}, path)
    return model, path


def test_sin_cos_equals_sinr(tmp_path: Path) -> None:
    ref, pt = save_sinr(sinr_params(), tmp_path / "model.pt")
    ours = LocationEncoder.from_pretrained(convert_checkpoint("sinr", pt, tmp_path / "enc"))
    assert ours.config.encoder == "wrap" and ours.config.network == "fcnet" and ours.dim == 64
    lonlat = sphere_points(torch.float32)
    with torch.no_grad():
        assert max_abs_diff(ours(lonlat), ref(sin_cos(lonlat))) < 1e-5


def test_sin_cos_env_appends_covariates(tmp_path: Path) -> None:
    ref, pt = save_sinr(sinr_params(input_enc="sin_cos_env", input_dim=4 + 20), tmp_path / "model.pt")
    ours = LocationEncoder.from_pretrained(convert_checkpoint("sinr", pt, tmp_path / "enc"))
    assert ours.config.extra_dim == 20
    lonlat = sphere_points(torch.float32)
    env = torch.randn(len(lonlat), 20, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert max_abs_diff(ours(lonlat, env), ref(torch.cat((sin_cos(lonlat), env), 1))) < 1e-5


@pytest.mark.parametrize(("over", "match"), [
    ({"model": "LinNet"}, r"model = 'LinNet' cannot be converted; geocsp converts 'ResidualFCNet'"),
    ({"input_dim": 6}, r"input_dim = 6 does not fit input_enc = 'sin_cos'"),
    ({"depth": 3}, r"not the SINR ResidualFCNet layout .*unexpected 'feats.5.w1.bias'"),
])  # fmt: skip
def test_other_sinr_layouts_are_refused(tmp_path: Path, over: dict[str, Any], match: str) -> None:
    _, pt = save_sinr(sinr_params(), tmp_path / "model.pt")
    ckpt = torch.load(pt, weights_only=True)
    torch.save({**ckpt, "params": {**ckpt["params"], **over}}, pt)
    with pytest.raises(CheckpointError, match=match):
        convert_checkpoint("sinr", pt, tmp_path / "enc")
    assert not (tmp_path / "enc").exists()


def test_overwrite_replaces_an_encoder_only_never_other_files_or_the_input(tmp_path: Path) -> None:
    """`convert --overwrite` deleted a folder of unrelated files, and the input it was converting."""
    from geocsp.errors import ConfigError

    _, ckpt = save_sinr(sinr_params(), tmp_path / "model.pt")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.docx").write_text("keep")
    (tmp_path / "a.txt").write_text("keep")
    for out, match in ((tmp_path / "mine", r"holds files that are not a geocsp encoder's \(e\.g\. 'thesis\.docx'\)"),
                       (ckpt, r"holds the input"), (tmp_path, r"holds the input"),
                       (tmp_path / "a.txt", r"is a file; expected a directory")):
        with pytest.raises(ConfigError, match=match):
            convert_checkpoint("sinr", ckpt, out, overwrite=True)
    assert (tmp_path / "mine" / "thesis.docx").read_text() == "keep" and (tmp_path / "a.txt").read_text() == "keep"
    assert ckpt.is_file()
    convert_checkpoint("sinr", ckpt, tmp_path / "enc")
    convert_checkpoint("sinr", ckpt, tmp_path / "enc", overwrite=True)  # an encoder directory: replaced
    assert sorted(p.name for p in (tmp_path / "enc").iterdir()) == ["config.json", "model.safetensors"]
