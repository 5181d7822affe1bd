"""The ``auto`` preset of ``geocsp bench paper --data DIR``: run sizes chosen from the dataset.

The GeoWorld presets were sized for GeoWorld; a user's dataset may have 40 or 8,000 classes,
two or thousands of examples per class. :func:`auto_preset` keeps the GeoWorld demo preset's
choices (encoder family, objective arguments, losses, samplers) and sizes the rest from the
dataset (rules in docs/protocol.md):

* **encoder** by the median labelled examples per class m: m < 10 -> FFN hidden 128,
  d = 64; m < 50 -> hidden 256, d = 128; else hidden 512, d = 256;
* **fine-tuning batch** the largest power of two <= rows/4 at the smallest label ratio,
  clamped to [8, 1024]; **epochs** so that λ = 1 takes about :data:`FINETUNE_STEPS` optimizer
  steps (each epoch draws <= 100 rows per class), clamped to [1, 30];
* **pre-training batch** the largest power of two <= (train + unlabeled rows)/4, clamped to
  [32, 512]; **epochs** so that pre-training takes about :data:`PRETRAIN_STEPS` steps, in [1, 30];
* **ratios** every λ whose ``ratio{λ:.3f}`` image probabilities the ``val`` split stores,
  plus 1 when it stores ``default``; **seeds** 0, 1, 2.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from geocsp.config import deep_merge, dump_yaml, load_yaml
from geocsp.data import GeoDataset
from geocsp.errors import DatasetError
from geocsp.io import atomic_write_text
from geocsp.training.presets import PRESETS

BASE_PRESET = "geoworld-demo"
"""The preset whose choices ``auto`` keeps (everything but the sizes)."""
FINETUNE_STEPS = 2000
"""Optimizer steps of one fine-tuning run at λ = 1 (about)."""
PRETRAIN_STEPS = 1000
"""Optimizer steps of one pre-training run (about)."""
MAX_PER_CLASS = 100
"""Rows per class per fine-tuning epoch (the balanced sampler's cap)."""
_RATIO_KEY = re.compile(r"^ratio(\d+\.\d{3})$")


def _pow2_floor(x: float, lo: int, hi: int) -> int:
    """The largest power of two <= ``x``, clamped to [lo, hi]."""
    p = 2 ** math.floor(math.log2(x)) if x >= 1 else 1
    return int(min(max(p, lo), hi))


def protocol_ratios(prob_keys: list[str]) -> list[float]:
    """The label ratios a split's image probabilities support.

    Args:
        prob_keys: the split's probability sets.

    Returns:
        Sorted λ of the ``ratio{λ:.3f}`` keys in (0, 1], plus 1.0 when ``default`` is stored.

    >>> protocol_ratios(["ratio0.050", "default", "ratio0.200", "other"])
    [0.05, 0.2, 1.0]
    """
    found = {float(m.group(1)) for k in prob_keys if (m := _RATIO_KEY.match(k))}
    if "default" in prob_keys:
        found.add(1.0)
    return sorted(q for q in found if 0.0 < q <= 1.0)


def _model(m: float) -> dict[str, Any]:
    hidden, dim = (128, 64) if m < 10 else (256, 128) if m < 50 else (512, 256)
    return {"network_args": {"hidden_dim": hidden}, "dim": dim}


def auto_preset(ds: GeoDataset) -> dict[str, Any]:
    """A demo preset (``demo`` / ``pretrain`` / ``finetune`` sections) sized from ``ds``.

    Args:
        ds: the dataset (a labelled ``train`` split and a ``val`` split with image
            probabilities).

    Returns:
        The preset as a dict (see the module docstring for the rules).

    Raises:
        DatasetError: without labelled train rows or without ``val`` image probabilities.
    """
    train = ds.split("train")
    labels = train.labels if train.labels is not None else np.empty(0, np.int64)
    counts = np.bincount(labels[labels >= 0], minlength=len(ds.classes))
    if counts.sum() == 0:
        raise DatasetError(f"{ds.root}: split 'train' has no labelled rows; the protocol needs them")
    if "val" not in ds:
        raise DatasetError(f"{ds.root}: no 'val' split (splits: {', '.join(ds.split_names)}); the protocol "
                           f"scores on val: import one with --split-col or make one with geocsp data split "
                           f"(docs/protocol.md)")
    val_keys = ds.split("val").prob_keys
    ratios = protocol_ratios(val_keys)
    if not ratios:
        raise DatasetError(f"{ds.root}: split 'val' has no image probabilities 'default' or 'ratioX.XXX' "
                           f"(e.g. ratio0.100; stored: {', '.join(val_keys) or 'none'}); add them with geocsp "
                           f"data add-probs (docs/protocol.md)")
    present = counts[counts > 0]
    n_min = int(np.maximum(1, np.rint(ratios[0] * present)).sum())  # rows of the smallest λ subset
    per_epoch = int(np.minimum(present, MAX_PER_CLASS).sum())
    ft_batch = _pow2_floor(n_min / 4, 8, 1024)
    ft_epochs = int(min(max(FINETUNE_STEPS // max(1, math.ceil(per_epoch / ft_batch)), 1), 30))
    unlabeled = len(ds.split("unlabeled")) if "unlabeled" in ds else 0
    pre_rows = len(train) + unlabeled
    pre_batch = _pow2_floor(pre_rows / 4, 32, 512)
    pre_epochs = int(min(max(PRETRAIN_STEPS // max(1, math.ceil(pre_rows / pre_batch)), 1), 30))
    model = _model(float(np.median(present)))
    base = load_yaml(PRESETS.get(BASE_PRESET).obj)
    sizes = {
        "pretrain": {"model": model, "data": {"epochs": pre_epochs, "batch_size": pre_batch,
                                              "use_unlabeled": unlabeled > 0}},
        "finetune": {"model": model, "data": {"epochs": ft_epochs, "batch_size": ft_batch,
                                              "max_per_class": MAX_PER_CLASS}},
    }
    out = {k: deep_merge(base[k], sizes[k]) for k in ("pretrain", "finetune")}
    return {"demo": {"seeds": [0, 1, 2], "ratios": ratios, "figure_ratio": ratios[0]}, **out}


def write_auto_preset(ds: GeoDataset, path: str | Path) -> Path:
    """Write :func:`auto_preset` of ``ds`` as YAML (atomically) and return its path.

    Args:
        ds: the dataset.
        path: the ``.yaml`` file to write (a derived file: rewritten on every run).

    Returns:
        The path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    head = f"# geocsp bench paper --preset auto: sized from {ds.root} (rules: docs/protocol.md)\n"
    atomic_write_text(path, head + dump_yaml(auto_preset(ds)))
    return path
