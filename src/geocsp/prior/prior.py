"""The geographic prior P(y|x) = sigmoid(T e(x)) (spec §5-§6).

A :class:`GeoPrior` is a location encoder ``e`` (:class:`geocsp.nets.LocationEncoder`)
plus a class matrix ``T`` (Q, d). It is saved as one LocationEncoder checkpoint directory
with the class matrix stored beside the encoder weights::

    DIR/model.safetensors   encoder weights + "class_weight" (Q, d)
                            [+ "class_scale" () and "class_bias" (Q,) for a cosine head]
    DIR/config.json         {"kind": "geoprior", "config": <LocationEncoderConfig>,
                             "classes": [...], "num_classes": Q, "geocsp_version": ...
                             [, "head": "cosine"]}

With a cosine head (:class:`geocsp.prior.heads.CosineHead`, the CSP zero-shot prior of
issue 16) the logits are ``s · cos(e(x), T_y) + b_y`` instead of ``T e(x)``. With a class
KDE (:class:`geocsp.prior.kde.ClassKDE`) they are pooled with its log density ratios
(``kde.*`` tensors and a ``"kde"`` entry in config.json). With a companion (a second prior,
e.g. the CSP zero-shot prior pooled with a fine-tuned one, ``finetune.zeroshot_pool``) the
logits are ``own + w · companion``, a log-linear (product-of-experts) pooling of the two
priors' odds; the companion's tensors are saved under ``companion.`` in the same file and
config.json holds ``"companion": {"weight": w, "prior": <its config.json>}``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from geocsp.coords import validate_lonlat
from geocsp.errors import CheckpointError, ConfigError
from geocsp.io import load_checkpoint_dir
from geocsp.nets.location_encoder import LocationEncoder, encoder_from_parts
from geocsp.prior.heads import CosineHead
from geocsp.prior.kde import ClassKDE

KIND = "geoprior"
"""Value of ``"kind"`` in the ``config.json`` of a saved GeoPrior."""
WEIGHT_NAME = "class_weight"
SCALE_NAME, BIAS_NAME = "class_scale", "class_bias"
"""Tensors of a cosine head, beside ``class_weight``."""
COMPANION_PREFIX = "companion."
"""Prefix of a companion prior's tensors in ``model.safetensors``."""


