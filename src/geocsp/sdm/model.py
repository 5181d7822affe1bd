"""The multi-species SDM: position tower and/or covariate(+time) tower -> species head.

``logits = W [e_pos(x, t?) ⊕ e_cov(z(c), t?)] + b``, one column per species (SINR-style
multi-species model, spec peers §5; time input as geo_prior, peers §6). ``e_pos`` is a
:class:`~geocsp.nets.LocationEncoder` (optionally initialised from a CSP pre-trained
encoder); ``e_cov`` is a LocationEncoder with ``use_position=False`` fed the standardised
covariates ``z(c)`` (and the cyclic day-of-year encoding). The time encoding goes to the
covariate tower when there is one, else to the position tower's ``extra`` input.

A fitted model is saved in ``RUN_DIR/model/`` (``model.safetensors`` + ``config.json``
with kind ``"sdm"``: the config, species, covariate names, standardisation stats, raster
paths) and ``RUN_DIR/presences.csv`` (the presence coordinates, capped, for maps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import expit
from torch import Tensor, nn

from geocsp import __version__
from geocsp.checkpoints import find_artifact, read_kind, register_artifact
from geocsp.config import from_dict, to_dict
from geocsp.encoders.time import encode_day_of_year
from geocsp.errors import CheckpointError, ConfigError
from geocsp.io import load_checkpoint_dir, save_checkpoint_dir
from geocsp.nets.location_encoder import LocationEncoder, LocationEncoderConfig
from geocsp.sdm.config import INPUTS
from geocsp.sdm.covariates import Standardizer
from geocsp.sdm.kde import SpeciesKDE, shrink

KIND = "sdm"
"""The ``"kind"`` of an SDM's ``config.json``."""

MODEL_DIR = "model"
"""The run subdirectory holding the fitted model (registered with :mod:`geocsp.checkpoints`)."""

# Finest scale 0.1° (as the paper's iNat preset): with 1° a regional SDM could not resolve its
# range (spatial-block CV AUC, position only: Bradypus 0.867 -> 0.925, banana slug 0.821 -> 0.957;
# docs/results.md "SDM position encoder scales").
DEFAULT_POSITION: dict[str, Any] = {
    "encoder": "sphereC+",
    "encoder_args": {"num_scales": 8, "r_min_deg": 0.1},
    "network": "fcnet",
    "network_args": {"num_res_blocks": 2, "dropout": 0.0},
    "dim": 64,
}


@dataclass(frozen=True)
class SDMConfig:
    """Architecture of an :class:`SDM`.

    Args:
        inputs: ``position``, ``covariates`` or ``both`` towers.
        num_species: Q, the number of output columns.
        num_covariates: K covariates (needed by ``covariates``/``both``).
        use_time: append the cyclic day-of-year encoding (2 features).
        position: :class:`LocationEncoderConfig` fields of the position tower.
        covariate_dim: width of the covariate tower (an FCNet).
        covariate_blocks: residual blocks of the covariate tower.
    """

    inputs: str = "both"
    num_species: int = 1
    num_covariates: int = 0
    use_time: bool = False
    position: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_POSITION))
    covariate_dim: int = 64
    covariate_blocks: int = 2

    def __post_init__(self) -> None:
        if self.inputs not in INPUTS:
            raise ConfigError(f"inputs must be one of {', '.join(INPUTS)}, got {self.inputs!r}")
        if self.num_species < 1:
            raise ConfigError(f"num_species must be >= 1, got {self.num_species}")
        if self.inputs != "position" and self.num_covariates < 1:
            raise ConfigError(f"--inputs {self.inputs} needs covariates (--covariates or --rasters)")
        if self.covariate_dim < 1 or self.covariate_blocks < 0:
            raise ConfigError("covariate_dim must be >= 1 and covariate_blocks >= 0")

    @property
    def time_in_position(self) -> bool:
        """Whether the time encoding is fed to the position tower."""
        return self.use_time and self.inputs == "position"


def _position_config(cfg: SDMConfig) -> LocationEncoderConfig:
    pos = from_dict(LocationEncoderConfig, dict(cfg.position), where="position")
    return LocationEncoderConfig(**{**to_dict(pos), "extra_dim": 2 if cfg.time_in_position else 0})


