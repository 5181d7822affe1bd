"""Provenance of multi-run protocols: run names, dataset identity, versions and the machine.

A run directory is named by what it is plus a short hash of its resolved config, the
dataset's manifest and the geocsp version, so two protocols sharing a runs folder reuse
identical runs and never mix two datasets. :func:`machine_info` records where the results
were measured.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

from geocsp import __version__
from geocsp.training.compat import without_added

UNHASHED_KEYS = ("device", "quiet")
"""Config keys that do not change a run's results, left out of its name's hash."""


def config_hash(data: Any) -> str:
    """The first 10 hex digits of the SHA-256 of ``data`` as sorted-key JSON.

    Args:
        data: JSON-serialisable data (other values are written with ``str``).

    Returns:
        A 10-character lowercase hex string.
    """
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:10]


def slug(name: str) -> str:
    """``name`` lower-cased with every non-alphanumeric character turned into ``-``.

    >>> slug("CSP-MC-BLD d=64")
    'csp-mc-bld-d-64'
    """
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def dataset_identity(data: str | Path) -> dict[str, str]:
    """What identifies a dataset and the code in run names.

    Args:
        data: a dataset directory (its ``manifest.json`` is read).

    Returns:
        ``{"manifest": hash of the manifest, "geocsp": package version}``.
    """
    manifest = json.loads((Path(data) / "manifest.json").read_text())
    return {"manifest": config_hash(manifest), "geocsp": __version__}


def run_key(identity: dict[str, Any], config: dict[str, Any]) -> str:
    """The hash that names a run: its config and ``identity``.

    Left out: :data:`UNHASHED_KEYS`, and added keys at their default
    (:func:`geocsp.training.compat.without_added`).

    Args:
        identity: :func:`dataset_identity` of the dataset the run trains on.
        config: the run's resolved config dict.

    Returns:
        A 10-character hex string.
    """
    kept = without_added(config, UNHASHED_KEYS)
    return config_hash({**identity, **kept})


def model_name(config: dict[str, Any]) -> str:
    """``<objective>-d<dim>`` of a pre-training config dict."""
    return f"{config['objective']['name']}-d{config['model']['dim']}"


def pretrain_run_name(config: dict[str, Any], seed: int, key: str) -> str:
    """``<objective>-d<dim>-s<seed>-<key>``: the directory name of a pre-training run."""
    return f"{model_name(config)}-s{seed}-{key}"


def finetune_run_name(config: dict[str, Any], ratio: float, seed: int, key: str,
                      pretrained: str | None = None) -> str:
    """The directory name of a fine-tuning run.

    Args:
        config: the fine-tuning run's resolved config dict.
        ratio: its label ratio λ.
        seed: its seed.
        key: its :func:`run_key`.
        pretrained: :func:`model_name` of the pre-training run it starts from; None when it
            starts from random initialisation.

    Returns:
        ``from-<objective>-d<dim>-r<λ>-s<seed>-<key>`` or ``sup-<encoder>-d<dim>-r<λ>-s<seed>-<key>``.
    """
    base = f"from-{pretrained}" if pretrained else f"sup-{config['model']['encoder']}-d{config['model']['dim']}"
    return f"{slug(base)}-r{ratio:.3f}-s{seed}-{key}"


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_model() -> str:
    """The CPU model name (``/proc/cpuinfo`` where present, else :func:`platform.processor`)."""
    model = platform.processor() or ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        model = names[0] if names else model
    return model


def machine_info() -> dict[str, Any]:
    """Cores available, CPU model, torch version and GPU (for the results' provenance).

    Returns:
        ``{"cores", "cpu", "torch", "cuda"}``; ``cuda`` is the first GPU's name or None.
    """
    import torch

    return {"cores": available_cores(), "cpu": cpu_model(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
