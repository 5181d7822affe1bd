"""Frozen dataclass configs <-> dict / JSON / YAML, with dotted overrides.

This is the one boundary where plain dicts become typed configs. Precedence used by the
CLI: dataclass defaults < preset < ``--config file.yaml`` < ``--set a.b=v`` / flags.

YAML (config files, run directories' ``config.yaml``, ``--set`` values) is parsed by
:func:`geocsp.yamlsafe.parse_yaml_text`: bounded in size, nesting and aliases, safe tags
only, no key given twice; anything else is one :class:`~geocsp.errors.ConfigError` line.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from geocsp.errors import ConfigError
from geocsp.yamlsafe import MAX_YAML_BYTES, parse_yaml_text

C = TypeVar("C")

def to_dict(cfg: Any) -> Any:
    """Recursively convert a dataclass (or containers of them) to plain Python data.

    Args:
        cfg: a dataclass instance, list / tuple / dict of them, Path or plain value.

    Returns:
        JSON-compatible data: dicts, lists, strings, numbers, booleans, None.
    """
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {str(k): to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, Path):
        return str(cfg)
    return cfg


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any or value is None:
        return value
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        wanted = []  # each alternative's "expected ..." (e.g. true/false or one of [...])
        for a in non_none:
            try:
                return _coerce(a, value, where)
            except (ConfigError, TypeError, ValueError) as e:
                msg = str(e).removeprefix(f"{where}: ")
                wanted.append(msg.rpartition(", got ")[0] or msg)
        if all(w.startswith("expected ") for w in wanted):
            raise ConfigError(f"{where}: {' or '.join([wanted[0], *(w[9:] for w in wanted[1:])])}, got {value!r}")
        raise ConfigError(f"{where}: cannot interpret {value!r} ({'; '.join(wanted)})")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where=where)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            value = [value]
        inner = args[0] if args else Any
        out = [_coerce(inner, v, where) for v in value]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
        if f != int(f):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(f)
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if tp is str:
        return str(value)
    return value


def from_dict(cls: type[C], data: dict[str, Any] | None, *, where: str = "") -> C:
    """Build dataclass ``cls`` from a mapping, refusing unknown keys.

    Args:
        cls: the dataclass to build.
        data: field name -> value; values are coerced to the field types; None is empty.
        where: dotted prefix of the keys, used in error messages.

    Returns:
        An instance of ``cls``.

    Raises:
        ConfigError: on an unknown key or a value of the wrong type.
    """
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        hint = difflib.get_close_matches(unknown[0], list(names), n=1)
        sugg = f"; did you mean '{hint[0]}'?" if hint else ""
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key '{prefix}{unknown[0]}'{sugg} (valid: {', '.join(sorted(names))})"
        )
    kwargs = {}
    for k, v in data.items():
        kwargs[k] = _coerce(hints[k], v, f"{where}.{k}" if where else k)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{cls.__name__}: {e}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value`` into (["a","b","c"], yaml-parsed value).

    Args:
        text: ``key.path=value``; the value is parsed as YAML.

    Returns:
        ``(keys, value)``.

    Raises:
        ConfigError: when ``text`` has no ``=`` or an empty key, or its value is YAML
            beyond the bounds of :func:`parse_yaml_text` (a value that is not valid YAML
            is kept as a string).

    >>> parse_override("train.lr=1e-3")
    (['train', 'lr'], 0.001)
    """
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not of the form key.path=value")
    key, raw = text.split("=", 1)
    if not [p for p in key.strip().split(".") if p]:
        raise ConfigError(f"override '{text}': expected a key before '=' (key.path=value)")
    try:
        value = parse_yaml_text(raw, f"override '{key}'") if raw != "" else ""
    except ConfigError as e:
        if "invalid YAML" not in str(e):
            raise
        value = raw
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else value
        except ValueError:
            pass
    return [p for p in key.strip().split(".") if p], value


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Return a deep copy of ``data`` with ``key.path=value`` overrides applied.

    Args:
        data: nested config mapping (left unchanged).
        overrides: ``key.path=value`` strings, applied in order.

    Returns:
        The overridden copy.

    Raises:
        ConfigError: on a malformed override or a key path through a non-mapping.
    """
    out = json.loads(json.dumps(data))
    for text in overrides:
        keys, value = parse_override(text)
        node = out
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{text}': '{k}' is not a section")
        node[keys[-1]] = value
    return out


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``top`` over ``base`` (new dict).

    Args:
        base: the lower-precedence mapping.
        top: the higher-precedence mapping; nested mappings merge, other values replace.

    Returns:
        The merged mapping (neither input is modified).
    """
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path``.

    Args:
        path: a YAML file.

    Returns:
        The top-level mapping (empty for an empty file).

    Raises:
        ConfigError: when the file is missing, unreadable, larger than
            :data:`MAX_YAML_BYTES`, not UTF-8, unparsable, beyond the nesting / alias
            bounds of :func:`parse_yaml_text`, or not a mapping.
    """
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: expected a YAML config file, found a directory")
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_YAML_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{p}: cannot read ({e.strerror or e})") from None
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(f"{p}: config larger than {MAX_YAML_BYTES} bytes is refused")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: expected UTF-8 YAML text, found byte 0x{raw[e.start]:02x} at offset {e.start}") from None
    data = parse_yaml_text(text, str(p))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a YAML mapping at the top level")
    return data


def dump_yaml(cfg: Any) -> str:
    """Serialise a dataclass or dict to YAML text (key order preserved).

    Args:
        cfg: a dataclass instance or mapping.

    Returns:
        YAML text.
    """
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
