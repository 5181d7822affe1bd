"""The peers' checkpoint formats ``geocsp convert`` reads: SatCLIP, SINR and CSP / TorchSpatial.

Each converter maps the peer's hyper-parameters onto a geocsp architecture whose outputs
equal the peer's own module (tests/pretrained/test_convert_*.py check 1,000 points against
the peer's code) and renames its tensors; docs/pretrained.md has the tables.

* ``satclip`` — a SatCLIP Lightning ``.ckpt`` (``hyper_parameters`` + ``state_dict``, the
  location encoder under ``model.location.``): spherical harmonics in SatCLIP's convention
  (``spherical_harmonics_satclip``, L = ``legendre_polys`` − 1) and SIREN.
* ``sinr`` — a SINR ``model.pt`` (``params`` + ``state_dict``): ``ResidualFCNet`` on
  ``sin_cos`` coordinates (geocsp ``wrap`` + ``fcnet``); ``env`` / ``sin_cos_env`` inputs
  become ``extra_dim`` covariates appended after the position encoding, as SINR does.
* ``csp`` — a CSP reference / TorchSpatial ``.pth.tar`` (``params`` + ``state_dict``):
  ``Space2Vec-grid``/``-theory``, ``Sphere2Vec-sphereC``/``-sphereC+``/``-sphereM``,
  ``xyz`` with the Space2Vec FFN, or ``wrap`` with the FCNet. The classification head
  (``class_emb``) and the CSP image projection are not part of the encoder and are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from geocsp.errors import CheckpointError
from geocsp.nets.location_encoder import LocationEncoderConfig
from geocsp.pretrained.convert import (
    CONVERTERS,
    Converted,
    PeerFormat,
    choice,
    param,
    renamed,
    section,
    tensors_under,
)

SATCLIP_PREFIX = "model.location."
"""Where SatCLIP's Lightning module keeps the location encoder."""
WRAP_DIM = 4
"""Width of the sin/cos (``wrap``) coordinate features SINR and geo_prior use."""
NUMBER = (int, float)


def _satclip(ckpt: Mapping[str, Any], where: str) -> Converted:
    """SatCLIP ``.ckpt`` -> spherical harmonics (SatCLIP basis) + SIREN."""
    hp = section(ckpt, "hyper_parameters", where, "SatCLIP Lightning")
    at = f"{where}: hyper_parameters"
    choice(hp, "le_type", ("sphericalharmonics",), at)
    choice(hp, "pe_type", ("siren",), at)
    if hp.get("harmonics_calculation", "analytic") != "analytic":
        raise CheckpointError(
            f"{at}: harmonics_calculation = {hp['harmonics_calculation']!r} cannot be converted; "
            "geocsp reproduces SatCLIP's 'analytic' basis"
        )
    legendre = param(hp, "legendre_polys", at)
    if legendre < 1:
        raise CheckpointError(f"{at}: legendre_polys = {legendre} must be >= 1")
    layers = param(hp, "num_hidden_layers", at)
    state = tensors_under(section(ckpt, "state_dict", where, "SatCLIP Lightning"), SATCLIP_PREFIX, where)
    names = {f"nnet.layers.{i}.{p}": f"network.body.{i}.linear.{p}" for i in range(layers) for p in ("weight", "bias")}
    names.update({f"nnet.last_layer.{p}": f"network.output.{p}" for p in ("weight", "bias")})
    config = LocationEncoderConfig(
        encoder="spherical_harmonics_satclip",
        encoder_args={"max_degree": legendre - 1},
        network="siren",
        network_args={"hidden_dim": param(hp, "capacity", at), "num_layers": layers,
                      "w0": 1.0, "w0_initial": 30.0, "dropout": 0.0},
        dim=param(hp, "embed_dim", at),
    )
    keep = ("le_type", "pe_type", "legendre_polys", "harmonics_calculation", "capacity",
            "num_hidden_layers", "embed_dim")
    return Converted(config, renamed(state, names, where, "SatCLIP location-encoder"),
                     {k: hp[k] for k in keep if k in hp})


