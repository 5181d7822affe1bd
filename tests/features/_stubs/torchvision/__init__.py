"""Test-only torchvision stub: just enough for ``import timm`` / ``import open_clip``.

Never shipped. Put first on ``sys.path`` only when a real torchvision does not import
(see tests/features/conftest.py). Anything beyond model definitions raises.
"""

__version__ = "0.0+stub"
