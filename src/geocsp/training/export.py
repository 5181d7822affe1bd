"""Export a fine-tuned prior, an SDM or a location encoder to ONNX, checked against geocsp (docs/export.md).

The ONNX graph takes ``lonlat`` (N, 2) float32 (longitude, latitude in degrees; N dynamic)
and returns ``probs`` (N, Q) = P(y|x) for a prior (kind ``geoprior``) or an SDM (kind
``sdm``, position tower only: P(species | site)), or ``embedding`` (N, d) for an encoder
(kind ``location_encoder``). An SDM fitted with a date column also takes ``doy`` (N,)
float32, the day of year (NaN = no date). Any artifact whose loaded object has an
``onnx_module()`` method (:class:`Exportable`) is exported the same way. A JSON sidecar beside it (``OUT.json``)
records the class list, the input convention, the output name, the geocsp version and the
source run. torch's current exporter (``dynamo=True``, needs ``onnxscript``) is used; when
it fails the TorchScript exporter is used instead and the sidecar says so. Before anything
is published ONNX Runtime is run on random points and compared with geocsp (eval mode);
both files appear together or not at all. Covariate inputs (and a prior's time input) are
not exported: such a model is refused in one line, as is a KDE SDM (no network).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from geocsp import __version__
from geocsp.checkpoints import find_artifact, load
from geocsp.data.tables import refuse_existing
from geocsp.errors import ConfigError, MissingDependencyError
from geocsp.io import atomic_path, atomic_write_json
from geocsp.nets.location_encoder import KIND as ENCODER_KIND
from geocsp.nets.location_encoder import LocationEncoder
from geocsp.prior import GeoPrior
from geocsp.prior.prior import KIND as PRIOR_KIND

INPUT = "lonlat"
"""Name of the ONNX input: (N, 2) float32 (lon, lat) degrees."""
DOY_INPUT = "doy"
"""Name of the optional second ONNX input: (N,) float32 day of year (NaN = no date)."""
OUTPUTS = {PRIOR_KIND: "probs", ENCODER_KIND: "embedding"}
"""Artifact kind -> name of the ONNX output (other kinds: ``probs``)."""


@runtime_checkable
class Exportable(Protocol):
    """A loaded artifact that builds its own ONNX-exportable module (e.g. a fitted SDM)."""

    def onnx_module(self) -> tuple[nn.Module, list[str], bool]:
        """``(module, class names, takes_doy)``: ``module(lonlat[, doy])`` -> (N, Q) probabilities.

        Raises:
            ConfigError: when the artifact cannot be exported (one line, why).
        """
        ...
CHECK_POINTS = 10_000
"""Random points on which ONNX Runtime is compared with geocsp."""
DEFAULT_ATOL = 1e-4
"""Largest accepted absolute difference (scaled by max(1, max |output|))."""


class _Probs(nn.Module):
    """lonlat (N, 2) degrees -> P(y|x) (N, Q) of a GeoPrior."""

    def __init__(self, prior: GeoPrior) -> None:
        super().__init__()
        self.prior = prior

    def forward(self, lonlat: Tensor) -> Tensor:
        """P(y|x) = sigmoid(T e(x)), (N, Q)."""
        return torch.sigmoid(self.prior.classifier(self.prior.encoder(lonlat)))


class _Embedding(nn.Module):
    """lonlat (N, 2) degrees -> e(x) (N, d) of a LocationEncoder."""

    def __init__(self, encoder: LocationEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, lonlat: Tensor) -> Tensor:
        """e(x), (N, d)."""
        return self.encoder(lonlat)


def random_lonlat(n: int, seed: int = 0) -> np.ndarray:
    """``n`` points uniform in longitude [-180, 180) and latitude [-90, 90), float32 degrees.

    Args:
        n: number of points.
        seed: seed of the generator.

    Returns:
        (n, 2) float32 (lon, lat) degrees.
    """
    u = np.random.default_rng(seed).random((n, 2))
    return (u * [360.0, 180.0] - [180.0, 90.0]).astype(np.float32)


def _module(run: Path) -> tuple[nn.Module, str, Path, list[str] | None, bool]:
    """(wrapped module in eval mode, kind, artifact directory, class names or None, takes doy)."""
    missing = ("no prior, SDM or location encoder to export (expected a fine-tune run with prior/, "
               "an SDM run with model/, a pre-train run with encoder/, or one of those directories)")
    directory, kind = find_artifact(run, None, missing)
    obj = load(directory, [kind])
    if isinstance(obj, Exportable):
        module, classes, doy = obj.onnx_module()
        return module.eval(), kind, directory, list(classes), doy
    if not isinstance(obj, (GeoPrior, LocationEncoder)):
        raise ConfigError(f"{directory}: a '{kind}' artifact cannot be exported to ONNX")
    encoder: LocationEncoder = obj.encoder if isinstance(obj, GeoPrior) else obj
    extra = int(encoder.config.extra_dim)
    if extra:
        raise ConfigError(f"{directory}: the model takes {extra} inputs besides (lon, lat) (time or covariates); "
                          "ONNX export supports (lon, lat) only")
    if isinstance(obj, GeoPrior) and obj.kde is not None:
        raise ConfigError(f"{directory}: a prior with a class KDE (finetune.kde) cannot be exported to ONNX; "
                          "use geocsp predict")
    if isinstance(obj, GeoPrior) and obj.has_companion:
        raise ConfigError(f"{directory}: a prior pooled with a second prior (finetune.zeroshot_pool) cannot be "
                          "exported to ONNX; use geocsp predict")
    if isinstance(obj, GeoPrior):
        return _Probs(obj).eval(), kind, directory, list(obj.classes), False
    return _Embedding(obj).eval(), kind, directory, None, False


def random_doy(n: int, seed: int = 0) -> np.ndarray:
    """(n,) float32 days of year in [1, 366), a tenth of them NaN (no date)."""
    rng = np.random.default_rng(seed)
    d = rng.uniform(1.0, 366.0, n).astype(np.float32)
    d[rng.random(n) < 0.1] = np.nan
    return d


def _inputs(n: int, doy: bool, seed: int) -> dict[str, np.ndarray]:
    """The named ONNX inputs on ``n`` random points (and dates when ``doy``)."""
    out = {INPUT: random_lonlat(n, seed)}
    if doy:
        out[DOY_INPUT] = random_doy(n, seed)
    return out


def _export(module: nn.Module, path: Path, output: str, opset: int | None, doy: bool) -> str:
    """Write ``module`` to ``path``; returns the exporter used (``dynamo`` or ``torchscript``)."""
    feeds = _inputs(16, doy, seed=1)
    args = tuple(torch.from_numpy(v) for v in feeds.values())
    names = list(feeds)
    batch = torch.export.Dim("batch")
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "torchvision is not installed" notes and the like
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(module, args, str(path), input_names=names, output_names=[output],
                                  dynamic_shapes=tuple({0: batch} for _ in names),
                                  opset_version=opset, dynamo=True, external_data=False, verbose=False)
                return "dynamo"
            except Exception:  # no onnxscript, or an op the dynamo exporter cannot take
                torch.onnx.export(module, args, str(path), input_names=names, output_names=[output],
                                  dynamic_axes={**{n: {0: "batch"} for n in names}, output: {0: "batch"}},
                                  opset_version=opset or 17, dynamo=False)
                return "torchscript"
    finally:
        quiet.setLevel(level)


def _opset(path: Path) -> int | None:
    """The default-domain opset of the ONNX file at ``path`` (None when onnx is missing)."""
    try:
        import onnx
    except ImportError:
        return None
    model = onnx.load(str(path), load_external_data=False)
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def onnx_session(path: str | Path) -> Any:
    """An ONNX Runtime CPU session of the file at ``path``.

    Args:
        path: an ``.onnx`` file.

    Returns:
        ``onnxruntime.InferenceSession``.

    Raises:
        MissingDependencyError: onnxruntime is not installed.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingDependencyError("ONNX export needs onnxruntime and onnx: pip install 'geocsp[onnx]'") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_onnx(run: str | Path, out: str | Path, *, atol: float = DEFAULT_ATOL,
                check_points: int = CHECK_POINTS, opset: int | None = None,
                overwrite: bool = False) -> dict[str, Any]:
    """Export the prior, SDM or encoder of ``run`` to ``out`` (ONNX) and ``out`` with ``.json`` (sidecar).

    Args:
        run: a fine-tune run (``prior/``), an SDM run (``model/``; position inputs only, with
            an optional day of year), a pre-train run (``encoder/``), or one of those
            directories.
        out: the ``.onnx`` file to write; the sidecar is the same path with suffix ``.json``.
        atol: largest accepted |ONNX Runtime - geocsp| on the check points, scaled by
            max(1, max |output|).
        check_points: number of uniform random (lon, lat) points of the check (> 0).
        opset: ONNX opset (None: the exporter's default).
        overwrite: replace an existing ``out`` or sidecar (refused otherwise).

    Returns:
        The sidecar's content (also written): ``kind``, ``classes``, ``input``, ``output``,
        ``exporter``, ``parity`` (``max_abs_diff``) and provenance.

    Raises:
        ConfigError: ``out`` not ``.onnx`` or existing (without ``overwrite``),
            ``check_points`` < 1, a model with covariate inputs, a KDE SDM, or ONNX Runtime
            differs from geocsp by more than ``atol``.
        CheckpointError: nothing to export at ``run``.
        MissingDependencyError: onnx / onnxruntime not installed.
    """
    target = Path(out)
    if target.suffix.lower() != ".onnx":
        raise ConfigError(f"--out {target}: expected a .onnx file")
    sidecar = target.with_suffix(".json")
    for path in (target, sidecar):
        refuse_existing(path, overwrite, file=True)
    if check_points < 1:
        raise ConfigError(f"check_points: expected >= 1, got {check_points}")
    module, kind, directory, classes, doy = _module(Path(run))
    output = OUTPUTS.get(kind, "probs")
    feeds = _inputs(check_points, doy, seed=0)
    with torch.no_grad():
        ref = module(*(torch.from_numpy(v) for v in feeds.values())).numpy()
    with atomic_path(target) as tmp:
        exporter = _export(module, tmp, output, opset, doy)
        got = onnx_session(tmp).run([output], feeds)[0]
        diff = float(np.abs(got - ref).max())
        if not diff <= atol * max(1.0, float(np.abs(ref).max())):
            raise ConfigError(f"{directory}: ONNX Runtime output differs from geocsp by {diff:.3g} "
                              f"on {check_points} random points (> atol {atol:g}); nothing written")
        meta = {
            "format": "geocsp-onnx", "kind": kind, "classes": classes, "num_classes": len(classes or []) or None,
            "input": {"name": INPUT, "shape": ["batch", 2], "dtype": "float32",
                      "convention": "(longitude, latitude) in degrees; batch dimension dynamic; "
                                    + ("second input 'doy'" if doy else "no time or covariate inputs")},
            "inputs": [{"name": INPUT, "shape": ["batch", 2], "dtype": "float32"}]
            + ([{"name": DOY_INPUT, "shape": ["batch"], "dtype": "float32",
                 "convention": "day of year in [1, 366], NaN = no date"}] if doy else []),
            "output": {"name": output, "shape": ["batch", int(ref.shape[1])], "dtype": "float32",
                       "meaning": "location embedding e(x)" if classes is None
                       else ("P(species | site) of the SDM's position tower" if kind not in OUTPUTS
                             else "P(y|x) = sigmoid(T e(x)) per class")},
            "exporter": exporter, "opset": _opset(tmp),
            "parity": {"points": check_points, "max_abs_diff": diff, "atol": atol},
            "geocsp_version": __version__, "source_run": str(Path(run).resolve()),
            "source_artifact": str(directory.resolve()),
        }
        atomic_write_json(sidecar, meta)
    return meta
