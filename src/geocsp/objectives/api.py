"""The objective registries and their factories.

``OBJECTIVES`` holds the pre-training objectives and ``FINETUNE_LOSSES`` the fine-tuning
losses; the family modules register into them at their definition sites. A registered
variant (e.g. the Table 2 ablation CSP-MC-BL) is the same objective class with its own
config dataclass, a frozen subclass that changes only field defaults::

    @register_variant(OBJECTIVES, "csp-mc-bl", ContrastiveMC)
    @dataclass(frozen=True)
    class CspMcBlConfig(MCConfig):
        \"\"\"CSP-MC-BL: no SimCSE term (α2 = 0).\"\"\"

        simcse_weight: float = 0.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from geocsp._registry import Registry
from geocsp.config import from_dict

OBJECTIVES: Registry[Any] = Registry("objective")
FINETUNE_LOSSES: Registry[Any] = Registry("fine-tune loss")

ConfigT = TypeVar("ConfigT", bound=type)


def register_variant(
    registry: Registry[Any], name: str, obj: Any, *, aliases: tuple[str, ...] = ()
) -> Callable[[ConfigT], ConfigT]:
    """Class decorator: register ``obj`` under ``name`` with the decorated config class.

    The registry entry's description is the first line of the config's docstring.

    Args:
        registry: ``OBJECTIVES`` or ``FINETUNE_LOSSES``.
        name: canonical name of the variant.
        obj: the objective / loss class the variant builds.
        aliases: other accepted names.

    Returns:
        A decorator that registers and returns the config class unchanged.
    """

    def decorator(config: ConfigT) -> ConfigT:
        lines = (config.__doc__ or "").strip().splitlines()
        registry.register(
            name, aliases=aliases, config=config, description=lines[0].strip() if lines else ""
        )(obj)
        return config

    return decorator


def build(registry: Registry[Any], name: str, overrides: dict[str, Any], **kwargs: Any) -> Any:
    """Build ``registry[name]`` from its config dataclass filled with ``overrides``.

    Args:
        registry: ``OBJECTIVES`` or ``FINETUNE_LOSSES``.
        name: registered name or alias.
        overrides: config fields.
        **kwargs: passed to the constructor after the config.

    Returns:
        The constructed objective / loss module.

    Raises:
        ConfigError: unknown name, unknown key or invalid value.
    """
    entry = registry.get(name)
    assert entry.config is not None
    cfg: Any = from_dict(entry.config, overrides, where=entry.name)
    return entry.obj(cfg, **kwargs)


def list_objectives() -> list[str]:
    """Canonical names of the registered pre-training objectives.

    Returns:
        Names in registration order.
    """
    return OBJECTIVES.names()


def get_objective_config(name: str) -> type:
    """The config dataclass of pre-training objective ``name`` (aliases accepted).

    Args:
        name: registered name or alias.

    Returns:
        The config class.

    Raises:
        ConfigError: unknown name.
    """
    cfg = OBJECTIVES.get(name).config
    assert cfg is not None
    return cfg


def create_objective(name: str, *, loc_dim: int, img_dim: int, **overrides: Any) -> Any:
    """Build pre-training objective ``name`` with config ``overrides``.

    Args:
        name: registered name or alias, e.g. ``"csp-mc-bld"`` / ``"contsoftmax"``.
        loc_dim: d, the location-embedding dimension.
        img_dim: D, the image-feature dimension.
        **overrides: config fields.

    Returns:
        The objective module.

    Raises:
        ConfigError: unknown name, unknown key or invalid value.
    """
    return build(OBJECTIVES, name, overrides, loc_dim=loc_dim, img_dim=img_dim)


def list_finetune_losses() -> list[str]:
    """Canonical names of the registered fine-tuning losses.

    Returns:
        Names in registration order.
    """
    return FINETUNE_LOSSES.names()


def create_finetune_loss(name: str, **overrides: Any) -> Any:
    """Build fine-tuning loss ``name`` (e.g. ``"full"``) with config ``overrides``.

    Args:
        name: registered name or alias.
        **overrides: config fields.

    Returns:
        The loss module.

    Raises:
        ConfigError: unknown name, unknown key or invalid value.
    """
    return build(FINETUNE_LOSSES, name, overrides)
