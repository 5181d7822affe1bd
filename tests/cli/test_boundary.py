"""The CLI error boundary: what is bad input (one line, exit 2) and what is a bug (exit 1)."""

from __future__ import annotations

import errno
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from geocsp.cli.main import COMMANDS, cli
from geocsp.errors import ConfigError


def _invoke(monkeypatch: pytest.MonkeyPatch, raise_it: Callable[[], None], *args: str) -> Result:
    """Run a fake ``boom`` command (with an ``--out``) that calls ``raise_it``."""

    @click.command("boom")
    @click.option("--out", default=None)
    def boom(out: str | None) -> None:
        raise_it()

    monkeypatch.setitem(COMMANDS, "boom", ("tests.cli.fake", "boom"))
    monkeypatch.setattr("geocsp.cli.main.load_command", lambda name: boom)
    monkeypatch.delenv("GEOCSP_DEBUG", raising=False)
    return CliRunner().invoke(cli, ["boom", *args])


def _one_line(res: Result) -> str:
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("geocsp: error: "), res.stderr
    assert "Traceback" not in res.output
    return lines[0].removeprefix("geocsp: error: ")


def _raiser(exc: BaseException) -> Callable[[], None]:
    def f() -> None:
        raise exc

    return f


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "data/x.csv"),
         "data/x.csv: No such file or directory"),
        (PermissionError(errno.EACCES, "Permission denied", "runs/x/config.yaml"),
         "runs/x/config.yaml: Permission denied"),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "runs/x"), "runs/x: Is a directory"),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "a.csv/run"), "a.csv/run: Not a directory"),
        (FileExistsError(errno.EEXIST, "File exists", "out"), "out: File exists"),
        (OSError(errno.ENOSPC, "No space left on device", "runs/x/config.yaml"),
         "runs/x/config.yaml: No space left on device"),
        (OSError(errno.EROFS, "Read-only file system", "/mnt/ro/run"), "/mnt/ro/run: Read-only file system"),
        (OSError(errno.EXDEV, "Invalid cross-device link", "a", None, "b"), "a -> b: Invalid cross-device link"),
        (ConfigError("x.yaml: expected a mapping\n  (second line)"), "x.yaml: expected a mapping; (second line)"),
    ],
)
def test_os_and_geocsp_errors_are_one_line(monkeypatch: pytest.MonkeyPatch, exc: BaseException,
                                           expected: str) -> None:
    assert _one_line(_invoke(monkeypatch, _raiser(exc))) == expected


def test_disk_full_without_a_filename_names_the_out_option(monkeypatch: pytest.MonkeyPatch) -> None:
    exc = OSError(errno.ENOSPC, "No space left on device")
    msg = _one_line(_invoke(monkeypatch, _raiser(exc), "--out", "runs/x"))
    assert msg == "--out runs/x: No space left on device"


def test_decode_error_names_the_file_a_geocsp_frame_was_reading(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"caf\xe9")
    scope = {"__name__": "geocsp.fake_reader", "Path": Path}
    exec("def read(path):\n    return Path(path).read_text(encoding='utf-8')\n", scope)
    msg = _one_line(_invoke(monkeypatch, lambda: scope["read"](bad)))
    assert msg.startswith(f"{bad}: cannot decode (") and "0xe9" in msg


@pytest.mark.parametrize(
    ("exc", "needle"),
    [
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "cannot decode"),
        (__import__("json").JSONDecodeError("Expecting value", "{", 1), "cannot decode"),
        (EOFError("No data left in file"), "unexpected end of file"),
        (RecursionError("maximum recursion depth exceeded"), "too deeply nested"),
        (MemoryError(), "too large"),
        (RuntimeError("Error(s) in loading state_dict for Linear:\n\tsize mismatch for weight"),
         "weights do not fit its config"),
    ],
)
def test_decode_depth_memory_and_state_dict_errors(monkeypatch: pytest.MonkeyPatch, exc: BaseException,
                                                   needle: str) -> None:
    assert needle in _one_line(_invoke(monkeypatch, _raiser(exc)))


@pytest.mark.parametrize("exc", [ValueError("a bug"), RuntimeError("not a state dict"), KeyError("k"),
                                 ZeroDivisionError()])
def test_a_bug_keeps_its_exception_and_exits_1(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    res = _invoke(monkeypatch, _raiser(exc))
    assert res.exit_code == 1 and res.exception is exc
    assert "geocsp: error" not in res.output


def test_keyboard_interrupt_is_one_line_exit_130(monkeypatch: pytest.MonkeyPatch) -> None:
    res = _invoke(monkeypatch, _raiser(KeyboardInterrupt()))
    assert res.exit_code == 130 and res.stderr.splitlines() == ["geocsp: interrupted"]


def test_debug_env_reraises_user_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    exc = ConfigError("x.yaml: expected a mapping")

    @click.command("boom")
    def boom() -> None:
        raise exc

    monkeypatch.setitem(COMMANDS, "boom", ("tests.cli.fake", "boom"))
    monkeypatch.setattr("geocsp.cli.main.load_command", lambda name: boom)
    monkeypatch.setenv("GEOCSP_DEBUG", "1")
    res = CliRunner().invoke(cli, ["boom"])
    assert res.exit_code == 1 and res.exception is exc


def test_click_usage_errors_keep_exit_2_in_one_line() -> None:
    res = CliRunner().invoke(cli, ["encoders", "--bogus"], prog_name="geocsp")
    assert res.exit_code == 2 and res.stderr.startswith("geocsp: error: No such option")
    assert res.stderr.endswith(" (see 'geocsp encoders --help')\n") and res.stderr.count("\n") == 1, res.stderr
    res = CliRunner().invoke(cli, ["--bogus"])  # the top-level group's own options
    assert res.exit_code == 2 and res.stderr.startswith("geocsp: error: ") and res.stderr.count("\n") == 1
    res = CliRunner().invoke(cli, ["map", "run", "--res", "abc", "--out", "m.png"], prog_name="geocsp")
    assert res.stderr == ("geocsp: error: Invalid value for '--res': 'abc' is not a valid float. "
                          "(see 'geocsp map --help')\n"), res.stderr
    res = CliRunner().invoke(cli, ["data"])  # a group without its command still shows its help
    assert "Commands:" in res.output and "geocsp: error" not in res.output


_SCRIPT = """
import sys, click
from geocsp.cli import main as m
@click.command("boom")
def boom():
    {body}
m.COMMANDS["boom"] = ("x", "boom")
m.load_command = lambda name: boom
sys.exit(m.main(["boom"]))
"""


@pytest.mark.parametrize(
    ("body", "debug", "code", "traceback"),
    [
        ("raise ValueError('a bug')", "", 1, True),
        ("raise OSError(28, 'No space left on device', 'runs/x/config.yaml')", "", 2, False),
        ("raise OSError(28, 'No space left on device', 'runs/x/config.yaml')", "1", 1, True),
        ("raise KeyboardInterrupt", "", 130, False),
    ],
)
def test_real_process_exit_codes_and_tracebacks(body: str, debug: str, code: int, traceback: bool) -> None:
    env = {"GEOCSP_DEBUG": debug, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", _SCRIPT.format(body=body)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == code, proc.stderr
    assert ("Traceback" in proc.stderr) is traceback, proc.stderr
    if code == 2:
        assert proc.stderr.splitlines() == ["geocsp: error: runs/x/config.yaml: No space left on device"]
