"""Import the peers' own modules as test oracles, without their heavy package imports.

The peers are installed with ``pip install --no-deps`` (``make install-test``): ``rangegeo``
(SatCLIP's location encoder and spherical harmonics) and ``torchspatial`` (the CSP /
Space2Vec / Sphere2Vec encoders). Their package ``__init__`` files import what the oracle
does not need (huggingface_hub, einops, a missing module), so the package is replaced by
an empty package module pointing at the installed files while one of its modules is
imported, and only the imports a module needs but never uses are stubbed.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

N_POINTS = 1000


def installed(package: str) -> bool:
    """Whether ``package`` is installed (found without importing it)."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def package_root(package: str) -> Path:
    """The directory of the installed ``package``."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))


def stub_module(name: str, **attrs: Any) -> types.ModuleType:
    """A stand-in module ``name`` with ``attrs`` (for imports the oracle never calls)."""
    mod = types.ModuleType(name)
    for k, v in attrs.items():
        setattr(mod, k, v)
    return mod


SATCLIP_STUBS = {"einops": stub_module("einops", rearrange=None)}
"""rangegeo's SatCLIP code imports ``einops.rearrange`` (only SIREN modulation uses it)."""


def _empty_package(name: str, path: Path) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__path__ = [str(path)]
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
    mod.__spec__.submodule_search_locations = [str(path)]
    return mod


@contextmanager
def peer_modules(package: str, stubs: dict[str, Any], *, flat: bool = False,
                 empty: tuple[str, ...] = ()) -> Iterator[None]:
    """Make ``package``'s modules importable with ``stubs`` standing in for unused imports.

    Args:
        package: the installed peer package.
        stubs: module name -> stand-in object, for imports the oracle never calls.
        flat: the peer imports its siblings as top-level modules (``from module import *``,
            TorchSpatial): put its directory on ``sys.path`` instead of stubbing the package.
        empty: sub-packages (relative, e.g. ``model``) whose ``__init__`` is skipped too.

    Yields:
        Nothing; on exit the peer's modules and the stubs leave ``sys.modules`` (and the
        peer's directory ``sys.path``); other modules imported meanwhile (torch's lazy
        submodules) stay, since torch cannot register its operators twice.
    """
    root = package_root(package)
    before = dict(sys.modules)
    path_before = list(sys.path)
    replaced = {**stubs}
    if not flat:
        replaced[package] = _empty_package(package, root)
        for sub in empty:
            replaced[f"{package}.{sub}"] = _empty_package(f"{package}.{sub}", root.joinpath(*sub.split(".")))
    sys.modules.update(replaced)
    if flat:
        sys.path.insert(0, str(root))
    try:
        yield
    finally:
        def peer(name: str, mod: Any) -> bool:
            if name == package or name.startswith(package + ".") or name in stubs:
                return True
            file = getattr(mod, "__file__", None)
            return flat and file is not None and Path(file).resolve().is_relative_to(root.resolve())

        for k in [k for k, m in list(sys.modules.items()) if k not in before and peer(k, m)]:
            del sys.modules[k]
        sys.modules.update({k: v for k, v in before.items() if k in replaced})
        sys.path[:] = path_before


def sphere_points(dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    """(N_POINTS, 2) lon, lat degrees uniform on the sphere, seeded."""
    g = torch.Generator().manual_seed(seed)
    lon = torch.rand(N_POINTS, generator=g, dtype=torch.float64) * 360.0 - 180.0
    lat = torch.rad2deg(torch.asin(torch.rand(N_POINTS, generator=g, dtype=torch.float64) * 2.0 - 1.0))
    return torch.stack((lon, lat), dim=1).to(dtype)


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| in float64."""
    return float((a.double() - b.double()).abs().max())
