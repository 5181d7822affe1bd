"""Networks: structure, config validation and float64 NumPy reference forwards."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from scipy.special import erf
from torch import nn

from geocsp.errors import ConfigError
from geocsp.nets import NETWORKS, create_network, get_network_config, list_networks
from geocsp.nets.fcnet import FCNet, FCNetConfig
from geocsp.nets.ffn import FFN, FFNConfig
from geocsp.nets.simple import MultiBranch, MultiBranchConfig
from geocsp.nets.siren import Siren, SirenConfig

# --------------------------------------------------------------------------- references


def np_act(name: str, x: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "leakyrelu":
        return np.where(x > 0, x, 0.2 * x)
    if name == "gelu":
        return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    assert name == "tanh"
    return np.tanh(x)


def np_linear(lin: nn.Linear, x: np.ndarray) -> np.ndarray:
    w = lin.weight.detach().double().numpy()
    b = lin.bias.detach().double().numpy() if lin.bias is not None else 0.0
    return x @ w.T + b


def np_layernorm(ln: nn.LayerNorm, x: np.ndarray) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    g, b = ln.weight.detach().double().numpy(), ln.bias.detach().double().numpy()
    return (x - mu) / np.sqrt(var + 1e-5) * g + b


def np_ffn(net: FFN, x: np.ndarray) -> np.ndarray:
    """Space2Vec MultiLayerFeedForwardNN in eval mode (dropout = identity), spec §3.1."""
    cfg = net.config
    for layer in net.hidden:
        y = np_act(cfg.activation, np_linear(layer.linear, x))
        if cfg.skip_connection and y.shape == x.shape:
            y = y + x
        x = np_layernorm(layer.norm, y) if cfg.use_layernorm else y
    y = np_linear(net.output.linear, x)
    return np_act(cfg.activation, y) if cfg.output_activation else y


def np_fcnet(net: FCNet, x: np.ndarray) -> np.ndarray:
    relu = lambda v: np.maximum(v, 0.0)  # noqa: E731
    x = relu(np_linear(net.input, x))
    for blk in net.blocks:
        x = x + relu(np_linear(blk.w2, relu(np_linear(blk.w1, x))))
    return x


def run64(net: nn.Module, x: np.ndarray) -> np.ndarray:
    return net.eval()(torch.from_numpy(x).float()).detach().double().numpy()


# --------------------------------------------------------------------------- registry


def test_registry_names_and_modules() -> None:
    assert set(list_networks()) == {"ffn", "fcnet", "siren", "linear", "multibranch"}
    for mod in ("ffn", "fcnet", "siren", "simple"):
        module = importlib.import_module(f"geocsp.nets.{mod}")
        assert any(e.obj.__module__ == module.__name__ for e in NETWORKS), mod


@pytest.mark.parametrize("name", ["ffn", "fcnet", "siren", "linear", "multibranch"])
def test_every_network_shapes(name: str) -> None:
    torch.manual_seed(0)
    net = create_network(name, 6, 5)
    assert net(torch.randn(7, 6)).shape == (7, 5)
    assert get_network_config(name) == net.config


def test_create_network_errors() -> None:
    with pytest.raises(ConfigError, match="did you mean 'ffn'"):
        create_network("fnn", 4, 4)
    with pytest.raises(ConfigError, match=r"unknown config key 'network_args.hiden_dim'"):
        create_network("ffn", 4, 4, hiden_dim=3)
    with pytest.raises(ConfigError, match="out_dim must be >= 1"):
        create_network("ffn", 4, 0)


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (FFNConfig, {"dropout": 1.0}, r"ffn.dropout must be in \[0, 1\)"),
        (FFNConfig, {"activation": "swish"}, "unknown activation 'swish'"),
        (FFNConfig, {"num_hidden_layers": -1}, "num_hidden_layers must be >= 0"),
        (FFNConfig, {"hidden_dim": 0}, "hidden_dim must be >= 1"),
        (FCNetConfig, {"dropout": -0.1}, "fcnet.dropout"),
        (FCNetConfig, {"num_res_blocks": -2}, "num_res_blocks must be >= 0"),
        (SirenConfig, {"w0": 0.0}, "must be > 0"),
        (MultiBranchConfig, {"branches": 0}, "branches must be >= 1"),
    ],
)
def test_config_validation(cls: type, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        cls(**kwargs)


# --------------------------------------------------------------------------- FFN


@pytest.mark.parametrize("layers", [0, 1, 3])
@pytest.mark.parametrize("layernorm", [True, False])
def test_ffn_structure(layers: int, layernorm: bool) -> None:
    net = FFN(6, 5, FFNConfig(hidden_dim=8, num_hidden_layers=layers, use_layernorm=layernorm))
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    norms = [m for m in net.modules() if isinstance(m, nn.LayerNorm)]
    assert len(linears) == layers + 1
    assert len(norms) == (layers if layernorm else 0)
    assert isinstance(net.output.norm, nn.Identity) and not net.output.skip
    # skip only where widths agree: hidden layers after the first
    assert [layer.skip for layer in net.hidden] == [i > 0 for i in range(layers)]
    assert all(ln.eps == 1e-5 for ln in norms)


def test_ffn_default_matches_reference_parameter_count() -> None:
    # spec §3.1: grid PE (4S = 128) -> 512 -> 256 with one LayerNorm(512)
    net = FFN(128, 256)
    n = sum(p.numel() for p in net.parameters())
    assert n == (128 * 512 + 512) + 2 * 512 + (512 * 256 + 256)


def test_ffn_xavier_uniform_init() -> None:
    torch.manual_seed(0)
    net = FFN(300, 200, FFNConfig(hidden_dim=400))
    w = net.hidden[0].linear.weight.detach()
    bound = np.sqrt(6.0 / (300 + 400))
    assert float(w.abs().max()) <= bound
    assert float(w.abs().max()) > 0.95 * bound  # uniform up to the Xavier bound
    assert abs(float(w.var()) - bound**2 / 3) < 0.05 * bound**2 / 3


@pytest.mark.parametrize("act", ["relu", "leakyrelu", "gelu", "sigmoid", "tanh"])
@pytest.mark.parametrize(
    ("layers", "hidden", "out_act"), [(1, 8, True), (2, 8, False), (2, 6, True), (0, 8, True)]
)
def test_ffn_matches_numpy_float64(act: str, layers: int, hidden: int, out_act: bool) -> None:
    torch.manual_seed(1)
    cfg = FFNConfig(
        hidden_dim=hidden, num_hidden_layers=layers, activation=act, output_activation=out_act
    )
    net = FFN(6, 5, cfg)
    for p in net.parameters():  # non-trivial LayerNorm affine parameters
        p.data += 0.1 * torch.randn_like(p)
    x = np.random.default_rng(0).normal(size=(9, 6))
    np.testing.assert_allclose(run64(net, x), np_ffn(net, x), rtol=1e-4, atol=1e-5)


def test_ffn_output_activation_flag_in_train_mode() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 6)
    ref = FFN(6, 32, FFNConfig(num_hidden_layers=0, dropout=0.5))
    plain = FFN(6, 32, FFNConfig(num_hidden_layers=0, dropout=0.5, output_activation=False))
    plain.load_state_dict(ref.state_dict())
    ref.train(), plain.train()
    a, b = ref(x), ref(x)
    assert not torch.equal(a, b)  # output dropout is active
    assert (a >= 0).all() and (a == 0).float().mean() > 0.5  # ReLU then dropout p = 0.5
    assert torch.equal(plain(x), plain(x))  # plain linear output: no dropout
    assert (plain(x) < 0).any()
    ref.eval(), plain.eval()
    np.testing.assert_allclose(ref(x).detach(), torch.relu(plain(x)).detach(), rtol=1e-6)


def test_ffn_eval_is_deterministic() -> None:
    net = FFN(6, 5, FFNConfig(num_hidden_layers=2)).eval()
    x = torch.randn(10, 6)
    assert torch.equal(net(x), net(x))


# --------------------------------------------------------------------------- FCNet


def test_fcnet_structure_and_numpy_float64() -> None:
    torch.manual_seed(2)
    net = FCNet(4, 16, FCNetConfig())
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 1 + 2 * 4
    assert all(m.out_features == 16 for m in linears)
    x = np.random.default_rng(1).uniform(-1, 1, size=(12, 4))
    np.testing.assert_allclose(run64(net, x), np_fcnet(net, x), rtol=1e-4, atol=1e-5)


def test_fcnet_dropout_only_in_train_mode() -> None:
    net = FCNet(4, 32, FCNetConfig(num_res_blocks=2, dropout=0.5))
    x = torch.randn(8, 4)
    net.train()
    assert not torch.equal(net(x), net(x))
    net.eval()
    assert torch.equal(net(x), net(x))


# --------------------------------------------------------------------------- SIREN, linear, multibranch


def test_siren_init_and_numpy_float64() -> None:
    torch.manual_seed(3)
    cfg = SirenConfig(hidden_dim=64, num_layers=3)
    net = Siren(5, 7, cfg)
    sines = [m for m in net.body if hasattr(m, "w0")]
    assert [s.w0 for s in sines] == [30.0, 1.0, 1.0]
    assert float(sines[0].linear.weight.detach().abs().max()) <= 1.0 / 5
    assert float(sines[1].linear.weight.detach().abs().max()) <= np.sqrt(6.0 / 64)
    x = np.random.default_rng(2).normal(size=(6, 5))
    h = x
    for s in sines:
        h = np.sin(s.w0 * np_linear(s.linear, h))
    np.testing.assert_allclose(run64(net, x), np_linear(net.output, h), rtol=1e-4, atol=1e-5)


def test_multibranch_sums_branch_mlps() -> None:
    torch.manual_seed(4)
    net = MultiBranch(9, 4, MultiBranchConfig(branches=3, hidden_dim=8, num_hidden_layers=2))
    assert len(net.branches) == 3
    x = np.random.default_rng(3).normal(size=(5, 9))
    want = np.zeros((5, 4))
    for i, branch in enumerate(net.branches):
        h = x[:, 3 * i : 3 * i + 3]
        lins = [m for m in branch if isinstance(m, nn.Linear)]
        for lin in lins[:-1]:
            h = np.maximum(np_linear(lin, h), 0.0)
        want += np_linear(lins[-1], h)
    np.testing.assert_allclose(run64(net, x), want, rtol=1e-4, atol=1e-5)


def test_multibranch_requires_divisible_input() -> None:
    with pytest.raises(ConfigError, match="not divisible by branches=2"):
        MultiBranch(5, 4, MultiBranchConfig(branches=2))


def test_linear_network_is_affine() -> None:
    net = create_network("linear", 3, 2, bias=False)
    x = torch.randn(4, 3)
    assert torch.allclose(net(2 * x), 2 * net(x))
