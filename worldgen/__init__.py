"""worldgen: playable generated worlds from recorded gameplay."""

__version__ = "0.1.0"
