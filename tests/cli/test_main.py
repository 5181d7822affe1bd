"""The top-level command table, lazy loading and the error boundary of geocsp.cli.main."""

from __future__ import annotations

import importlib
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from geocsp.cli.main import COMMANDS, cli, load_command
from geocsp.errors import ConfigError


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_table_entry_loads_its_command(name: str) -> None:
    cmd = load_command(name)
    assert isinstance(cmd, click.Command) and cmd.name == name
    assert cmd.help and COMMANDS[name][1]


def test_table_lists_every_command_of_the_modules() -> None:
    modules = {module for module, _ in COMMANDS.values()}
    defined = {cmd.name: module for module in modules for cmd in importlib.import_module(module).COMMANDS}
    assert defined == {name: module for name, (module, _) in COMMANDS.items()}


def test_help_imports_no_command_module_and_no_torch() -> None:
    code = ("import sys; from geocsp.cli.main import main; rc = main(['--help']); "
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('geocsp.cli.') and "
            "m not in ('geocsp.cli.main',)]; print(bad); sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert "pretrain" in out.stdout and "sdm" in out.stdout


def test_unknown_command_is_a_usage_error() -> None:
    res = CliRunner().invoke(cli, ["pretrian"])
    assert res.exit_code == 2 and "No such command 'pretrian'" in res.output


def test_error_boundary_one_line_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    @click.command("boom")
    def boom() -> None:
        raise ConfigError("x.yaml: expected a mapping")

    monkeypatch.setitem(COMMANDS, "boom", ("tests.cli.fake", "boom"))
    monkeypatch.setattr("geocsp.cli.main.load_command", lambda name: boom)
    res = CliRunner().invoke(cli, ["boom"])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == ["geocsp: error: x.yaml: expected a mapping"]
