"""Run directories: resolved config, JSONL log, metrics and atomic, resumable checkpoints.

Layout::

    RUN/config.yaml                  resolved config (written once; checked on rerun)
    RUN/log.jsonl                    one JSON object per epoch / evaluation
    RUN/metrics.json                 final metrics
    RUN/checkpoints/epoch-0003/      model.safetensors, optim.safetensors, state.json
    RUN/checkpoints/latest           name of the last complete checkpoint (written last)
    RUN/subset/ratio0.100.npy        label-subset indices (fine-tuning)
    RUN/encoder/ RUN/prior/          outputs (pre-trained encoder + W / fine-tuned prior)
    RUN/.lock                        run lock (pid of the process holding it)

Only rank 0 writes (``RANK`` / ``WORLD_SIZE`` from the environment, as set by torchrun).
A checkpoint directory is written as a whole (:func:`geocsp.io.atomic_dir`) and the ``latest``
pointer is replaced atomically afterwards, so a run killed at any moment resumes from a
complete checkpoint. Rank 0 holds an OS lock on ``RUN/.lock`` from :meth:`RunDir.prepare`
until :meth:`RunDir.close` (or the end of the process), and removes the temporaries a killed
run left in the directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

if sys.platform != "win32":
    import fcntl

from geocsp.checkpoints import ENCODER_DIR, PRIOR_DIR
from geocsp.config import dump_yaml, load_yaml
from geocsp.data.splits import SUBSET_DIR
from geocsp.errors import CheckpointError, ConfigError
from geocsp.faults import fault_point
from geocsp.io import (
    atomic_dir,
    atomic_write_json,
    atomic_write_text,
    clean_temporaries,
    is_temporary,
    json_text,
    load_tensors,
    write_tensors,
)
from geocsp.runtime import rank_and_world
from geocsp.training.compat import config_dict_for_compare, first_difference

CONFIG_FILE = "config.yaml"
LOG_FILE = "log.jsonl"
METRICS_FILE = "metrics.json"
CHECKPOINTS = "checkpoints"
LATEST = "latest"
CLASSES_FILE = "classes.json"
LOCK_FILE = ".lock"
CROSSFIT_DIR = "crossfit"
"""The sub-directory of a fine-tuning run holding its cross-fit (plan, fold subsets, fold runs)."""
SELECT_DIR = "select"
"""The sub-directory of a fine-tuning run holding its model selection (one cross-fit per candidate)."""
RUN_OUTPUTS = (CONFIG_FILE, LOG_FILE, METRICS_FILE, CHECKPOINTS, SUBSET_DIR, ENCODER_DIR,
               PRIOR_DIR, CLASSES_FILE, CROSSFIT_DIR, SELECT_DIR)
"""Every name a training run writes in its directory (what ``--overwrite`` removes)."""
UNDONE_OUTPUTS = (CONFIG_FILE, LOG_FILE, SUBSET_DIR, CLASSES_FILE)
"""What a new run that fails before its first epoch removes again: cheap to remake, nothing to resume."""


def metrics_name(split: str) -> str:
    """``metrics.json`` for ``val``, ``metrics-<split>.json`` otherwise.

    Args:
        split: the evaluated split.

    Returns:
        The file name inside the run directory.
    """
    return METRICS_FILE if split == "val" else f"metrics-{split}.json"


def run_ratio(run_dir: str | Path) -> float | None:
    """The label ratio λ of a fine-tune run (from its config.yaml), or None.

    Args:
        run_dir: a run directory.

    Returns:
        λ in (0, 1], 1.0 for a run without a ratio, None when there is no config.yaml.
    """
    p = Path(run_dir) / CONFIG_FILE
    return float(load_yaml(p).get("ratio", 1.0)) if p.is_file() else None


_HELD: dict[Path, list[int]] = {}
"""Run locks this process holds: lock file -> [file descriptor, users]. A process may reopen
its own run (a fine-tune after a pre-training on the same directory); other processes may not."""


def _acquire_lock(run: Path) -> Path | None:
    """Take the OS lock on ``run/.lock`` (writing this pid into it); None without fcntl.

    Raises:
        ConfigError: when another process holds it.
    """
    if sys.platform == "win32":
        return None
    key = (run / LOCK_FILE).resolve()
    if key in _HELD:
        _HELD[key][1] += 1
        return key
    fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ConfigError(f"{run}: run directory is in use by process {holder}; "
                          "wait for it or use another --out") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD[key] = [fd, 1]
    return key


def _release_lock(key: Path) -> None:
    entry = _HELD.get(key)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] <= 0:
        del _HELD[key]
        with contextlib.suppress(OSError):  # a finished run leaves no lock file behind
            key.unlink()
        os.close(entry[0])  # closing the descriptor releases the flock


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint.

    Args:
        epoch: number of completed epochs.
        model: state-dict tensors of the trained modules.
        optim: flattened optimizer tensors (see :func:`flatten_optimizer_state`).
        state: JSON part: optimizer scalars and param groups, and anything the loop adds.
    """

    epoch: int
    model: dict[str, Any]
    optim: dict[str, Any]
    state: dict[str, Any]


