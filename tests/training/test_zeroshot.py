"""The CSP zero-shot prior pooled with the fine-tuned prior (``finetune.zeroshot_pool``,
:mod:`geocsp.training.zeroshot`): the weight's choice, the data it reads, the saved prior, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from tests.training.test_crossfit import _watched, logged

import geocsp.training.zeroshot as zsm
from geocsp.checkpoints import load_prior
from geocsp.cli.main import cli
from geocsp.config import to_dict
from geocsp.data import GeoDataset, load_dataset
from geocsp.data.writer import SplitData, write_dataset
from geocsp.demo.tables import METHODS
from geocsp.errors import CheckpointError, ConfigError, DatasetError
from geocsp.experiments.provenance import run_key
from geocsp.prior.heads import CosineHead
from geocsp.prior.prior import Companion, GeoPrior
from geocsp.training import FinetuneConfig, PretrainConfig, finetune, pretrain, resolve_config
from geocsp.training.compat import config_dict_for_compare
from geocsp.training.export import export_onnx

TINY = ["device=cpu", "quiet=true", "model.dim=16", "model.network_args.hidden_dim=32",
        "model.encoder_args.num_scales=4", "data.batch_size=512"]


@pytest.fixture(scope="module")
def calib_ds(tmp_path_factory: pytest.TempPathFactory) -> GeoDataset:
    from geocsp.data import make_world

    torch.set_num_threads(1)
    return load_dataset(make_world("small", seed=0, calib_per_class=3, out=tmp_path_factory.mktemp("zw") / "w"))


@pytest.fixture(scope="module")
def pre(calib_ds: GeoDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pre") / "pre"
    pretrain(resolve_config(PretrainConfig, overrides=[*TINY, "data.epochs=1"]), calib_ds, out)
    return out


def _cfg(pre: Path, *extra: str) -> FinetuneConfig:
    return resolve_config(FinetuneConfig, overrides=[*TINY, "data.epochs=1", "ratio=0.1", f"init={pre}",
                                                     "zeroshot_pool=true", *extra])


def _prior(q: int, seed: int) -> GeoPrior:
    from geocsp.nets import LocationEncoder, LocationEncoderConfig

    torch.manual_seed(seed)
    enc = LocationEncoder(LocationEncoderConfig(dim=8, encoder_args={"num_scales": 4}))
    return GeoPrior(enc, torch.randn(q, 8), [f"c{i}" for i in range(q)]).eval()


def test_weight_scores_against_a_direct_computation() -> None:
    f, z = _prior(5, 0), _prior(5, 1)
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.uniform(-180, 180, 40), rng.uniform(-80, 80, 40)])
    y = rng.integers(0, 5, 40)
    got = zsm.weight_scores(f.logits, z.logits, x, y, weights=(0.0, 0.5))
    with torch.no_grad():
        fx, zx = f.logits(x).double(), z.logits(x).double()
    for w in (0.0, 0.5):
        ls = torch.nn.functional.logsigmoid(fx + w * zx)
        ll = (ls[torch.arange(40), torch.as_tensor(y)] - torch.logsumexp(ls, 1)).numpy()
        per_class = [ll[y == c].mean() for c in np.unique(y)]  # class-balanced
        assert got[f"{w:g}"] == pytest.approx(float(np.mean(per_class)), abs=1e-9)


def test_companion_pools_saves_and_reloads(tmp_path: Path) -> None:
    f, z = _prior(4, 0), _prior(4, 1)
    pooled = GeoPrior(f.encoder, f.classifier.weight.detach(), f.classes, companion=Companion(z, 0.25)).eval()
    x = np.array([[0.0, 0.0], [10.0, -20.0], [-170.0, 60.0]])
    with torch.no_grad():
        assert torch.allclose(pooled.logits(x), f.logits(x) + 0.25 * z.logits(x))
        pooled.save_pretrained(tmp_path / "p")
        back = GeoPrior.from_pretrained(tmp_path / "p")
        assert back.has_companion and torch.allclose(back.logits(x), pooled.logits(x))
    with pytest.raises(ConfigError, match="same classes"):
        GeoPrior(f.encoder, torch.randn(3, 8), companion=Companion(z, 1.0))
    with pytest.raises(ConfigError, match="without a companion of its own"):
        GeoPrior(f.encoder, f.classifier.weight.detach(), f.classes, companion=Companion(pooled, 1.0))
    with pytest.raises(ConfigError, match="finite number >= 0"):
        Companion(z, -1.0)
    with pytest.raises(ConfigError, match="cannot be exported to ONNX"):
        export_onnx(tmp_path / "p", tmp_path / "p.onnx")
    meta = json.loads((tmp_path / "p" / "config.json").read_text())
    meta["companion"] = {"weight": "heavy"}
    (tmp_path / "p" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="companion"):
        GeoPrior.from_pretrained(tmp_path / "p")


def test_run_pools_the_zero_shot_prior_chosen_on_calib_before_val(calib_ds: GeoDataset, pre: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    monkeypatch.setattr(zsm, "weight_scores", logged(zsm.weight_scores, log, "WEIGHT"))
    m = finetune(_cfg(pre), _watched(calib_ds, log), tmp_path / "run")
    at = log.index("WEIGHT")
    assert not [e for e in log[:at] if e.startswith("val.")] and any(e.startswith("calib.") for e in log[:at])
    rec = m["zeroshot_pool"]
    scores = rec["weight_scores"]
    assert set(scores) == {f"{w:g}" for w in zsm.ZS_WEIGHTS} and rec["prototypes"]["scale"] > 0
    assert scores[f"{rec['weight']:g}"] == max(scores.values())  # the best calib score
    prior = load_prior(tmp_path / "run")
    assert prior.has_companion and prior.companion is not None and prior.companion.weight == rec["weight"]
    assert isinstance(prior.companion.prior.classifier, CosineHead)
    # the companion is the csp-zeroshot method's prior: same subset, loss and seed
    zs = finetune(resolve_config(FinetuneConfig, overrides=[*TINY, "data.epochs=0", "ratio=0.1", f"init={pre}",
                                                            "head_init=prototypes"]), calib_ds, tmp_path / "zs")
    assert zs["prototypes"] == rec["prototypes"]
    x = np.array([[5.0, 5.0], [-60.0, 30.0]])
    with torch.no_grad():
        assert torch.allclose(prior.companion.prior.logits(x), load_prior(tmp_path / "zs").logits(x), atol=1e-5)
    r = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "run"), "--data", str(calib_ds.root), "--json",
                                 "--out", str(tmp_path / "e.json")])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["location"] == m["location"]  # the saved pooled prior evaluates the same


def test_refusals_before_any_work(calib_ds: GeoDataset, dataset: GeoDataset, pre: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be combined with kde"):
        _cfg(pre, "kde.shrink=cv")
    no_init = resolve_config(FinetuneConfig, overrides=[*TINY, "data.epochs=1", "zeroshot_pool=true"])
    with pytest.raises(ConfigError, match="needs --init"):
        finetune(no_init, calib_ds, tmp_path / "a")
    with pytest.raises(ConfigError, match="labelled 'calib' split"):
        finetune(_cfg(pre), dataset, tmp_path / "b")  # the small world has no calib split
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    # init without an image projection (a fine-tuning run): refused before training, naming the option
    ft = tmp_path / "ft"
    finetune(resolve_config(FinetuneConfig, overrides=[*TINY, "data.epochs=1", "ratio=0.1"]), calib_ds, ft)
    with pytest.raises(ConfigError, match=r"finetune.zeroshot_pool needs init = a CSP pre-training run"):
        finetune(_cfg(ft), calib_ds, tmp_path / "c")
    # a train split without image features: the prototypes cannot be formed
    table = pd.DataFrame({"lon": [0.0, 10.0, 20.0], "lat": [0.0, 5.0, 9.0], "label": ["a", "b", "a"]})
    bare = load_dataset(write_dataset(tmp_path / "bare", {"train": SplitData(table), "calib": SplitData(table)},
                                      ["a", "b"]))
    with pytest.raises(DatasetError, match=r"finetune\.zeroshot_pool: the train split has no image features"):
        finetune(_cfg(pre), bare, tmp_path / "d")
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


def test_companion_takes_the_extra_features_its_encoder_needs() -> None:
    from geocsp.nets import LocationEncoder, LocationEncoderConfig

    torch.manual_seed(0)
    enc = LocationEncoder(LocationEncoderConfig(dim=8, extra_dim=2, encoder_args={"num_scales": 4}))
    f, z = _prior(3, 0), GeoPrior(enc, torch.randn(3, 8), ["c0", "c1", "c2"]).eval()
    x, extra = np.array([[0.0, 0.0], [10.0, -20.0]]), torch.randn(2, 2)
    with torch.no_grad():
        pooled = GeoPrior(z.encoder, z.classifier.weight.detach(), z.classes, companion=Companion(f, 0.5)).eval()
        assert torch.allclose(pooled.logits(x, extra), z.logits(x, extra) + 0.5 * f.logits(x))
        other = GeoPrior(f.encoder, f.classifier.weight.detach(), f.classes, companion=Companion(z, 0.5)).eval()
        assert torch.allclose(other.logits(x, extra), f.logits(x) + 0.5 * z.logits(x, extra))

    class Bare(torch.nn.Module):  # a duck-typed encoder: forward and dim, no config
        dim = 8

        def forward(self, lonlat: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
            return torch.cat([lonlat, lonlat, lonlat, lonlat], 1) / 90.0

    bare = GeoPrior(Bare(), torch.randn(3, 8), ["c0", "c1", "c2"]).eval()
    with torch.no_grad():
        pooled = GeoPrior(f.encoder, f.classifier.weight.detach(), f.classes, companion=Companion(bare, 1.0)).eval()
        assert torch.allclose(pooled.logits(x), f.logits(x) + bare.logits(x))


def test_added_keys_at_default_keep_run_hashes(pre: Path) -> None:
    new = to_dict(resolve_config(FinetuneConfig, overrides=TINY))
    old = {k: v for k, v in new.items() if k not in ("zeroshot_pool", "fusion_criterion")}
    ident = {"dataset": "x"}
    assert run_key(ident, old) == run_key(ident, new) and config_dict_for_compare(old) == config_dict_for_compare(new)
    for key, value in (("zeroshot_pool", True), ("fusion_criterion", "nll")):
        on = {**new, key: value}
        assert run_key(ident, on) != run_key(ident, new) and config_dict_for_compare(on) != config_dict_for_compare(old)
    assert "csp-zs-pool" in METHODS