class SDM(nn.Module):
    """Multi-species presence model over Q species.

    Args:
        config: architecture.
    """

    def __init__(self, config: SDMConfig) -> None:
        super().__init__()
        self.config = config
        width = 0
        self.position: LocationEncoder | None = None
        self.covariate: LocationEncoder | None = None
        if config.inputs in ("position", "both"):
            self.position = LocationEncoder(_position_config(config))
            width += self.position.dim
        if config.inputs in ("covariates", "both"):
            extra = config.num_covariates + (2 if config.use_time else 0)
            self.covariate = LocationEncoder(
                LocationEncoderConfig(
                    use_position=False,
                    extra_dim=extra,
                    network="fcnet",
                    network_args={"num_res_blocks": config.covariate_blocks, "dropout": 0.0},
                    dim=config.covariate_dim,
                )
            )
            width += config.covariate_dim
        self.head = nn.Linear(width, config.num_species)

    def forward(self, lonlat: Tensor, covariates: Tensor, doy: Tensor) -> Tensor:
        """Species logits.

        Args:
            lonlat: (B, 2) longitude, latitude in degrees.
            covariates: (B, K) standardised covariates (K may be 0).
            doy: (B,) day of year, NaN = no date (encoded as zeros).

        Returns:
            (B, Q) logits.
        """
        t = encode_day_of_year(doy.float()) if self.config.use_time else None
        parts = []
        if self.position is not None:
            parts.append(self.position(lonlat, t if self.config.time_in_position else None))
        if self.covariate is not None:
            x = covariates.float() if t is None else torch.cat([covariates.float(), t], dim=1)
            parts.append(self.covariate(None, x))
        return self.head(torch.cat(parts, dim=1))

    def init_position(self, encoder: LocationEncoder) -> None:
        """Copy a pre-trained LocationEncoder's weights into the position tower.

        Raises:
            ConfigError: when there is no position tower or the architectures differ.
        """
        if self.position is None:
            raise ConfigError("init needs a position tower; use inputs position or both")
        try:
            self.position.load_state_dict(encoder.state_dict())
        except RuntimeError:
            raise ConfigError(
                "init: the pre-trained encoder does not match the position tower "
                "(its time input differs); fit without a date column or with inputs both"
            ) from None


class _PositionProbs(nn.Module):
    """A position-only SDM as lonlat (N, 2) degrees [, doy (N,)] -> (N, Q) sigmoid scores."""

    def __init__(self, model: SDM) -> None:
        super().__init__()
        self.model = model

    def forward(self, lonlat: Tensor, doy: Tensor | None = None) -> Tensor:
        """P(species | site), (N, Q); ``doy`` NaN or None = no date."""
        d = lonlat.new_full((lonlat.shape[0],), float("nan")) if doy is None else doy
        return torch.sigmoid(self.model(lonlat, lonlat.new_zeros((lonlat.shape[0], 0)), d))