class RunDir:
    """One run directory (see module docstring).

    Args:
        path: the directory; created on :meth:`prepare`.
        rank: this process's rank; only rank 0 writes.
    """

    def __init__(self, path: str | Path, rank: int | None = None) -> None:
        self.path = Path(path)
        self.rank = rank_and_world()[0] if rank is None else rank
        self._unlock: weakref.finalize[..., Any] | None = None
        self._new_run = self._made_dir = False  # set by prepare: a new run (not a resume), in a dir it made

    def __enter__(self) -> RunDir:
        """The run directory itself (``with RunDir(...) as run:`` closes it at the end)."""
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Release the run lock (see :meth:`close`); undo a new run that failed early.

        A new run that fails before writing anything to resume or reuse (its first epoch, a
        cross-fit, a selection) removes what :meth:`prepare` wrote, and the directory if it
        made it, so a rerun with another config is not refused as a different run.
        """
        undo = exc_type is not None and self._new_run and self.writer and not self._has_progress()
        if undo:
            self._remove(UNDONE_OUTPUTS)
        self.close()
        if undo and self._made_dir and self.path.is_dir() and not self._foreign():
            shutil.rmtree(self.path, ignore_errors=True)  # only the lock file / temporaries are left

    def _has_progress(self) -> bool:
        """Whether the run wrote anything a rerun would resume or reuse (beyond :data:`UNDONE_OUTPUTS`)."""
        log = self.path / LOG_FILE
        return (log.is_file() and log.stat().st_size > 0) or any(
            (self.path / n).exists() for n in RUN_OUTPUTS if n not in UNDONE_OUTPUTS)

    def close(self) -> None:
        """Release the run lock taken by :meth:`prepare` (also done when the object is freed)."""
        if self._unlock is not None:
            self._unlock()
            self._unlock = None

    def _lock(self) -> None:
        if self._unlock is None:
            key = _acquire_lock(self.path)
            if key is not None:
                self._unlock = weakref.finalize(self, _release_lock, key)

    def _foreign(self) -> bool:
        """Whether the directory holds files that are not a geocsp run's."""
        return self.path.is_dir() and any(
            p.name != LOCK_FILE and not is_temporary(p.name) for p in self.path.iterdir())

    @property
    def writer(self) -> bool:
        """Whether this process writes files (rank 0)."""
        return self.rank == 0

    def prepare(self, config: dict[str, Any], *, overwrite: bool = False) -> bool:
        """Lock the directory, remove stray temporaries, write or check the resolved config.

        Rank 0 takes the run lock (held until :meth:`close`; released on any error here)
        and removes the temporaries a killed run left (:func:`geocsp.io.clean_temporaries`).

        Args:
            config: resolved config as plain data.
            overwrite: delete earlier run outputs instead of resuming or refusing.

        Returns:
            True when an existing run with the same config is resumed.

        Raises:
            ConfigError: when another process uses the directory, when it holds a run with a
                different config (the message names the first differing key) or is a
                non-empty non-run dir.
        """
        saved = self.path / CONFIG_FILE
        if not overwrite and not saved.is_file() and self._foreign():
            raise ConfigError(f"{self.path}: directory exists and is not a geocsp run; use another --out")
        if not self.writer:
            return self._prepare(config, overwrite)
        existed = self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            clean_temporaries(self.path)
            resumed = self._prepare(config, overwrite)
            self._new_run, self._made_dir = not resumed, not existed
            return resumed
        except BaseException:  # a refused run leaves the directory as it found it
            self.close()
            if not existed and not any(self.path.iterdir()):
                self.path.rmdir()
            raise

    def _prepare(self, config: dict[str, Any], overwrite: bool) -> bool:
        saved = self.path / CONFIG_FILE
        if overwrite and self.writer:
            self.clear()
        if saved.is_file() and not overwrite:
            old = load_yaml(saved)
            diff = first_difference(config_dict_for_compare(old), config_dict_for_compare(config))
            if diff is not None:
                raise ConfigError(
                    f"{self.path}: run dir holds a run with a different config ({diff}); "
                    "use another --out or pass --overwrite"
                )
            if self.writer:
                atomic_write_text(saved, dump_yaml(config))
            return True
        if self.writer:
            self.path.mkdir(parents=True, exist_ok=True)
            atomic_write_text(saved, dump_yaml(config))
        return False

    def clear(self) -> None:
        """Remove the outputs of an earlier run (only the names a run writes)."""
        self._remove(RUN_OUTPUTS)

    def _remove(self, names: tuple[str, ...]) -> None:
        for name in names:
            p = self.path / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()

    # ---- logging and metrics -------------------------------------------------------------
    def log(self, record: dict[str, Any]) -> None:
        """Append one JSON line to ``log.jsonl`` (rank 0 only)."""
        if not self.writer:
            return
        fault_point("log.before")
        with open(self.path / LOG_FILE, "a") as f:
            f.write(json.dumps(record, default=float) + "\n")
            f.flush()
        fault_point("log.after")

    def truncate_log(self, epoch: int) -> None:
        """Drop log lines of epochs after ``epoch`` (work lost when a run was killed).

        A line that is not a JSON object (cut short by a kill or a full disk) is dropped too.
        """
        p = self.path / LOG_FILE
        if not self.writer or not p.is_file():
            return
        text = p.read_text()
        keep = [line for line in text.splitlines() if _epoch_of(line) <= epoch]
        new = "".join(line + "\n" for line in keep)
        if new != text:
            atomic_write_text(p, new)

    def write_metrics(self, metrics: dict[str, Any], name: str = METRICS_FILE) -> Path:
        """Write ``metrics.json`` (or ``name``) atomically (rank 0 only)."""
        p = self.path / name
        if self.writer:
            atomic_write_json(p, metrics, fault="metrics")
        return p

    # ---- checkpoints ---------------------------------------------------------------------
    @property
    def checkpoint_root(self) -> Path:
        """``RUN/checkpoints``."""
        return self.path / CHECKPOINTS

    def save_checkpoint(self, ckpt: Checkpoint, keep: int = 2) -> Path | None:
        """Write ``checkpoints/epoch-XXXX/`` then point ``latest`` at it; prune old ones.

        Returns:
            The checkpoint directory (None on ranks other than 0).
        """
        if not self.writer:
            return None
        name = f"epoch-{ckpt.epoch:04d}"
        d = self.checkpoint_root / name
        with atomic_dir(d, fault="checkpoint") as tmp:  # complete or absent, never partial
            write_tensors(tmp / "model.safetensors", ckpt.model)
            write_tensors(tmp / "optim.safetensors", ckpt.optim)
            (tmp / "state.json").write_text(json_text({"epoch": ckpt.epoch, **ckpt.state}))
        atomic_write_text(self.checkpoint_root / LATEST, name + "\n", fault="latest")
        self._prune(keep, name)
        return d

    def _prune(self, keep: int, current: str) -> None:
        names = sorted(p.name for p in self.checkpoint_root.glob("epoch-*") if p.is_dir())
        for old in names[:-keep]:
            if old != current:
                shutil.rmtree(self.checkpoint_root / old, ignore_errors=True)

    def latest_checkpoint(self) -> Checkpoint | None:
        """The last complete checkpoint, or None when there is none.

        Raises:
            CheckpointError: when ``latest`` names a missing or corrupt checkpoint.
        """
        pointer = self.checkpoint_root / LATEST
        if not pointer.is_file():
            return None
        d = self.checkpoint_root / pointer.read_text().strip()
        try:
            state = json.loads((d / "state.json").read_text())
        except (OSError, json.JSONDecodeError):
            raise CheckpointError(f"{d}: checkpoint is missing or corrupt (state.json)") from None
        return Checkpoint(
            epoch=int(state.pop("epoch")),
            model=load_tensors(d / "model.safetensors"),
            optim=load_tensors(d / "optim.safetensors"),
            state=state,
        )


def _epoch_of(line: str) -> float:
    """The ``epoch`` of a log line (0 without one; infinity for a line that is not a JSON object)."""
    try:
        record = json.loads(line)
    except ValueError:
        return float("inf")
    return float(record.get("epoch", 0)) if isinstance(record, dict) else float("inf")
