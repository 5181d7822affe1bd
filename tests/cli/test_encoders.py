"""``geocsp encoders``: table and JSON listing generated from the ENCODERS registry."""

from __future__ import annotations

import json

from click.testing import CliRunner

from geocsp.cli.encoders import encoders
from geocsp.encoders import ENCODERS, create_encoder, list_encoders


def test_json_listing_matches_registry() -> None:
    result = CliRunner().invoke(encoders, ["--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["name"] for r in rows] == list_encoders()
    for row in rows:
        assert {"name", "dim", "description"} <= set(row)
        assert isinstance(row["dim"], int) and row["dim"] > 0
        assert row["dim"] == create_encoder(row["name"]).out_dim
        assert row["description"] == ENCODERS.get(row["name"]).description != ""


def test_table_lists_every_encoder_with_its_dim() -> None:
    result = CliRunner().invoke(encoders, [])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["name", "dim", "network"]
    body = {line.split()[0]: line.split()[1] for line in lines[2:]}
    assert body == {n: str(create_encoder(n).out_dim) for n in list_encoders()}


def test_registered_in_main_group() -> None:
    from geocsp.cli.main import cli

    result = CliRunner().invoke(cli, ["encoders", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["name"] == list_encoders()[0]


def test_unknown_option_is_a_usage_error() -> None:
    result = CliRunner().invoke(encoders, ["--jsn"])
    assert result.exit_code == 2 and "--jsn" in result.output
