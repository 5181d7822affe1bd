"""geocsp.io: atomic files and directories, fault points, stray temporaries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from geocsp.faults import FAULT_ENV, fault_point
from geocsp.io import (
    atomic_dir,
    atomic_write_text,
    clean_temporaries,
    is_temporary,
    load_checkpoint_dir,
    save_checkpoint_dir,
    temp_name,
)


def _names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_atomic_dir_appears_complete_and_replaces_as_a_whole(tmp_path: Path) -> None:
    target = tmp_path / "art"
    with atomic_dir(target) as tmp:
        assert is_temporary(tmp.name) and tmp.parent == tmp_path and not target.exists()
        (tmp / "a.txt").write_text("1")
        (tmp / "stale.txt").write_text("x")
    assert _names(target) == ["a.txt", "stale.txt"]
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("2")
    assert _names(target) == ["a.txt"] and (target / "a.txt").read_text() == "2"
    assert _names(tmp_path) == ["art"]  # nothing left beside it


def test_atomic_dir_failure_keeps_the_old_directory(tmp_path: Path) -> None:
    target = tmp_path / "art"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(OSError, match="disk"), atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("new, half")
        raise OSError(28, "disk full")
    assert (target / "a.txt").read_text() == "old"
    assert _names(tmp_path) == ["art"]


def test_kill_between_aside_and_rename_is_restored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "art"
    save_checkpoint_dir(target, {"w": torch.zeros(2)}, {"v": 1})
    monkeypatch.setenv(FAULT_ENV, "artifact.aside:1:INT")  # an interrupt: in-process stand-in for a kill
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint_dir(target, {"w": torch.ones(2)}, {"v": 2})
    assert not target.exists()
    [old] = [p for p in tmp_path.iterdir() if is_temporary(p.name)]
    assert old.name.endswith(".old")
    assert clean_temporaries(tmp_path) == [old]
    tensors, cfg = load_checkpoint_dir(target)  # the complete previous version is back
    assert cfg == {"v": 1} and torch.equal(tensors["w"], torch.zeros(2))


def test_clean_temporaries_only_touches_the_naming_scheme(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("k")
    (tmp_path / ".hidden").write_text("k")
    (tmp_path / "x.tmp").write_text("k")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / temp_name("f.json")).write_text("{")
    half = tmp_path / temp_name("d")
    half.mkdir()
    (half / "inner").write_text("x")
    (tmp_path / "done").mkdir()
    (tmp_path / temp_name("done", "old")).mkdir()  # target exists: the old copy is dropped
    removed = clean_temporaries(tmp_path)
    assert len(removed) == 3
    assert _names(tmp_path) == [".hidden", "done", "keep.txt", "sub", "x.tmp"]
    assert _names(sub) == []
    assert clean_temporaries(tmp_path / "missing") == []


def test_atomic_write_text_leaves_no_temporary_on_error(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    atomic_write_text(tmp_path / "f.txt", "one")
    monkeypatch.setenv(FAULT_ENV, "t.before:1:INT")
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(tmp_path / "f.txt", "two", fault="t")
    assert (tmp_path / "f.txt").read_text() == "one" and _names(tmp_path) == ["f.txt"]


def test_fault_point_is_a_no_op_unless_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FAULT_ENV, raising=False)
    fault_point("x.before")
    monkeypatch.setenv(FAULT_ENV, "y.before:2:INT")
    fault_point("x.before")
    fault_point("y.before")  # first hit: not yet
    with pytest.raises(KeyboardInterrupt):
        fault_point("y.before")
    fault_point("y.before")  # only the n-th hit fires


def test_save_checkpoint_dir_round_trip(tmp_path: Path) -> None:
    d = save_checkpoint_dir(tmp_path / "m", {"a": torch.arange(3.0)}, {"kind": "k"})
    tensors, cfg = load_checkpoint_dir(d)
    assert torch.equal(tensors["a"], torch.arange(3.0)) and cfg == {"kind": "k"}
    assert json.loads((d / "config.json").read_text()) == {"kind": "k"}


def test_an_unwritable_folder_is_reported_on_the_asked_for_path(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The error names ``out/ds`` (what the user passed), not the hidden ``.ds.<random>.tmp`` beside it."""
    import tempfile

    from geocsp.io import atomic_dir, atomic_write_text

    def refuse(*_a: object, **_k: object) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / ".x.abc.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError) as info:
        atomic_write_text(tmp_path / "x.csv", "a")
    assert info.value.filename == str(tmp_path / "x.csv") and info.value.strerror == "Permission denied"
    monkeypatch.setattr(Path, "mkdir", lambda self, *a, **k: refuse() if self.name.endswith(".tmp") else None)
    with pytest.raises(PermissionError) as info:
        with atomic_dir(tmp_path / "ds"):
            pass
    assert info.value.filename == str(tmp_path / "ds")


def test_a_directory_at_the_target_is_named_and_left_alone(tmp_path: Path) -> None:
    """The final rename over a directory: the error names the path asked for; no temporary is left."""
    (tmp_path / "p.csv").mkdir()
    (tmp_path / "p.csv" / "keep").write_text("k")
    with pytest.raises(OSError) as info:
        atomic_write_text(tmp_path / "p.csv", "a")
    assert info.value.filename == str(tmp_path / "p.csv") and getattr(info.value, "filename2", None) is None
    assert _names(tmp_path) == ["p.csv"] and (tmp_path / "p.csv" / "keep").read_text() == "k"


def test_a_cache_path_that_is_a_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Was `.../land_mask: Not a directory` from deep inside the land mask's first use."""
    from geocsp.errors import ConfigError
    from geocsp.io import cache_dir

    (tmp_path / "cache").write_text("")
    monkeypatch.setenv("GEOCSP_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ConfigError, match=r"cache: the geocsp cache \(GEOCSP_CACHE\) is not a directory"):
        cache_dir()
    monkeypatch.setenv("GEOCSP_CACHE", str(tmp_path / "new"))
    assert cache_dir() == tmp_path / "new"  # absent: created by whoever writes first
