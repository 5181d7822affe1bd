"""The pretrained registry without the geoclip package: names, cache paths, listing and refusals."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from geocsp import checkpoints, pretrained
from geocsp.cli.encoders import encoders
from geocsp.cli.main import cli
from geocsp.config import to_dict
from geocsp.errors import CheckpointError, ConfigError, MissingDependencyError, MissingFileError
from geocsp.nets import LocationEncoder
from geocsp.pretrained import registry
from geocsp.pretrained.geoclip import GEOCLIP_CONFIG, geoclip_state_dict
from geocsp.training.config import FinetuneConfig
from geocsp.training.finetune import check_init_architecture
from geocsp.training.presets import resolve_config


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("GEOCSP_CACHE", str(cache))
    return cache


@pytest.fixture
def no_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """The geoclip package is not installed (whether or not it is here)."""
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda name: None)


def test_names_resolve_and_existing_paths_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert pretrained.pretrained_name("geoclip") == "geoclip"
    assert pretrained.pretrained_name("GeoCLIP") == "geoclip"
    assert pretrained.pretrained_name("pretrained:geoclip") == "geoclip"
    assert pretrained.pretrained_name("runs/pre") is None
    (tmp_path / "geoclip").mkdir()
    assert pretrained.pretrained_name("geoclip") is None  # a directory of that name wins
    assert pretrained.pretrained_name("pretrained:geoclip") == "geoclip"
    with pytest.raises(ConfigError, match="unknown pretrained encoder 'geoclp'; did you mean 'geoclip'"):
        pretrained.pretrained_name("pretrained:geoclp")


def test_cache_path_names_the_file_hash(_cache: Path) -> None:
    card = pretrained.PRETRAINED.get("geoclip").obj.card
    assert pretrained.cache_path("geoclip") == _cache / "pretrained" / f"geoclip-{card.sha256[:12]}"
    assert len(card.sha256) == 64 and card.output_dim == 512 and card.licence == "MIT"


@pytest.mark.usefixtures("no_package")
def test_missing_package_is_one_line_naming_the_install() -> None:
    with pytest.raises(MissingDependencyError) as e:
        pretrained.load("geoclip")
    msg = str(e.value)
    assert "\n" not in msg and "pip install geoclip --no-deps" in msg
    with pytest.raises(MissingDependencyError, match="pip install geoclip --no-deps"):
        checkpoints.load_encoder("geoclip")


@pytest.mark.usefixtures("no_package")
def test_embed_cli_without_package_exits_2_with_one_line(tmp_path: Path) -> None:
    pts = tmp_path / "pts.csv"
    pts.write_text("lon,lat\n2.35,48.85\n")
    out = tmp_path / "e.parquet"
    res = CliRunner().invoke(cli, ["embed", "--encoder", "geoclip", str(pts), "--out", str(out)])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "pip install geoclip --no-deps" in lines[0], res.output
    assert not out.exists()


@pytest.mark.parametrize("args", [[], ["a.csv", "b.csv", "c.csv"], ["--encoder", "geoclip", "run", "a.csv"]])
def test_embed_cli_needs_run_or_encoder(tmp_path: Path, args: list[str]) -> None:
    res = CliRunner().invoke(cli, ["embed", *args, "--out", str(tmp_path / "e.npy")])
    assert res.exit_code == 2
    assert "expected" in res.output and "INPUT" in res.output


def test_missing_explicit_weights_file(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match=r"nope\.pth: weights file of pretrained encoder 'geoclip'"):
        pretrained.load("geoclip", weights=tmp_path / "nope.pth")


def test_foreign_file_is_refused_before_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"

    class _Canary:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (__import__("os").system, (f"touch {marker}",))

    evil = tmp_path / "location_encoder_weights.pth"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(_Canary(), protocol=2))
        z.writestr("archive/version", "3\n")
    with pytest.raises(CheckpointError, match="is not the released 'geoclip' weights"):
        pretrained.load("geoclip", weights=evil)
    assert not marker.exists()
    assert not pretrained.cache_path("geoclip").exists()


def test_foreign_layout_names_the_key() -> None:
    with pytest.raises(CheckpointError, match=r"f\.pth: not a GeoCLIP location-encoder state dict .*LocEnc0"):
        geoclip_state_dict({"weight": torch.zeros(2)}, "f.pth")


def test_corrupt_cache_says_how_to_rebuild() -> None:
    d = pretrained.cache_path("geoclip")
    d.mkdir(parents=True)
    (d / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"delete .* to convert the weights again"):
        pretrained.load("geoclip")


@pytest.mark.usefixtures("no_package")
def test_listing_shows_cards_and_status() -> None:
    res = CliRunner().invoke(encoders, ["--pretrained", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert [r["name"] for r in rows] == pretrained.PRETRAINED.names()
    row = rows[0]
    for key in ("source", "training_data", "licence", "input_convention", "output_dim", "sha256"):
        assert row[key], key
    assert row["status"] == "missing" and row["network"] == "multibranch"
    table = CliRunner().invoke(encoders, ["--pretrained"])
    assert table.exit_code == 0
    lines = table.output.splitlines()
    assert lines[0].split() == ["name", "output_dim", "licence", "status", "description"]
    assert lines[2].split()[:4] == ["geoclip", "512", "MIT", "missing"]


@pytest.mark.usefixtures("no_package")
def test_from_pretrained_names_go_through_the_registry() -> None:
    with pytest.raises(MissingDependencyError, match="pip install geoclip --no-deps"):
        LocationEncoder.from_pretrained("geoclip")
    with pytest.raises(ConfigError, match="did you mean 'geoclip'"):
        LocationEncoder.from_pretrained("pretrained:geoclp")
    with pytest.raises(CheckpointError):  # not a name, not a directory
        LocationEncoder.from_pretrained("no-such-encoder")


def test_model_overrides_make_a_preset_fit_the_init() -> None:
    """``finetune --preset geoworld-demo --init geoclip`` is refused (the preset's model is grid
    + FFN); with ``model_overrides("geoclip")`` it passes finetune's architecture check."""
    saved = to_dict(LocationEncoder(GEOCLIP_CONFIG).config)
    plain = resolve_config(FinetuneConfig, stage="finetune", preset="geoworld-demo", overrides=["init=geoclip"])
    with pytest.raises(ConfigError, match="the architecture comes from --init geoclip"):
        check_init_architecture(plain, saved)
    fixed = resolve_config(FinetuneConfig, stage="finetune", preset="geoworld-demo",
                           overrides=["init=geoclip", *pretrained.model_overrides("geoclip")])
    check_init_architecture(fixed, saved)
    assert fixed.model.dim == 512 and fixed.model.encoder == "geoclip"
