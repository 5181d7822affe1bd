"""``geocsp data check``: validate a dataset directory, collect every problem, summarise it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geocsp.data.dataset import Split, load_split, read_manifest
from geocsp.data.format import Problems

HISTOGRAM_SHOWN = 5
"""Classes shown at each end of the label histogram."""


@dataclass
class CheckReport:
    """Result of :func:`check_dataset`.

    Args:
        path: the dataset directory.
        problems: one line per problem, ``file:row:column: message``.
        summary: JSON-serialisable summary (classes, per-split statistics).
    """

    path: Path
    problems: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems


def _histogram(labels: np.ndarray, classes: list[str]) -> dict[str, Any]:
    counts = np.bincount(labels[labels >= 0], minlength=len(classes))
    order = np.argsort(-counts, kind="stable")
    head = order[:HISTOGRAM_SHOWN]
    tail = order[max(HISTOGRAM_SHOWN, len(order) - HISTOGRAM_SHOWN) :]
    return {
        "labelled": int(counts.sum()),
        "classes_present": int((counts > 0).sum()),
        "head": [[classes[i], int(counts[i])] for i in head],
        "tail": [[classes[i], int(counts[i])] for i in tail],
    }


def _split_summary(split: Split, classes: list[str]) -> dict[str, Any]:
    ll = split.lonlat[split.has_location]
    out: dict[str, Any] = {
        "rows": len(split),
        "missing_locations": int((~split.has_location).sum()),
        "extent": None
        if len(ll) == 0
        else {
            "lon": [float(ll[:, 0].min()), float(ll[:, 0].max())],
            "lat": [float(ll[:, 1].min()), float(ll[:, 1].max())],
        },
        "features": None
        if split.features is None
        else {"dim": int(split.features.shape[1]), "dtype": str(split.features.dtype)},
        "probs": split.prob_keys,
        "columns": [str(c) for c in split.table.columns],
    }
    if split.labels is not None:
        out["labels"] = _histogram(split.labels, classes)
    return out


def check_dataset(path: str | Path) -> CheckReport:
    """Validate every part of a dataset directory and summarise it.

    Unlike :func:`~geocsp.data.dataset.load_dataset`, which stops at the first problem,
    this keeps going and reports at most one problem per file/column check.

    Args:
        path: the dataset directory.

    Returns:
        A :class:`CheckReport`; ``report.ok`` is False when problems were found.
    """
    root = Path(path)
    report = CheckReport(root)
    problems = Problems(collect=True)
    manifest = None
    with problems.guard():
        manifest = read_manifest(root)
    if manifest is None:
        report.problems = problems.items
        return report
    classes = manifest["classes"]
    report.summary = {
        "path": str(root),
        "classes": len(classes),
        "feature_dim": manifest.get("feature_dim"),
        "provenance": manifest.get("provenance", {}),
        "splits": {},
    }
    for name, entry in manifest["splits"].items():
        split = load_split(root, name, entry, manifest, problems, verify_values=True)
        if split is not None:
            report.summary["splits"][name] = _split_summary(split, classes)
    report.problems = problems.items
    return report


def _fmt_hist(pairs: list[list[Any]]) -> str:
    return ", ".join(f"{name} {count}" for name, count in pairs)


def format_report(report: CheckReport) -> str:
    """Human-readable multi-line summary (problems are printed separately)."""
    s = report.summary
    if not s:
        return f"{report.path}: no summary (manifest unreadable)"
    lines = [f"dataset {s['path']}: {s['classes']} classes, feature dim {s['feature_dim']}"]
    for name, sp in s["splits"].items():
        lines.append(
            f"  {name}: {sp['rows']} rows, {sp['missing_locations']} missing locations"
        )
        if sp["extent"]:
            (lo0, lo1), (la0, la1) = sp["extent"]["lon"], sp["extent"]["lat"]
            lines.append(f"    extent: lon [{lo0:.3f}, {lo1:.3f}], lat [{la0:.3f}, {la1:.3f}]")
        if sp["features"]:
            lines.append(f"    features: dim {sp['features']['dim']} {sp['features']['dtype']}")
        if sp["probs"]:
            lines.append(f"    probs: {', '.join(sp['probs'])}")
        if "labels" in sp:
            h = sp["labels"]
            lines.append(
                f"    labels: {h['labelled']} labelled, {h['classes_present']}/{s['classes']} classes present"
            )
            lines.append(f"    most frequent: {_fmt_hist(h['head'])}")
            if h["tail"]:
                lines.append(f"    least frequent: {_fmt_hist(h['tail'])}")
    status = "OK" if report.ok else f"{len(report.problems)} problem(s)"
    lines.append(f"check: {status}")
    return "\n".join(lines)