@dataclass
class FittedSDM:
    """A fitted SDM plus everything needed to build its inputs at new sites.

    Attributes:
        model: the network (eval mode).
        species: Q species names, column order.
        standardizer: covariate names and stats (empty when no covariates).
        rasters: raster paths the covariates are sampled from (empty = table covariates).
        options: fitting options and data notes, for provenance.
    """

    model: SDM | None
    species: list[str]
    standardizer: Standardizer
    rasters: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    kde: SpeciesKDE | None = None
    shrink_k: float | None = None

    @property
    def kind(self) -> str:
        """``neural``, ``kde`` (no network) or ``shrunk`` (network pooled with a KDE)."""
        return "kde" if self.model is None else ("neural" if self.kde is None else "shrunk")

    @torch.no_grad()
    def logits(self, lonlat: np.ndarray, covariates: np.ndarray, doy: np.ndarray, batch: int = 8192) -> np.ndarray:
        """(N, Q) logits: the network's, the KDE's log ratio, or their pool (docs/sdm.md).

        Args:
            lonlat: (N, 2) degrees.
            covariates: (N, K) raw covariates in :attr:`standardizer` order.
            doy: (N,) day of year, NaN = none.
            batch: rows per forward pass.

        Returns:
            (N, Q) float64 logits.
        """
        net = None
        if self.model is not None:
            self.model.eval()
            dev = next(self.model.parameters()).device
            z = self.standardizer.transform(covariates) if covariates.shape[1] else covariates.astype(np.float32)
            out = []
            for i in range(0, len(lonlat), batch):
                args = (lonlat[i : i + batch], z[i : i + batch], doy[i : i + batch])
                ll, c, d = (torch.as_tensor(np.array(a, dtype=np.float32), device=dev) for a in args)
                out.append(self.model(ll, c, d).double().cpu().numpy())
            net = np.concatenate(out) if out else np.zeros((0, len(self.species)))
        if self.kde is None:
            assert net is not None
            return net
        zk = self.kde.log_ratio(np.asarray(lonlat, float))
        return zk if net is None else shrink(net, zk, self.kde.counts, float(self.shrink_k or 0.0))

    def onnx_module(self) -> tuple[nn.Module, list[str], bool]:
        """The network as ``module(lonlat (N, 2) degrees[, doy (N,)])`` -> (N, Q) P(species | site).

        For ``geocsp export onnx`` (:class:`geocsp.training.export.Exportable`).

        Returns:
            ``(module, species, takes_doy)``.

        Raises:
            ConfigError: a KDE or shrunk SDM (part of it is a NumPy KDE), or one with a
                covariate tower (covariates come from tables or rasters, not from (lon, lat)).
        """
        if self.model is None or self.kde is not None:
            raise ConfigError(f"a '{self.kind}' SDM has no network alone to export (its scores use a kernel "
                              "density estimate of the presences); refit with --model neural")
        if self.model.covariate is not None:
            raise ConfigError(f"an SDM with --inputs {self.model.config.inputs} needs covariates at each site; "
                              "ONNX export supports position-only SDMs (lon, lat [+ day of year])")
        return _PositionProbs(self.model), list(self.species), bool(self.model.config.use_time)

    def predict(self, lonlat: np.ndarray, covariates: np.ndarray, doy: np.ndarray, batch: int = 8192) -> np.ndarray:
        """Suitability P(species | site) = sigmoid(logits) (see :meth:`logits`).

        Args:
            lonlat: (N, 2) degrees.
            covariates: (N, K) raw covariates in :attr:`standardizer` order.
            doy: (N,) day of year, NaN = none.
            batch: rows per forward pass.

        Returns:
            (N, Q) float64 scores in [0, 1].
        """
        return expit(self.logits(lonlat, covariates, doy, batch))

    def save(self, run_dir: str | Path) -> Path:
        """Write ``RUN_DIR/model/`` (safetensors + JSON); returns that directory."""
        tensors = {} if self.model is None else dict(self.model.state_dict())
        kde_meta = None
        if self.kde is not None:
            arrays, kde_meta = self.kde.to_arrays()
            tensors.update({k: torch.from_numpy(v) for k, v in arrays.items()})
            kde_meta["shrink_k"] = self.shrink_k
        meta = {
            "kind": KIND,
            "model": self.kind,
            "config": None if self.model is None else to_dict(self.model.config),
            "kde": kde_meta,
            "species": self.species,
            "covariates": {"names": list(self.standardizer.names), "mean": list(self.standardizer.mean),
                           "std": list(self.standardizer.std)},
            "rasters": [str(Path(r).resolve()) for r in self.rasters],
            "options": self.options,
            "geocsp_version": __version__,
        }
        return save_checkpoint_dir(Path(run_dir) / MODEL_DIR, tensors, meta)

    @classmethod
    def load(cls, run_dir: str | Path) -> FittedSDM:
        """Load a model saved by :meth:`save` from ``RUN_DIR`` (or ``RUN_DIR/model``).

        Raises:
            CheckpointError: missing, corrupt or not an SDM.
        """
        d = Path(run_dir)
        if d.is_dir() and read_kind(d) is None and read_kind(d / MODEL_DIR) is None:  # not an SDM run: say what it is
            find_artifact(d, [KIND], f"no SDM found (expected {d / MODEL_DIR}); run geocsp sdm fit first")
        d = d / MODEL_DIR if (d / MODEL_DIR).is_dir() else d
        tensors, meta = load_checkpoint_dir(d)
        if meta.get("kind") != KIND:
            raise CheckpointError(f"{d}/config.json: expected kind 'sdm', got {meta.get('kind')!r}")
        try:
            arrays = {k: tensors.pop(k).numpy() for k in list(tensors) if k.startswith("kde.")}
            model = None
            if meta.get("config") is not None:
                model = SDM(from_dict(SDMConfig, meta["config"], where="sdm"))
                model.load_state_dict(tensors)
                model.eval()
            kde_meta = meta.get("kde")
            kde = None if kde_meta is None else SpeciesKDE.from_arrays(arrays, kde_meta)
            cov = meta["covariates"]
            std = Standardizer(tuple(cov["names"]), tuple(cov["mean"]), tuple(cov["std"]))
        except (KeyError, ValueError, RuntimeError, ConfigError) as e:
            raise CheckpointError(f"{d}: invalid SDM checkpoint ({str(e).splitlines()[0]})") from None
        shrink_k = None if kde_meta is None else kde_meta.get("shrink_k")
        return cls(model, list(meta["species"]), std, list(meta.get("rasters", [])), meta.get("options", {}),
                   kde, None if shrink_k is None else float(shrink_k))


register_artifact(KIND, MODEL_DIR)(FittedSDM.load)
