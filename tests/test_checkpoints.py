"""geocsp.checkpoints: finding and loading artifacts by their recorded kind."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from geocsp.checkpoints import (
    ARTIFACT_DIRS,
    ENCODER_DIR,
    PRIOR_DIR,
    find_artifact,
    load,
    load_encoder,
    load_prior,
    read_kind,
)
from geocsp.errors import CheckpointError
from geocsp.nets import LocationEncoder, LocationEncoderConfig
from geocsp.nets.location_encoder import KIND as ENCODER_KIND
from geocsp.prior import GeoPrior
from geocsp.prior.prior import KIND as PRIOR_KIND

LONLAT = torch.tensor([[10.0, 45.0], [-120.0, -30.0], [179.0, 89.0]])


def make_encoder() -> LocationEncoder:
    torch.manual_seed(0)
    return LocationEncoder(LocationEncoderConfig(encoder="sphereC+", dim=8)).eval()


def make_prior() -> GeoPrior:
    w = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    return GeoPrior(make_encoder(), w, ["a", "b", "c"]).eval()


def test_layout_constants() -> None:
    assert PRIOR_DIR == "prior" and ENCODER_DIR == "encoder"
    assert ARTIFACT_DIRS[PRIOR_KIND] == PRIOR_DIR and ARTIFACT_DIRS[ENCODER_KIND] == ENCODER_DIR


def test_prior_directory(tmp_path: Path) -> None:
    prior = make_prior()
    d = prior.save_pretrained(tmp_path / "p")
    assert read_kind(d) == PRIOR_KIND
    assert find_artifact(d) == (d, PRIOR_KIND)
    loaded = load(d)
    assert isinstance(loaded, GeoPrior) and loaded.classes == ["a", "b", "c"]
    torch.testing.assert_close(load_prior(d).probs(LONLAT), prior.probs(LONLAT))
    enc = load_encoder(d)  # the prior's encoder
    assert isinstance(enc, LocationEncoder)
    torch.testing.assert_close(enc(LONLAT), prior.encoder(LONLAT))


def test_run_directory_with_prior_and_encoder(tmp_path: Path) -> None:
    prior = make_prior()
    run = tmp_path / "run"
    prior.save_pretrained(run / PRIOR_DIR)
    encoder = make_encoder()
    with torch.no_grad():
        next(encoder.parameters()).add_(1.0)  # differs from the prior's encoder
    encoder.save_pretrained(run / ENCODER_DIR)
    assert find_artifact(run) == (run / PRIOR_DIR, PRIOR_KIND)  # registration order
    assert find_artifact(run, [ENCODER_KIND]) == (run / ENCODER_DIR, ENCODER_KIND)
    torch.testing.assert_close(load_prior(run).probs(LONLAT), prior.probs(LONLAT))
    # a fine-tune run's encoder is the prior's, preferred over encoder/
    torch.testing.assert_close(load_encoder(run)(LONLAT), prior.encoder(LONLAT))


def test_run_directory_with_encoder_only(tmp_path: Path) -> None:
    encoder = make_encoder()
    run = tmp_path / "run"
    encoder.save_pretrained(run / ENCODER_DIR)
    assert find_artifact(run) == (run / ENCODER_DIR, ENCODER_KIND)
    torch.testing.assert_close(load_encoder(run)(LONLAT), encoder(LONLAT))
    assert isinstance(load(run), LocationEncoder)
    with pytest.raises(CheckpointError, match="no fine-tuned prior found") as info:
        load_prior(run)
    assert str(run / PRIOR_DIR) in str(info.value)
    assert "run geocsp finetune first" in str(info.value)


def test_wrong_kind(tmp_path: Path) -> None:
    d = make_encoder().save_pretrained(tmp_path / "enc")
    assert read_kind(d) == ENCODER_KIND
    with pytest.raises(CheckpointError, match="no fine-tuned prior found"):
        load_prior(d)
    with pytest.raises(CheckpointError, match="found a checkpoint of kind 'location_encoder'"):
        find_artifact(d, [PRIOR_KIND])
    with pytest.raises(CheckpointError, match="custom message"):
        load(d, [PRIOR_KIND], "custom message")


def test_empty_directory(tmp_path: Path) -> None:
    assert read_kind(tmp_path) is None
    with pytest.raises(CheckpointError, match="no fine-tuned prior found"):
        load_prior(tmp_path)
    with pytest.raises(CheckpointError, match="no location encoder found"):
        load_encoder(tmp_path)
    with pytest.raises(CheckpointError, match="found no checkpoint"):
        find_artifact(tmp_path)
    with pytest.raises(CheckpointError, match="no location encoder found"):
        load_encoder(tmp_path / "missing")


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"kind": 3}', '{"other": "x"}'])
def test_read_kind_without_a_valid_kind_is_none(tmp_path: Path, text: str) -> None:
    (tmp_path / "config.json").write_text(text)
    assert read_kind(tmp_path) is None
    with pytest.raises(CheckpointError, match="no location encoder found"):
        load_encoder(tmp_path)


@pytest.mark.parametrize("text", ["{bad", "[1, 2]", "{}"])
def test_an_unreadable_config_is_named_not_reported_missing(tmp_path: Path, text: str) -> None:
    """A run whose prior/config.json is not JSON (or names no kind) is that file's error, not
    "no fine-tuned prior found ... run geocsp finetune first"."""
    run = tmp_path / "run"
    GeoPrior(make_encoder(), torch.zeros(2, 8), ["a", "b"]).save_pretrained(run / PRIOR_DIR)
    (run / PRIOR_DIR / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match=r"prior/config\.json: not a readable checkpoint config"):
        load_prior(run)


def test_the_sdm_run_subdirectory_named_before_geocsp_sdm_is_imported_is_the_registered_one() -> None:
    from geocsp import checkpoints
    from geocsp.sdm.model import KIND, MODEL_DIR

    assert checkpoints._UNIMPORTED_DIRS[KIND] == MODEL_DIR == checkpoints.ARTIFACT_DIRS[KIND]
    assert set(checkpoints.KIND_USES) == set(checkpoints.ARTIFACT_DIRS)  # every kind says what it is for
