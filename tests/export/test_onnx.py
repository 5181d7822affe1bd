"""``geocsp export onnx``: parity with geocsp under ONNX Runtime, the sidecar, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from tests.export.conftest import CLASSES, tiny_encoder

from geocsp.checkpoints import load_encoder, load_prior
from geocsp.cli.main import cli
from geocsp.errors import ConfigError
from geocsp.training.export import export_onnx, onnx_session, random_lonlat

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def run(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_prior_exports_probs_with_parity(prior_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "prior.onnx"
    r = run("export", "onnx", prior_run, "--out", out)
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "prior.json").read_text())
    assert meta["kind"] == "geoprior" and meta["classes"] == CLASSES
    assert meta["input"]["name"] == "lonlat" and meta["input"]["dtype"] == "float32"
    assert meta["output"] == {**meta["output"], "name": "probs", "shape": ["batch", len(CLASSES)]}
    assert meta["source_run"] == str(prior_run.resolve()) and meta["geocsp_version"]
    assert meta["exporter"] in ("dynamo", "torchscript") and meta["parity"]["max_abs_diff"] <= 1e-5
    sess = onnx_session(out)
    assert [i.name for i in sess.get_inputs()] == ["lonlat"] and [o.name for o in sess.get_outputs()] == ["probs"]
    pts = random_lonlat(10_000, seed=7)
    got = sess.run(["probs"], {"lonlat": pts})[0]
    with torch.no_grad():
        ref = load_prior(prior_run).probs(torch.from_numpy(pts)).numpy()
    assert got.shape == (10_000, len(CLASSES)) and np.abs(got - ref).max() <= 1e-5
    for n in (1, 3):  # the batch dimension is dynamic
        assert sess.run(["probs"], {"lonlat": pts[:n]})[0].shape == (n, len(CLASSES))


def test_encoder_exports_embedding_with_parity(encoder_dir: Path, tmp_path: Path) -> None:
    meta = export_onnx(encoder_dir, tmp_path / "enc.onnx")
    assert meta["kind"] == "location_encoder" and meta["classes"] is None
    assert meta["output"]["name"] == "embedding" and meta["output"]["shape"] == ["batch", 32]
    pts = random_lonlat(10_000, seed=3)
    got = onnx_session(tmp_path / "enc.onnx").run(["embedding"], {"lonlat": pts})[0]
    with torch.no_grad():
        ref = load_encoder(encoder_dir)(torch.from_numpy(pts)).numpy()
    assert np.abs(got - ref).max() <= 1e-5 * max(1.0, float(np.abs(ref).max()))


def test_torchscript_fallback_when_dynamo_fails(prior_run: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    real = torch.onnx.export

    def no_dynamo(*args: object, **kw: object) -> object:
        if kw.get("dynamo"):
            raise RuntimeError("dynamo exporter unavailable")
        return real(*args, **kw)

    monkeypatch.setattr(torch.onnx, "export", no_dynamo)
    meta = export_onnx(prior_run, tmp_path / "p.onnx", check_points=2000)
    assert meta["exporter"] == "torchscript" and meta["parity"]["max_abs_diff"] <= 1e-5


def _refused(tmp_path: Path, *args: object) -> str:
    out = tmp_path / "out"
    r = run("export", "onnx", *args, "--out", out / "m.onnx")
    assert r.exit_code == 2, r.output
    assert len(r.output.strip().splitlines()) == 1 and r.output.startswith("geocsp: error: ")
    assert not out.exists() or not any(out.iterdir())  # nothing written, no temporaries
    return r.output


def test_run_without_an_exportable_artifact_is_one_line(tmp_path: Path) -> None:
    sdm = tmp_path / "sdmrun" / "model"
    sdm.mkdir(parents=True)
    (sdm / "config.json").write_text(json.dumps({"kind": "sdm"}))  # a corrupt SDM: no weights, no config
    assert _refused(tmp_path, sdm.parent)
    (tmp_path / "empty").mkdir()
    assert "no prior, SDM or location encoder to export" in _refused(tmp_path, tmp_path / "empty")
    assert "no prior, SDM or location encoder to export" in _refused(tmp_path, tmp_path / "missing")


def test_time_inputs_refused(tmp_path: Path) -> None:
    enc = tiny_encoder(extra_dim=2)
    enc.save_pretrained(tmp_path / "timeenc")
    assert "2 inputs besides (lon, lat)" in _refused(tmp_path, tmp_path / "timeenc")


def test_bad_out_and_existing_out(prior_run: Path, tmp_path: Path) -> None:
    r = run("export", "onnx", prior_run, "--out", tmp_path / "m.pt")
    assert r.exit_code == 2 and "expected a .onnx file" in r.output
    (tmp_path / "m.json").write_text("{}")
    r = run("export", "onnx", prior_run, "--out", tmp_path / "m.onnx")
    assert r.exit_code == 2 and "exists; pass --overwrite" in r.output
    assert not (tmp_path / "m.onnx").exists() and (tmp_path / "m.json").read_text() == "{}"


def test_parity_failure_writes_nothing(prior_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="differs from geocsp"):
        export_onnx(prior_run, tmp_path / "p.onnx", atol=-1.0, check_points=100)
    assert list(tmp_path.iterdir()) == []


def _sdm_run(root: Path, *, inputs: str = "position", use_time: bool = False, kde: bool = False) -> Path:
    """An SDM run with random weights (or a KDE of a few presences): export needs no fitting."""
    from geocsp.sdm.covariates import Standardizer
    from geocsp.sdm.kde import SpeciesKDE
    from geocsp.sdm.model import SDM, FittedSDM, SDMConfig

    torch.manual_seed(0)
    species = CLASSES[:3]
    k = 0 if inputs == "position" else 2
    model = None if kde else SDM(SDMConfig(inputs=inputs, num_species=3, num_covariates=k, use_time=use_time)).eval()
    std = Standardizer(tuple(f"c{i}" for i in range(k)), (0.0,) * k, (1.0,) * k)
    pts = np.random.default_rng(0).uniform([-10, 40], [10, 50], (30, 2))
    density = SpeciesKDE.fit(pts, np.array(species * 10), None, bandwidth=50.0) if kde else None
    FittedSDM(model, species, std, kde=density).save(root)
    return root


@pytest.mark.parametrize("use_time", [False, True])
def test_position_sdm_exports_with_parity(tmp_path: Path, use_time: bool) -> None:
    from geocsp.sdm.model import FittedSDM

    run_dir = _sdm_run(tmp_path / "sdm", use_time=use_time)
    meta = export_onnx(run_dir, tmp_path / "sdm.onnx", check_points=500)
    assert meta["kind"] == "sdm" and meta["classes"] == CLASSES[:3] and meta["parity"]["max_abs_diff"] < 1e-5
    assert [i["name"] for i in meta["inputs"]] == (["lonlat", "doy"] if use_time else ["lonlat"])
    pts = random_lonlat(257, seed=5)
    doy = np.where(np.arange(257) % 7 == 0, np.nan, np.arange(257) % 365 + 1).astype(np.float32)
    feeds = {"lonlat": pts, **({"doy": doy} if use_time else {})}
    got = onnx_session(tmp_path / "sdm.onnx").run(["probs"], feeds)[0]
    fitted = FittedSDM.load(run_dir)
    want = fitted.predict(pts, np.zeros((257, 0)), doy if use_time else np.full(257, np.nan))
    assert got.shape == (257, 3) and np.abs(got - want).max() < 1e-5  # = geocsp sdm predict


@pytest.mark.parametrize(("kind", "message"), [
    ({"kde": True}, "a 'kde' SDM has no network alone to export"),
    ({"inputs": "both"}, "ONNX export supports position-only SDMs"),
])  # fmt: skip
def test_sdm_runs_that_cannot_be_exported_are_one_line(tmp_path: Path, kind: dict, message: str) -> None:
    assert message in _refused(tmp_path, _sdm_run(tmp_path / "sdm", **kind))
