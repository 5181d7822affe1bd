"""EXIF GPS reader: hemisphere refs, DMS rationals, photos without GPS, unreadable files."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, TiffImagePlugin

from geocsp.data import load_dataset
from geocsp.data.readers.exif import import_photos, read_gps, read_photo_gps, scan_photos
from geocsp.errors import ConfigError, DatasetError, MissingFileError


def _dms(value: float) -> tuple:
    """Degrees -> (deg, min, sec) rationals as a camera writes them (sec in 1/100)."""
    v = abs(value)
    d = int(v)
    m = int((v - d) * 60)
    s = Fraction(round((v - d - m / 60) * 3600 * 100), 100)
    R = TiffImagePlugin.IFDRational
    return (R(d, 1), R(m, 1), R(s.numerator, s.denominator))


def write_photo(path: Path, lonlat: tuple[float, float] | None, size=(24, 16), **gps_extra) -> Path:
    """A JPEG with (optionally) GPS EXIF; returns its path."""
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), np.uint8))
    exif = Image.Exif()
    if lonlat is not None:
        lon, lat = lonlat
        exif[0x8825] = {1: "N" if lat >= 0 else "S", 2: _dms(lat),
                        3: "E" if lon >= 0 else "W", 4: _dms(lon), **gps_extra}
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, exif=exif)
    return path


def _expected(value: float) -> float:
    """Float64 reference of what the DMS rationals written by :func:`_dms` encode."""
    d, m, s = (float(x) for x in _dms(value))
    return math.copysign(d + m / 60 + s / 3600, value)


@pytest.mark.parametrize("lonlat", [(11.8851, 43.4674), (-73.9857, 40.7484),
                                    (151.2153, -33.8568), (-58.3816, -34.6037)])
def test_read_gps_hemispheres(tmp_path: Path, lonlat: tuple[float, float]) -> None:
    p = write_photo(tmp_path / "a.jpg", lonlat)
    lon, lat = read_gps(p)
    assert lon == pytest.approx(_expected(lonlat[0]), abs=1e-12)
    assert lat == pytest.approx(_expected(lonlat[1]), abs=1e-12)
    assert abs(lon - lonlat[0]) < 1e-5 and abs(lat - lonlat[1]) < 1e-5


def test_read_gps_none_and_errors(tmp_path: Path) -> None:
    assert read_gps(write_photo(tmp_path / "nogps.jpg", None)) is None
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(DatasetError, match=r"bad\.jpg: cannot read image"):
        read_gps(bad)
    with pytest.raises(MissingFileError, match="photo not found"):
        read_gps(tmp_path / "missing.jpg")


def test_read_gps_invalid_values_are_none(tmp_path: Path) -> None:
    R = TiffImagePlugin.IFDRational
    p = write_photo(tmp_path / "zero_den.jpg", (10.0, 20.0))
    img = Image.open(p)
    exif = img.getexif()
    gps = dict(exif.get_ifd(0x8825))
    gps[2] = (R(95, 1), R(0, 1), R(0, 1))  # latitude 95 degrees
    exif[0x8825] = gps
    img.save(tmp_path / "out_of_range.jpg", exif=exif)
    assert read_gps(tmp_path / "out_of_range.jpg") is None


def test_scan_photos_lists_gpsless_and_unreadable(tmp_path: Path) -> None:
    write_photo(tmp_path / "oak" / "1.jpg", (2.35, 48.85))
    write_photo(tmp_path / "oak" / "2.jpg", None)
    write_photo(tmp_path / "pine" / "3.JPG", (-3.7, 40.4))
    (tmp_path / "pine" / "broken.jpg").write_bytes(b"\xff\xd8garbage")
    (tmp_path / "notes.txt").write_text("not an image")
    table, no_gps, unreadable, invalid = scan_photos(tmp_path)
    assert table["image"].tolist() == ["oak/1.jpg", "oak/2.jpg", "pine/3.JPG"]
    assert table["label"].tolist() == ["oak", "oak", "pine"]
    assert no_gps == ["oak/2.jpg"] and unreadable == ["pine/broken.jpg"] and invalid == []
    assert np.isnan(table.loc[1, ["lon", "lat"]].to_numpy(float)).all()
    assert table.loc[2, "lon"] == pytest.approx(-3.7, abs=1e-5)
    flat, _, _, _ = scan_photos(tmp_path / "oak", recursive=False)
    assert "label" not in flat.columns and len(flat) == 2
    with pytest.raises(MissingFileError, match="image folder not found"):
        scan_photos(tmp_path / "nope")


def test_from_photos_cli(tmp_path: Path) -> None:
    from geocsp.cli.data_photos import from_photos_cmd
    from geocsp.data import load_dataset

    write_photo(tmp_path / "p" / "a.jpg", (11.88, 43.46))
    write_photo(tmp_path / "p" / "b.jpg", None)
    res = CliRunner().invoke(from_photos_cmd, [str(tmp_path / "p"), "--out", str(tmp_path / "ds")])
    assert res.exit_code == 0, res.output
    assert "no GPS: b.jpg" in res.output and "2 photos" in res.output
    split = load_dataset(tmp_path / "ds").split("train")
    assert split.has_location.tolist() == [True, False]


@pytest.mark.shared
def test_shared_exif_photos(shared_data: Path) -> None:
    table, no_gps, unreadable, invalid = scan_photos(shared_data / "exif_gps_photos")
    assert len(table) == 9 and no_gps == [] and unreadable == [] and invalid == []
    assert table["lat"].between(43.4, 43.5).all() and table["lon"].between(11.8, 11.9).all()


def _with_gps(src: Path, dst: Path, **tags) -> Path:
    img = Image.open(src)
    exif = img.getexif()
    gps = dict(exif.get_ifd(0x8825))
    gps.update({int(k[1:]): v for k, v in tags.items()})
    exif[0x8825] = gps
    img.save(dst, exif=exif)
    return dst


def test_invalid_gps_is_listed_apart_from_no_gps(tmp_path: Path) -> None:

    R = TiffImagePlugin.IFDRational
    good = write_photo(tmp_path / "p" / "a.jpg", (11.88, 43.46))
    write_photo(tmp_path / "p" / "b.jpg", None)
    _with_gps(good, tmp_path / "p" / "c.jpg", t2=(R(95, 1), R(0, 1), R(0, 1)))  # latitude 95
    _with_gps(good, tmp_path / "p" / "d.jpg", t4=(R(200, 1), R(0, 1), R(0, 1)))  # longitude 200
    assert read_photo_gps(tmp_path / "p" / "c.jpg").problem == "latitude 95 outside [-90, 90]"
    assert read_photo_gps(tmp_path / "p" / "b.jpg") == (None, None)
    table, no_gps, unreadable, invalid = scan_photos(tmp_path / "p")
    assert no_gps == ["b.jpg"] and unreadable == []
    assert invalid == ["c.jpg: latitude 95 outside [-90, 90]", "d.jpg: longitude 200 outside [-180, 180]"]
    assert table["lon"].isna().tolist() == [False, True, True, True]  # kept, with no location
    path, scan = import_photos(tmp_path / "p", tmp_path / "ds")
    assert scan.invalid_gps == invalid
    ds = load_dataset(path)
    assert ds.manifest["provenance"]["invalid_gps"] == invalid
    assert ds.manifest["provenance"]["without_gps"] == ["b.jpg"]
    with pytest.raises(ConfigError, match="ds: exists; pass --overwrite"):
        import_photos(tmp_path / "p", tmp_path / "ds")
    import_photos(tmp_path / "p", tmp_path / "ds", overwrite=True)


def test_from_photos_cli_lists_invalid_gps_and_refuses_existing(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from geocsp.cli.main import cli

    R = TiffImagePlugin.IFDRational
    good = write_photo(tmp_path / "p" / "a.jpg", (11.88, 43.46))
    _with_gps(good, tmp_path / "p" / "c.jpg", t2=(R(95, 1), R(0, 1), R(0, 1)))
    res = CliRunner().invoke(cli, ["data", "from-photos", str(tmp_path / "p"), "--out", str(tmp_path / "ds")])
    assert res.exit_code == 0, res.output
    assert "2 photos" in res.output and "(1 with GPS)" in res.output
    assert "invalid GPS: c.jpg: latitude 95 outside [-90, 90]" in res.output
    again = CliRunner().invoke(cli, ["data", "from-photos", str(tmp_path / "p"), "--out", str(tmp_path / "ds")])
    assert again.exit_code == 2 and "exists; pass --overwrite" in again.output
    over = CliRunner().invoke(cli, ["data", "from-photos", str(tmp_path / "p"), "--out", str(tmp_path / "ds"),
                                    "--overwrite"])
    assert over.exit_code == 0, over.output
