"""Single source of the package version (also written into saved foundations)."""

__version__ = "0.1.0"