def _fcnet_names(depth: int) -> dict[str, str]:
    """geo_prior / SINR ``feats`` Sequential (Linear, ReLU, ResLayer x depth) -> geocsp ``fcnet``."""
    names = {f"feats.0.{p}": f"network.input.{p}" for p in ("weight", "bias")}
    for i in range(depth):
        for w in ("w1", "w2"):
            names.update({f"feats.{i + 2}.{w}.{p}": f"network.blocks.{i}.{w}.{p}" for p in ("weight", "bias")})
    return names


def _own(state: Mapping[str, Any], prefix: str, part: str, where: str) -> dict[str, Any]:
    """The tensors under ``prefix`` whose key then starts with ``part`` (prefix removed)."""
    return {k: v for k, v in tensors_under(state, prefix, where).items() if k.startswith(part)}


def _sinr(ckpt: Mapping[str, Any], where: str) -> Converted:
    """SINR ``model.pt`` -> wrap (+ covariates) + FCNet; the species head is dropped."""
    params = section(ckpt, "params", where, "SINR")
    at = f"{where}: params"
    choice(params, "model", ("ResidualFCNet",), at)
    enc = choice(params, "input_enc", ("sin_cos", "env", "sin_cos_env"), at)
    input_dim, depth = param(params, "input_dim", at), param(params, "depth", at)
    position = enc != "env"
    extra = input_dim - (WRAP_DIM if position else 0)
    if extra < 0 or (enc == "sin_cos" and extra != 0) or (enc != "sin_cos" and extra == 0):
        raise CheckpointError(f"{at}: input_dim = {input_dim} does not fit input_enc = {enc!r}")
    state = tensors_under(section(ckpt, "state_dict", where, "SINR"), "", where)
    state = {k: v for k, v in state.items() if not k.startswith("class_emb.")}
    config = LocationEncoderConfig(
        encoder="wrap", network="fcnet", network_args={"num_res_blocks": depth, "dropout": 0.5},
        dim=param(params, "num_filts", at), extra_dim=extra, use_position=position,
    )
    keep = ("model", "input_enc", "input_dim", "num_filts", "depth", "num_classes", "loss")
    return Converted(config, renamed(state, _fcnet_names(depth), where, "SINR ResidualFCNet"),
                     {k: params[k] for k in keep if k in params})


CSP_ENCODERS = {
    "Space2Vec-grid": "grid", "grid": "grid", "Space2Vec-theory": "theory", "theory": "theory",
    "Sphere2Vec-sphereC": "sphereC", "sphere": "sphereC", "Sphere2Vec-sphereC+": "sphereC+",
    "spheregrid": "sphereC+", "Sphere2Vec-sphereM": "sphereM", "spheremixscale": "sphereM",
    "xyz": "xyz", "wrap": "wrap",
}  # fmt: skip
"""CSP / TorchSpatial ``spa_enc_type`` -> the geocsp encoder with the same features (checked)."""
_MULTISCALE = ("grid", "theory", "sphereC", "sphereC+", "sphereM")


def _ffn_prefix(state: Mapping[str, Any], where: str) -> str:
    """The shortest prefix of ``ffn.layers.0.linear.weight`` (``spa_enc.`` in a CSP model)."""
    found = sorted((k[: -len("ffn.layers.0.linear.weight")] for k in state
                    if isinstance(k, str) and k.endswith("ffn.layers.0.linear.weight")), key=len)
    if not found:
        raise CheckpointError(f"{where}: not a CSP / TorchSpatial location-encoder state dict (no '*ffn.layers.0.linear.weight')")
    return found[0]


def _ffn_names(hidden: int, layernorm: bool) -> dict[str, str]:
    """TorchSpatial ``MultiLayerFeedForwardNN`` keys -> geocsp ``ffn`` keys."""
    names: dict[str, str] = {}
    for i in range(hidden + 1):
        dst = f"network.hidden.{i}" if i < hidden else "network.output"
        names.update({f"ffn.layers.{i}.linear.{p}": f"{dst}.linear.{p}" for p in ("weight", "bias")})
        if layernorm and i < hidden:
            names.update({f"ffn.layers.{i}.layernorm.{p}": f"{dst}.norm.{p}" for p in ("weight", "bias")})
    return names


