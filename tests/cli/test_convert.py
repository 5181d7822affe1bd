"""``geocsp convert KIND FILE --out DIR``: a converted encoder, and every refusal in one line.

Bad input — a pickle with code, a truncated file, a checkpoint of another kind or shape, a
missing file, an existing output — exits 2 with one ``geocsp: error:`` line and writes
nothing. The checkpoints are SINR-layout files built here (tests/pretrained/test_convert_sinr.py
checks the conversion against SINR's published architecture).
"""

from __future__ import annotations

import argparse
import os
import pickle
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from tests.pretrained.test_convert_sinr import save_sinr, sinr_params

from geocsp.cli.main import cli


class _RunsCode:
    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.canary}",))


@pytest.fixture
def sinr_pt(tmp_path: Path) -> Path:
    return save_sinr(sinr_params(), tmp_path / "model.pt")[1]


def _refused(argv: list[str], match: str, out: Path) -> None:
    res = CliRunner().invoke(cli, argv)
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geocsp: error: "), res.stderr
    assert match in lines[0], lines[0]
    assert "Traceback" not in res.output
    assert not out.exists()


def test_convert_then_embed(tmp_path: Path, sinr_pt: Path) -> None:
    enc = tmp_path / "enc"
    res = CliRunner().invoke(cli, ["convert", "sinr", str(sinr_pt), "--out", str(enc)])
    assert res.exit_code == 0, res.output
    assert (enc / "model.safetensors").is_file() and "SINR encoder" in res.output
    pts = tmp_path / "pts.csv"
    pts.write_text("lon,lat\n2.35,48.85\n-74.0,40.7\n")
    res = CliRunner().invoke(cli, ["embed", str(enc), str(pts), "--out", str(tmp_path / "e.parquet")])
    assert res.exit_code == 0, res.output
    assert pd.read_parquet(tmp_path / "e.parquet").shape == (2, 2 + 64)


def test_existing_output_needs_overwrite(tmp_path: Path, sinr_pt: Path) -> None:
    enc = tmp_path / "enc"
    assert CliRunner().invoke(cli, ["convert", "sinr", str(sinr_pt), "--out", str(enc)]).exit_code == 0
    before = (enc / "model.safetensors").read_bytes()
    res = CliRunner().invoke(cli, ["convert", "sinr", str(sinr_pt), "--out", str(enc)])
    assert res.exit_code == 2 and "exists; pass --overwrite" in res.stderr
    assert (enc / "model.safetensors").read_bytes() == before
    assert CliRunner().invoke(cli, ["convert", "sinr", str(sinr_pt), "--out", str(enc), "--overwrite"]).exit_code == 0


def test_pickle_with_code_is_refused_and_never_runs(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps({"state_dict": {}, "params": _RunsCode(canary)}, protocol=2))
    _refused(["convert", "sinr", str(bad), "--out", str(tmp_path / "enc")],
             f"refused: it needs {os.system.__module__}.system to load", tmp_path / "enc")
    bad.write_bytes(pickle.dumps({"state_dict": {}, "params": _RunsCode(canary)}))  # protocol 5: opcodes refused
    _refused(["convert", "sinr", str(bad), "--out", str(tmp_path / "enc")],
             "not a torch checkpoint the restricted loader can read (Unsupported operand", tmp_path / "enc")
    assert not canary.exists()


def test_objects_other_than_tensors_are_refused(tmp_path: Path, sinr_pt: Path) -> None:
    ckpt = torch.load(sinr_pt, weights_only=True)
    torch.save({**ckpt, "params": argparse.Namespace(**ckpt["params"])}, tmp_path / "ns.pt")
    _refused(["convert", "sinr", str(tmp_path / "ns.pt"), "--out", str(tmp_path / "enc")],
             "refused: it needs argparse.Namespace to load", tmp_path / "enc")


def test_truncated_file(tmp_path: Path, sinr_pt: Path) -> None:
    data = sinr_pt.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    _refused(["convert", "sinr", str(tmp_path / "cut.pt"), "--out", str(tmp_path / "enc")],
             "not a readable torch checkpoint", tmp_path / "enc")


def test_checkpoint_of_another_kind(tmp_path: Path, sinr_pt: Path) -> None:
    _refused(["convert", "satclip", str(sinr_pt), "--out", str(tmp_path / "enc")],
             "not a SatCLIP Lightning checkpoint (no 'hyper_parameters' mapping; found params, state_dict)",
             tmp_path / "enc")
    _refused(["convert", "csp", str(sinr_pt), "--out", str(tmp_path / "enc")],
             "spa_enc_type' is missing", tmp_path / "enc")


def test_checkpoint_of_another_shape(tmp_path: Path) -> None:
    pt = save_sinr(sinr_params(), tmp_path / "model.pt")[1]
    ckpt = torch.load(pt, weights_only=True)
    torch.save({**ckpt, "params": {**ckpt["params"], "num_filts": 32}}, pt)
    _refused(["convert", "sinr", str(pt), "--out", str(tmp_path / "enc")],
             "tensor for 'network.input.weight' of the SINR checkpoint has shape (64, 4), the architecture needs (32, 4)",
             tmp_path / "enc")


def test_missing_file_and_unknown_kind(tmp_path: Path, sinr_pt: Path) -> None:
    _refused(["convert", "sinr", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "enc")],
             "nope.pt: checkpoint file not found", tmp_path / "enc")
    (tmp_path / "a_folder").mkdir()
    _refused(["convert", "sinr", str(tmp_path / "a_folder"), "--out", str(tmp_path / "enc")],
             "a_folder: a folder; expected the peer's checkpoint file (.pt / .pth / .ckpt)", tmp_path / "enc")
    _refused(["convert", "satclp", str(sinr_pt), "--out", str(tmp_path / "enc")],
             "unknown checkpoint kind 'satclp'; did you mean 'satclip'", tmp_path / "enc")
