"""Artifact kinds and the one loader that dispatches on a checkpoint's ``"kind"``.

Every saved model is a directory with ``model.safetensors`` + ``config.json``, and every
``config.json`` records its ``kind``. This module owns the mapping from kind to loader and
where each kind lives inside a run directory:

==================== ==================== =================================================
kind                 run subdirectory     loader
==================== ==================== =================================================
``location_encoder`` ``RUN/encoder``      :meth:`geocsp.nets.LocationEncoder.from_pretrained`
``geoprior``         ``RUN/prior``        :meth:`geocsp.prior.GeoPrior.from_pretrained`
``sdm``              ``RUN/model``        registered by :mod:`geocsp.sdm` when it is imported
==================== ==================== =================================================

:func:`find_artifact` accepts a run directory or an artifact directory and returns the
artifact directory of an accepted kind; :func:`load` loads it; :func:`load_prior` and
:func:`load_encoder` are the two typed shortcuts training and inference use.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from geocsp._registry import Registry
from geocsp.errors import CheckpointError
from geocsp.nets import LocationEncoder
from geocsp.nets.location_encoder import KIND as ENCODER_KIND
from geocsp.pretrained import load as load_pretrained_encoder
from geocsp.pretrained import pretrained_name
from geocsp.prior import GeoPrior
from geocsp.prior.prior import KIND as PRIOR_KIND

CONFIG_FILE = "config.json"
"""The JSON half of every artifact directory."""

ARTIFACTS: Registry[Callable[[Path], Any]] = Registry("artifact kind")
"""kind -> loader ``(directory) -> object``; :attr:`ARTIFACT_DIRS` gives its run subdirectory."""

ARTIFACT_DIRS: dict[str, str] = {}
"""kind -> the subdirectory of a run directory that holds an artifact of that kind."""


def register_artifact(kind: str, subdir: str) -> Callable[[Callable[[Path], Any]], Callable[[Path], Any]]:
    """Register a loader for ``kind``, stored in ``RUN/<subdir>`` inside run directories.

    Args:
        kind: the ``"kind"`` value of the artifact's ``config.json``.
        subdir: the run-directory subdirectory that holds such an artifact.

    Returns:
        A decorator for the loader ``(directory: Path) -> object``.
    """

    def deco(loader: Callable[[Path], Any]) -> Callable[[Path], Any]:
        ARTIFACTS.register(kind)(loader)
        ARTIFACT_DIRS[kind] = subdir
        return loader

    return deco


register_artifact(PRIOR_KIND, "prior")(GeoPrior.from_pretrained)
register_artifact(ENCODER_KIND, "encoder")(LocationEncoder.from_pretrained)

PRIOR_DIR = ARTIFACT_DIRS[PRIOR_KIND]
ENCODER_DIR = ARTIFACT_DIRS[ENCODER_KIND]


def read_kind(directory: str | Path) -> str | None:
    """The ``"kind"`` recorded in ``directory/config.json``, or None when there is none.

    Args:
        directory: a directory that may hold an artifact.

    Returns:
        The kind, or None when the file is missing, not JSON, or names no kind.
    """
    p = Path(directory) / CONFIG_FILE
    try:
        meta = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    kind = meta.get("kind") if isinstance(meta, dict) else None
    return kind if isinstance(kind, str) else None


def find_artifact(path: str | Path, kinds: Iterable[str] | None = None,
                  missing: str | None = None) -> tuple[Path, str]:
    """The artifact directory at ``path`` and its kind.

    ``path`` may be an artifact directory itself or a run directory; in a run directory the
    kinds are tried in the order given (default: registration order), each in its own
    subdirectory.

    Args:
        path: a run or artifact directory.
        kinds: accepted kinds, in order of preference; None accepts every registered kind.
        missing: the error message (after the path) when nothing is found; default names
            the accepted kinds and what was found.

    Returns:
        (directory, kind).

    Raises:
        CheckpointError: when no artifact of an accepted kind is there.
    """
    p = Path(path)
    wanted = list(kinds) if kinds is not None else ARTIFACTS.names()
    for kind in wanted:
        sub = p / ARTIFACT_DIRS.get(kind, kind)
        if read_kind(sub) == kind:
            return sub, kind
    own = read_kind(p)
    if own in wanted:
        return p, own
    if missing is None:
        expected = " or ".join(f"'{k}' ({ARTIFACT_DIRS.get(k, k)}/)" for k in wanted)
        found = f"a checkpoint of kind '{own}'" if own else "no checkpoint"
        missing = f"expected a run or checkpoint directory with {expected}, found {found}"
    for kind in wanted:  # there, but unreadable: say so rather than "not found"
        cfg = (p / ARTIFACT_DIRS.get(kind, kind)) / CONFIG_FILE
        if cfg.is_file() and read_kind(cfg.parent) is None:
            raise CheckpointError(f"{cfg}: not a readable checkpoint config (expected JSON with a \"kind\")")
    other = own if own in KIND_USES else next((k for k in KIND_USES if read_kind(p / _subdir(k)) == k), None)
    if other is not None and other not in wanted:  # a run of another kind: say what it is for
        missing += f"; {p.name} holds {KIND_USES[other]}"
    raise CheckpointError(f"{p}: {missing}")


KIND_USES = {PRIOR_KIND: "a fine-tuned prior (use geocsp predict / evaluate)",
             ENCODER_KIND: "a pre-trained location encoder (use geocsp embed, or --init of geocsp finetune)",
             "sdm": "a species distribution model (use geocsp sdm predict / sdm evaluate)"}
"""What each artifact kind is for, named when a command gets the wrong kind of run."""

_UNIMPORTED_DIRS = {"sdm": "model"}
"""Run subdirectories of kinds registered by modules a command may not have imported (:mod:`geocsp.sdm`)."""


def _subdir(kind: str) -> str:
    """The run subdirectory of ``kind`` (:data:`ARTIFACT_DIRS`, else :data:`_UNIMPORTED_DIRS`)."""
    return ARTIFACT_DIRS.get(kind) or _UNIMPORTED_DIRS.get(kind, kind)


def load(path: str | Path, kinds: Iterable[str] | None = None, missing: str | None = None) -> Any:
    """Load the artifact at ``path`` (a run or artifact directory), dispatching on its kind.

    Args:
        path: a run or artifact directory.
        kinds: accepted kinds, in order of preference; None accepts every registered kind.
        missing: the error message when nothing is found (see :func:`find_artifact`).

    Returns:
        The loaded object (in eval mode for modules).

    Raises:
        CheckpointError: when nothing of an accepted kind is there, or it is corrupt.
    """
    directory, kind = find_artifact(path, kinds, missing)
    return ARTIFACTS.get(kind).obj(directory)


def load_prior(path: str | Path) -> GeoPrior:
    """The fine-tuned :class:`~geocsp.prior.GeoPrior` of a run (``RUN/prior``) or a prior directory.

    Args:
        path: a fine-tune run directory (holding ``prior/``) or a saved prior directory.

    Returns:
        The prior, in eval mode.

    Raises:
        CheckpointError: when there is no prior there.
    """
    missing = f"no fine-tuned prior found (expected {Path(path) / PRIOR_DIR}); run geocsp finetune first"
    prior: GeoPrior = load(path, [PRIOR_KIND], missing)
    return prior


def load_encoder(path: str | Path) -> LocationEncoder:
    """A location encoder: a run's, prior's or encoder directory's, or a pretrained one by name.

    Args:
        path: a fine-tune run directory (``prior/``), a pre-train run directory
            (``encoder/``), a saved prior directory, a saved encoder directory, or a
            pretrained name (``geoclip``, or ``pretrained:geoclip`` even when a path of that
            name exists; ``geocsp encoders --pretrained``).

    Returns:
        The location encoder (the prior's when ``path`` holds a prior), in eval mode.

    Raises:
        CheckpointError: when none of these is found at ``path``.
        ConfigError: on ``pretrained:NAME`` with an unknown NAME.
        MissingDependencyError: when a pretrained encoder is neither cached nor installed.
    """
    name = pretrained_name(path)
    if name is not None:
        return load_pretrained_encoder(name)
    missing = ("no location encoder found (expected a run dir with prior/ or encoder/, "
               "an encoder dir or a pretrained name)")
    obj = load(path, [PRIOR_KIND, ENCODER_KIND], missing)
    encoder: LocationEncoder = obj.encoder if isinstance(obj, GeoPrior) else obj
    return encoder
