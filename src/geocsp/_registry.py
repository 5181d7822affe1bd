"""One generic, case-insensitive registry used for every component family.

A registry maps a canonical name (the paper's name) to an object, usually a class or a
factory, plus optional aliases (the reference code's names) and an optional config
dataclass. Registration happens at the definition site with a decorator::

    @ENCODERS.register("sphereC+", aliases=("spheregrid",), config=SphereConfig)
    class SphereCPlus(PositionEncoder): ...

Lookups are case-insensitive. Unknown names raise :class:`~geocsp.errors.ConfigError`
with a "did you mean" suggestion. Registering a name twice is an error.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from geocsp.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered component.

    Args:
        name: canonical (paper) name.
        obj: the registered class or factory.
        aliases: other accepted names (e.g. reference-code names).
        config: config dataclass for this component, or None.
        description: one line, the first line of the object's docstring.
    """

    name: str
    obj: T
    aliases: tuple[str, ...]
    config: type | None
    description: str

    def config_type(self) -> type[Any]:
        """The component's config dataclass.

        Returns:
            ``config``, narrowed to a class.

        Raises:
            ConfigError: when the component was registered without a config.
        """
        if self.config is None:
            raise ConfigError(f"'{self.name}' has no config dataclass")
        return self.config


class Registry(Generic[T]):
    """A named family of components (encoders, networks, objectives, ...).

    Args:
        kind: singular noun used in error messages, e.g. ``"encoder"``.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._lookup: dict[str, str] = {}

    def register(
        self,
        name: str,
        *,
        aliases: tuple[str, ...] = (),
        config: type | None = None,
        description: str | None = None,
    ) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` and ``aliases``.

        Args:
            name: canonical name.
            aliases: other accepted names.
            config: the component's config dataclass, or None.
            description: one-line description; default the first docstring line of ``obj``.

        Returns:
            A decorator that registers its argument and returns it unchanged.

        Raises:
            ConfigError: if the name or an alias is already registered.
        """

        def decorator(obj: T) -> T:
            doc = description or (getattr(obj, "__doc__", None) or "").strip().splitlines()
            desc = doc if isinstance(doc, str) else (doc[0].strip() if doc else "")
            entry = Entry(name=name, obj=obj, aliases=tuple(aliases), config=config, description=desc)
            for key in (name, *aliases):
                low = key.lower()
                if low in self._lookup:
                    raise ConfigError(
                        f"{self.kind} name '{key}' is already registered "
                        f"(as '{self._lookup[low]}')"
                    )
            for key in (name, *aliases):
                self._lookup[key.lower()] = name
            self._entries[name] = entry
            return obj

        return decorator

    def canonical(self, name: str) -> str:
        """The canonical name for ``name`` (case-insensitive, aliases resolved).

        Args:
            name: a canonical name or alias, any case.

        Returns:
            The canonical name.

        Raises:
            ConfigError: if the name is unknown; the message suggests close matches.
        """
        key = str(name).lower()
        if key in self._lookup:
            return self._lookup[key]
        close = difflib.get_close_matches(key, list(self._lookup), n=1, cutoff=0.6)
        hint = f"; did you mean '{self._lookup[close[0]]}'?" if close else ""
        raise ConfigError(
            f"unknown {self.kind} '{name}'{hint} known: {', '.join(self.names())}"
        )

    def get(self, name: str) -> Entry[T]:
        """The entry for ``name``.

        Args:
            name: a canonical name or alias, any case.

        Returns:
            The registered :class:`Entry`.

        Raises:
            ConfigError: when the name is unknown.
        """
        return self._entries[self.canonical(name)]

    def names(self) -> list[str]:
        """Canonical names, in registration order.

        Returns:
            The canonical names.
        """
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the registered object with the given arguments.

        Args:
            name: a canonical name or alias, any case.
            *args: positional arguments of the registered object.
            **kwargs: keyword arguments of the registered object.

        Returns:
            Whatever the registered object returns.
        """
        return self.get(name).obj(*args, **kwargs)  # type: ignore[operator]