def _csp(ckpt: Mapping[str, Any], where: str) -> Converted:
    """CSP reference / TorchSpatial ``.pth.tar`` -> the same encoder + Space2Vec FFN (or FCNet)."""
    params = section(ckpt, "params", where, "CSP / TorchSpatial")
    state = section(ckpt, "state_dict", where, "CSP / TorchSpatial")
    at = f"{where}: params"
    name = choice(params, "spa_enc_type", CSP_ENCODERS, at)
    dim = param(params, "num_filts", at)
    keep = {k: params[k] for k in ("spa_enc_type", "num_filts", "frequency_num", "min_radius", "max_radius",
                                   "freq_init", "num_hidden_layer", "hidden_dim", "spa_f_act", "use_layn",
                                   "skip_connection", "dropout", "unsuper_loss") if k in params}
    if name == "wrap":
        if params.get("loc_encode", "encode_cos_sin") != "encode_cos_sin" or params.get("use_date_feats", False):
            raise CheckpointError(f"{at}: wrap with loc_encode != 'encode_cos_sin' or use_date_feats cannot be converted")
        prefix = min((k[: -len("feats.0.weight")] for k in state if isinstance(k, str) and k.endswith("feats.0.weight")),
                     key=len, default=None)
        if prefix is None:
            raise CheckpointError(f"{where}: not a CSP wrap (FCNet) state dict (no '*feats.0.weight')")
        tensors = _own(state, prefix, "feats.", where)
        config = LocationEncoderConfig(encoder="wrap", network="fcnet",
                                       network_args={"num_res_blocks": 4, "dropout": 0.5}, dim=dim)
        return Converted(config, renamed(tensors, _fcnet_names(4), where, "CSP wrap FCNet"), keep)
    encoder_args: dict[str, Any] = {}
    if name in _MULTISCALE:
        choice(params, "freq_init", ("geometric",), at)
        encoder_args = {"num_scales": param(params, "frequency_num", at),
                        "r_min_deg": float(param(params, "min_radius", at, NUMBER)),
                        "r_max_deg": float(param(params, "max_radius", at, NUMBER))}
        if name in ("grid", "theory"):  # degrees: phases to ~1e3 rad, computed in float64 like TorchSpatial
            encoder_args["float64_phase"] = True
    hidden = param(params, "num_hidden_layer", at)
    layernorm = bool(param(params, "use_layn", at, (bool,)))
    dropout = params.get("dropout")
    network_args = {
        "hidden_dim": param(params, "hidden_dim", at), "num_hidden_layers": hidden,
        "dropout": 0.0 if dropout is None else float(param(params, "dropout", at, NUMBER)),
        "activation": param(params, "spa_f_act", at, (str,)).lower(), "use_layernorm": layernorm,
        "skip_connection": bool(param(params, "skip_connection", at, (bool,))), "output_activation": True,
    }
    prefix = _ffn_prefix(state, where)
    own = _own(state, prefix, "ffn.", where)
    config = LocationEncoderConfig(encoder=name, encoder_args=encoder_args, network="ffn",
                                   network_args=network_args, dim=dim)
    return Converted(config, renamed(own, _ffn_names(hidden, layernorm), where, "CSP / TorchSpatial"), keep)


CONVERTERS.register("satclip", description="SatCLIP Lightning .ckpt: spherical harmonics (SatCLIP basis) + SIREN.")(
    PeerFormat("SatCLIP", "Lightning .ckpt", _satclip))
CONVERTERS.register("sinr", description="SINR model.pt: ResidualFCNet on sin/cos coordinates (+ env covariates).")(
    PeerFormat("SINR", "model.pt", _sinr))
CONVERTERS.register("csp", aliases=("torchspatial",),
                    description="CSP reference / TorchSpatial .pth.tar: Space2Vec / Sphere2Vec + FFN, or wrap + FCNet.")(
    PeerFormat("CSP / TorchSpatial", ".pth.tar", _csp))
