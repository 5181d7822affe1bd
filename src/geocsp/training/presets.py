"""Named run presets (``src/geocsp/presets/*.yaml``) and config resolution.

A preset file has one section per stage (``pretrain:``, ``finetune:``), each a partial
run config. Precedence when resolving a run config:
dataclass defaults < preset < ``--config FILE.yaml`` < flags / ``--set key.path=value``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from geocsp._registry import Registry
from geocsp.config import apply_overrides, deep_merge, from_dict, load_yaml, to_dict
from geocsp.errors import ConfigError

PRESET_DIR = Path(__file__).resolve().parents[1] / "presets"
PRESETS: Registry[Path] = Registry("preset")
STAGES = ("pretrain", "finetune")

C = TypeVar("C")


def _description(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def _register_all() -> None:
    for path in sorted(PRESET_DIR.glob("*.yaml")):
        PRESETS.register(path.stem, description=_description(path))(path)


_register_all()


def list_presets() -> list[str]:
    """Names of the bundled presets."""
    return PRESETS.names()


def load_preset(name: str, stage: str) -> dict[str, Any]:
    """The ``stage`` section (``pretrain`` / ``finetune``) of preset ``name``.

    Raises:
        ConfigError: on an unknown preset or stage.
    """
    if stage not in STAGES:
        raise ConfigError(f"stage must be one of {list(STAGES)}, got {stage!r}")
    entry = PRESETS.get(name)
    data = load_yaml(entry.obj)
    section = data.get(stage, {})
    if not isinstance(section, dict):
        raise ConfigError(f"{entry.obj}: section '{stage}' must be a mapping")
    return section


def resolve_config(cls: type[C], *, stage: str | None = None, preset: str | None = None,
                   config_file: str | Path | None = None, overrides: Sequence[str] = ()) -> C:
    """Build a run config with the documented precedence.

    Args:
        cls: ``PretrainConfig`` or ``FinetuneConfig``.
        stage: preset section to read (needed with ``preset``).
        preset: bundled preset name, or None.
        config_file: a YAML file holding a run config (either the bare mapping or one with a
            ``stage:`` section, like a preset), or None.
        overrides: ``key.path=value`` strings, applied last.

    Raises:
        ConfigError: on an unknown preset, a bad file, an unknown key or an invalid value.
    """
    data: dict[str, Any] = to_dict(cls())
    if preset is not None:
        data = deep_merge(data, load_preset(preset, stage or ""))
    if config_file is not None:
        file_data = load_yaml(config_file)
        if stage in file_data and isinstance(file_data[stage], dict) and set(file_data) <= set(STAGES):
            file_data = file_data[stage]
        try:  # a key the config does not have is the file's error: name the file
            from_dict(cls, deep_merge(to_dict(cls()), file_data))
        except ConfigError as e:
            if str(e).startswith("unknown config key"):
                raise ConfigError(f"{config_file}: {e}") from None
        data = deep_merge(data, file_data)
    data = apply_overrides(data, list(overrides))
    return from_dict(cls, data)
