"""Domain errors.

Each message is one line naming the file/row/column, what was expected and, where
possible, the fix. The CLI turns every :class:`GeocspError` into one stderr line and exit
code 2, with no traceback.
"""

from __future__ import annotations


class GeocspError(Exception):
    """Base class of all user-facing geocsp errors."""


class CoordinateError(GeocspError, ValueError):
    """Invalid longitude/latitude input (NaN, out of range, swapped columns)."""


class DatasetError(GeocspError, ValueError):
    """A dataset on disk is malformed (missing column, wrong row count, bad label...)."""


class ConfigError(GeocspError, ValueError):
    """An invalid configuration value or an unknown component name."""


class CheckpointError(GeocspError, ValueError):
    """A checkpoint directory is missing, corrupt, or incompatible."""


class MissingFileError(GeocspError, FileNotFoundError):
    """A required input file does not exist."""


class MissingDependencyError(GeocspError, ImportError):
    """An optional dependency is needed; the message names the package to install."""


def gdal_reason(e: BaseException, limit: int = 160) -> str:
    """The first line of what GDAL said for a rasterio error, ``limit`` characters at most.

    rasterio raises "Read failed. See previous exception for details." (or "Write failed...")
    and chains GDAL's own message as the cause: that cause is the reason worth showing.
    """
    cause = e.__cause__ or e.__context__
    text = str(cause) if cause is not None and str(cause).strip() else str(e)
    return (text.strip().splitlines() or [""])[0][:limit]