class GeoPrior(nn.Module):
    """Location prior P(y|x) = sigmoid(T e(x)) over Q classes.

    Args:
        encoder: a :class:`geocsp.nets.LocationEncoder` (``forward(lonlat (B, 2) deg,
            extra=None) -> (B, d)``, ``dim``; saving uses its ``save_pretrained(dir,
            extra_tensors, extra_config)``).
        class_weight: (Q, d) class matrix T (the prototypes of a cosine head).
        classes: Q class names (default ``"0" ... "Q-1"``).
        scale: None (default) for the linear head ``T e(x)``; else the scale s of the
            cosine head ``s · cos(e(x), T_y) + b_y``.
        bias: the cosine head's (Q,) offsets b_y (or one scalar); 0 when None.
        kde: a :class:`ClassKDE` of the same Q classes whose log density ratios are pooled
            with the logits (``ClassKDE.pool_logits``), or None.
        companion: a :class:`Companion` (a second prior over the same classes, itself
            without a companion, and its weight w) whose ``w ·`` logits are added, or None.

    Raises:
        ConfigError: when ``class_weight`` is not (Q, d) with d = ``encoder.dim`` or the
            number of class names is not Q.
    """

    def __init__(
        self, encoder: nn.Module, class_weight: Tensor, classes: Sequence[str] | None = None,
        *, scale: Tensor | float | None = None, bias: Tensor | float | None = None, kde: ClassKDE | None = None,
        companion: Companion | None = None,
    ) -> None:
        super().__init__()
        # duck-typed: any module with LocationEncoder's forward, ``dim`` and save_pretrained
        self.encoder: LocationEncoder = cast(LocationEncoder, encoder)
        dim = int(self.encoder.dim)
        if class_weight.ndim != 2 or class_weight.shape[1] != dim:
            raise ConfigError(
                f"class_weight: expected shape (Q, {dim}) to match the encoder dim, "
                f"got {tuple(class_weight.shape)}"
            )
        q = class_weight.shape[0]
        names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(q)]
        if len(names) != q:
            raise ConfigError(
                f"classes: expected {q} names to match class_weight, got {len(names)}"
            )
        self.classifier: nn.Linear | CosineHead
        if scale is not None:
            self.classifier = CosineHead(class_weight, scale, 0.0 if bias is None else bias)
        else:  # skip_init: no random initialisation, so building a prior leaves the global RNG alone
            self.classifier = nn.utils.skip_init(nn.Linear, dim, q, bias=False)
            with torch.no_grad():
                self.classifier.weight.copy_(class_weight)
        self.classes: list[str] = names
        if kde is not None and kde.num_classes != q:
            raise ConfigError(f"kde: expected {q} classes to match class_weight, got {kde.num_classes}")
        self.kde = kde
        if companion is not None and (companion.prior.classes != names or companion.prior.has_companion):
            raise ConfigError("companion: expected a prior over the same classes, without a companion of its own")
        self.companion: Companion | None = companion

    @property
    def has_companion(self) -> bool:
        """Whether a second prior is pooled into the logits."""
        return self.companion is not None

    @property
    def head_kind(self) -> str:
        """``linear`` (``T e(x)``) or ``cosine`` (``s · cos(e(x), T_y) + b_y``)."""
        return "cosine" if isinstance(self.classifier, CosineHead) else "linear"

    @property
    def num_classes(self) -> int:
        """Q, the number of classes.

        Returns:
            The number of rows of the class matrix.
        """
        return len(self.classes)

    def _as_lonlat(self, lonlat: Any) -> Tensor:
        device = self.classifier.weight.device
        if isinstance(lonlat, Tensor):
            return lonlat.to(device=device, dtype=torch.float32)
        return torch.as_tensor(
            validate_lonlat(lonlat, source="lonlat"), dtype=torch.float32, device=device
        )

    def logits(self, lonlat: Any, extra: Tensor | None = None) -> Tensor:
        """Class logits ``T e(x)`` (cosine head: ``s · cos(e(x), T_y) + b_y``).

        Args:
            lonlat: (B, 2) longitude, latitude in degrees (array-likes are validated).
            extra: (B, extra_dim) extra encoder inputs (covariates, time) or None.

        Returns:
            (B, Q) float32 logits (pooled with the class KDE's when the prior has one, plus
            ``w ·`` the companion's logits when it has one).

        Raises:
            CoordinateError: when a non-tensor ``lonlat`` is malformed or out of range.
        """
        x = self._as_lonlat(lonlat)
        out = self.classifier(self.encoder(x, extra))
        out = out if self.kde is None else self.kde.pool_logits(out, x)
        return out if self.companion is None else out + self.companion(x, extra)

    def forward(self, lonlat: Tensor, extra: Tensor | None = None) -> Tensor:
        """Same as :meth:`logits`."""
        return self.logits(lonlat, extra)

    def probs(self, lonlat: Any, extra: Tensor | None = None) -> Tensor:
        """Presence probabilities ``P(y|x) = sigmoid(T e(x))``, (B, Q) in [0, 1].

        Args:
            lonlat: (B, 2) longitude, latitude in degrees (tensor or array-like; array-likes
                are validated).
            extra: (B, extra_dim) extra encoder inputs (covariates, time) or None.

        Returns:
            (B, Q) float32 probabilities in [0, 1].
        """
        return torch.sigmoid(self.logits(lonlat, extra))

    def class_indices(self, classes: Sequence[str | int] | None) -> list[int]:
        """Column indices of ``classes`` (names or integer indices); all when None.

        Args:
            classes: class names or integer indices in [0, Q); None selects every class.

        Returns:
            The column index of each entry of ``classes``, in the order given.

        Raises:
            ConfigError: on an unknown class name or an index outside [0, Q).
        """
        if classes is None:
            return list(range(self.num_classes))
        lookup = {c: i for i, c in enumerate(self.classes)}
        out = []
        for c in classes:
            if isinstance(c, str) and c in lookup:
                out.append(lookup[c])
            elif isinstance(c, int | np.integer) and 0 <= int(c) < self.num_classes:
                out.append(int(c))
            else:
                raise ConfigError(f"class {c!r}: not one of the prior's {self.num_classes} classes")
        return out

    @torch.no_grad()
    def predict_grid(
        self,
        res_deg: float,
        bbox: tuple[float, float, float, float] | None = None,
        classes: Sequence[str | int] | None = None,
        extra: Tensor | None = None,
        batch_size: int = 65536,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """P(y|x) at the centres of a regular lon/lat grid, in eval mode (dropout off).

        Args:
            res_deg: cell size in degrees.
            bbox: (lon_min, lat_min, lon_max, lat_max) in degrees; default the globe.
            classes: class names or indices to keep (default all Q).
            extra: (extra_dim,) extra encoder input used at every cell, or None.
            batch_size: cells per forward pass.

        Returns:
            lats (H,) degrees, north to south (row 0 is the northernmost, as ``imshow``
            draws it); lons (W,) degrees, west to east; probs (H, W, K) float32 for the
            K selected classes.

        Raises:
            ConfigError: on a non-positive ``res_deg``, an empty or out-of-range ``bbox``
                or an unknown class.
        """
        lons, lats = grid_centres(res_deg, bbox)
        cols = self.class_indices(classes)
        lon2, lat2 = np.meshgrid(lons, lats)
        pts = torch.as_tensor(np.stack([lon2.ravel(), lat2.ravel()], 1), dtype=torch.float32)
        was_training = self.training
        self.eval()
        try:
            out = []
            device = self.classifier.weight.device
            for start in range(0, pts.shape[0], batch_size):
                chunk = pts[start : start + batch_size].to(device)
                ex = None if extra is None else extra.to(device).expand(chunk.shape[0], -1)
                out.append(self.probs(chunk, ex)[:, cols].float().cpu())
        finally:
            self.train(was_training)
        probs = torch.cat(out).numpy().reshape(len(lats), len(lons), len(cols))
        return lats, lons, probs

    def _extras(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """The tensors stored beside the encoder's weights and the ``config.json`` entries."""
        extra_config: dict[str, Any] = {"kind": KIND, "classes": self.classes, "num_classes": self.num_classes}
        tensors = {WEIGHT_NAME: self.classifier.weight.detach()}
        if isinstance(self.classifier, CosineHead):
            extra_config["head"] = "cosine"
            tensors[SCALE_NAME] = self.classifier.scale.detach()
            tensors[BIAS_NAME] = self.classifier.bias.detach()
        if self.kde is not None:
            kde_tensors, extra_config["kde"] = self.kde.saved()
            tensors.update(kde_tensors)
        if self.companion is not None:  # its whole checkpoint, its tensors under a prefix
            c_tensors, c_config = self.companion.prior.parts()
            tensors.update({COMPANION_PREFIX + k: v for k, v in c_tensors.items()})
            extra_config["companion"] = {"weight": self.companion.weight, "prior": c_config}
        return tensors, extra_config

    def parts(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """``(tensors, config)`` that :meth:`save_pretrained` writes (needs a :class:`LocationEncoder`)."""
        tensors, extra_config = self._extras()
        return {**self.encoder.state_dict(), **tensors}, self.encoder.checkpoint_config(extra_config)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the prior as a checkpoint directory (see module docs); returns it.

        Args:
            directory: the directory to write (created if missing).

        Returns:
            The directory, as a Path.
        """
        tensors, extra_config = self._extras()
        return self.encoder.save_pretrained(directory, extra_tensors=tensors, extra_config=extra_config)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> GeoPrior:
        """Load a prior written by :meth:`save_pretrained` (in eval mode).

        Args:
            directory: a directory written by :meth:`save_pretrained`.

        Returns:
            The prior, in eval mode.

        Raises:
            CheckpointError: when the directory is missing, corrupt, or not a geoprior.
        """
        tensors, meta = load_checkpoint_dir(directory)
        return cls.from_parts(tensors, meta, Path(directory) / "config.json")

    @classmethod
    def from_parts(cls, tensors: dict[str, Tensor], meta: Any, where: Path, nested: bool = False) -> GeoPrior:
        """A prior from :meth:`parts` (``where``: the ``config.json`` named in errors; see :meth:`from_pretrained`)."""
        encoder, extras = encoder_from_parts(tensors, meta, where, kind=KIND)
        if WEIGHT_NAME not in extras:
            raise CheckpointError(
                f"{where.parent}: weights lack '{WEIGHT_NAME}' (the class matrix)"
            )
        cosine = meta.get("head", "linear") == "cosine"
        if cosine and not {SCALE_NAME, BIAS_NAME} <= set(extras):
            raise CheckpointError(f"{where.parent}: a cosine head needs '{SCALE_NAME}' and '{BIAS_NAME}'")
        head: dict[str, Any] = {"scale": extras[SCALE_NAME], "bias": extras[BIAS_NAME]} if cosine else {}
        try:
            if "kde" in meta:
                head["kde"] = ClassKDE.from_saved(extras, meta["kde"], int(extras[WEIGHT_NAME].shape[0]))
            if "companion" in meta:
                info = meta["companion"]
                if nested or not isinstance(info, dict) or not isinstance(info.get("weight"), (int, float)):
                    raise ConfigError('companion: expected {"weight": number, "prior": {...}}, one level deep')
                sub = {k.removeprefix(COMPANION_PREFIX): v for k, v in extras.items() if k.startswith(COMPANION_PREFIX)}
                head["companion"] = Companion(cls.from_parts(sub, info.get("prior"), where, nested=True), info["weight"])
            return cls(encoder, extras[WEIGHT_NAME], meta.get("classes"), **head).eval()
        except (ConfigError, TypeError, RuntimeError) as e:  # classes not a list, weights of another dtype
            raise CheckpointError(f"{where}: {(str(e).splitlines() or [type(e).__name__])[0]}") from None


class Companion(nn.Module):
    """A second prior pooled into a :class:`GeoPrior`'s logits with weight w: ``w · prior.logits(x)``.

    Args:
        prior: the companion prior (same classes, no companion of its own).
        weight: w, finite and >= 0.

    Raises:
        ConfigError: on an invalid weight.
    """

    def __init__(self, prior: GeoPrior, weight: float) -> None:
        super().__init__()
        if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
            raise ConfigError(f"companion weight: expected a finite number >= 0, got {weight!r}")
        self.prior = prior
        self.weight = float(weight)

    def forward(self, lonlat: Tensor, extra: Tensor | None = None) -> Tensor:
        """(B, 2) lon/lat degrees [+ (B, E) extra features, when its encoder takes them] -> (B, Q) ``w ·`` logits."""
        takes_extra = getattr(getattr(self.prior.encoder, "config", None), "extra_dim", 0)
        return self.weight * self.prior.logits(lonlat, extra if takes_extra else None)


MAX_GRID_CELLS = 2**34
"""Grids with more cells are refused: one float32 value per cell alone would be 64 GiB."""


def grid_shape(res_deg: float, bbox: tuple[float, float, float, float] | None = None) -> tuple[int, int, str]:
    """(H rows, W columns, ``"lon_min,lat_min,lon_max,lat_max"``) of the grid of ``res_deg`` over ``bbox``.

    ``res_deg`` > 0; the globe when ``bbox`` is None. Float arithmetic: an absurd ``res_deg`` gives a huge count.

    >>> grid_shape(90.0)
    (2, 4, '-180,-90,180,90')
    """
    x0, y0, x1, y1 = bbox if bbox is not None else (-180.0, -90.0, 180.0, 90.0)
    cells = [(y1 - y0) / res_deg - 1e-9, (x1 - x0) / res_deg - 1e-9]
    h, w = (math.ceil(c) if math.isfinite(c) else 2**63 for c in cells)
    return h, w, ",".join(f"{float(v):.4g}" for v in (x0, y0, x1, y1))


def check_grid_size(res_deg: float, bbox: tuple[float, float, float, float] | None = None,
                    option: str = "res_deg") -> None:
    """Refuse a grid over :data:`MAX_GRID_CELLS` cells (a ConfigError naming ``option``, the cells and the box)."""
    h, w, region = grid_shape(res_deg, bbox)
    if h * w > MAX_GRID_CELLS:
        raise ConfigError(f"{option} {res_deg:g}: the grid would have {h:,} x {w:,} cells over {region}; expected at "
                          "most 2^34 (a float32 per cell alone is 64 GiB): a larger resolution or a smaller region")


def grid_centres(
    res_deg: float, bbox: tuple[float, float, float, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre longitudes (west to east) and latitudes (north to south) of a grid.

    Args:
        res_deg: cell size in degrees.
        bbox: (lon_min, lat_min, lon_max, lat_max) degrees; default the globe.

    Returns:
        lons (W,), lats (H,) float64 degrees; W = ceil((lon_max - lon_min) / res_deg).

    Raises:
        ConfigError: on a non-positive resolution or an empty or out-of-range bbox.

    >>> lons, lats = grid_centres(90.0)
    >>> lons.tolist(), lats.tolist()
    ([-135.0, -45.0, 45.0, 135.0], [45.0, -45.0])
    """
    if not res_deg > 0:
        raise ConfigError(f"res_deg: expected > 0, got {res_deg}")
    x0, y0, x1, y1 = bbox if bbox is not None else (-180.0, -90.0, 180.0, 90.0)
    if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90):
        raise ConfigError(
            f"bbox: expected lon_min < lon_max in [-180, 180] and lat_min < lat_max in [-90, 90], got {bbox}"
        )
    check_grid_size(res_deg, bbox)
    h, w, _ = grid_shape(res_deg, bbox)
    lons = x0 + res_deg * (np.arange(w) + 0.5)
    lats = y1 - res_deg * (np.arange(h) + 0.5)
    return np.minimum(lons, 180.0), np.maximum(lats, -90.0)
