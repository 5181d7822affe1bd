"""Bounded, safe parsing of one YAML document (config files, ``config.yaml``, ``--set``).

At most :data:`MAX_YAML_BYTES` bytes, :data:`MAX_YAML_DEPTH` levels of nesting,
:data:`MAX_YAML_ALIASES` alias uses and :data:`MAX_YAML_NODES` values once aliases are
expanded, and no mapping that gives a key twice (PyYAML would keep the last value silently),
all checked on the composed node graph before any Python object is built, so an alias bomb,
a deeply nested file or a repeated key is one :class:`~geocsp.errors.ConfigError` line.
Only YAML's safe tags are constructed (``yaml.SafeLoader``).
"""

from __future__ import annotations

from typing import Any

import yaml

from geocsp.errors import ConfigError

MAX_YAML_BYTES = 1 << 20
"""Largest YAML config accepted, in bytes (1 MiB)."""
MAX_YAML_DEPTH = 50
"""Deepest nesting of sequences / mappings accepted in a YAML config."""
MAX_YAML_ALIASES = 256
"""Most alias uses (``*name``) accepted in one YAML document."""
MAX_YAML_NODES = 100_000
"""Most values (scalars, sequences, mappings) a YAML document may hold with aliases expanded."""


class _Refused(Exception):
    """A YAML document beyond the bounds above (message: what was exceeded)."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts aliases and nesting while it composes the node graph."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        """Compose one node (raises _Refused beyond the alias count or the nesting depth)."""
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise _Refused(f"more than {MAX_YAML_ALIASES} aliases")
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _Refused(f"nested deeper than {MAX_YAML_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _check_graph(root: yaml.Node) -> None:
    """Refuse a composed graph that is cyclic, or too deep or too large once aliases expand.

    Heights and expanded sizes are memoised per node: linear in the distinct nodes even
    for an alias bomb whose expansion is exponential.

    Raises:
        _Refused: on a recursive alias, or beyond :data:`MAX_YAML_DEPTH` / :data:`MAX_YAML_NODES`.
    """
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (height, expanded size)
    active: set[int] = set()
    too_deep = f"nested deeper than {MAX_YAML_DEPTH} levels"

    def visit(node: yaml.Node, level: int) -> tuple[int, int]:
        key = id(node)
        if level > MAX_YAML_DEPTH:
            raise _Refused(too_deep)
        if key in active:
            raise _Refused("a recursive alias (a value that contains itself)")
        if key not in done:
            active.add(key)
            if isinstance(node, yaml.MappingNode):
                _refuse_duplicate_keys(node)
            kids = list(node.value) if isinstance(node, yaml.SequenceNode) else (
                [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else [])
            height, size = 1, 1
            for child in kids:
                h, n = visit(child, level + 1)
                height, size = max(height, h + 1), size + n
                if size > MAX_YAML_NODES:
                    raise _Refused(f"more than {MAX_YAML_NODES} values once aliases are expanded")
            active.discard(key)
            done[key] = (height, size)
        if level + done[key][0] - 1 > MAX_YAML_DEPTH:
            raise _Refused(too_deep)
        return done[key]

    visit(root, 1)


def _refuse_duplicate_keys(node: yaml.MappingNode) -> None:
    """Refuse a mapping that gives a key twice (PyYAML silently keeps the last value)."""
    seen: dict[str, int] = {}
    for k, _ in node.value:
        if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
            if k.value in seen:
                raise _Refused(f"key {k.value!r} given twice in one mapping (lines {seen[k.value]} and "
                               f"{k.start_mark.line + 1}); keep one")
            seen[k.value] = k.start_mark.line + 1


def parse_yaml_text(text: str, where: str) -> Any:
    """Parse one YAML document with the bounds of this module (safe tags only).

    Args:
        text: the YAML text.
        where: the file or option it came from, for messages.

    Returns:
        The Python data (None for an empty document).

    Raises:
        ConfigError: on a document beyond :data:`MAX_YAML_BYTES`, :data:`MAX_YAML_DEPTH`,
            :data:`MAX_YAML_ALIASES` or :data:`MAX_YAML_NODES` (checked before any
            object is built), or on invalid YAML (with its line when known).
    """
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"{where}: YAML larger than {MAX_YAML_BYTES} bytes is refused")
    loader = None
    try:
        loader = _BoundedLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_graph(node)
        return loader.construct_document(node)
    except _Refused as e:
        raise ConfigError(f"{where}: YAML refused: {e}") from None
    except (RecursionError, MemoryError):
        raise ConfigError(f"{where}: YAML is too deeply nested or too large") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        at = [f"line {mark.line + 1}"] if mark is not None else []
        problem = getattr(e, "problem", None) or (str(e).splitlines() or [""])[0]
        detail = "; ".join([*at, str(problem)] if problem else at)
        raise ConfigError(f"{where}: invalid YAML" + (f" ({detail})" if detail else "")) from None
    except (ValueError, TypeError) as e:  # e.g. ``!!int abc``
        raise ConfigError(f"{where}: invalid YAML value ({str(e).splitlines()[0]})") from None
    finally:
        if loader is not None:
            loader.dispose()
