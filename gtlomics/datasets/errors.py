"""Errors raised by the data loaders.

Every loader error names the file or URL at fault and says what to do. The classes let callers
catch one failure kind (``except ChecksumMismatchError``) without parsing messages.
"""

from __future__ import annotations

__all__ = [
    "ChecksumMismatchError",
    "DataFormatError",
    "DownloadError",
    "LabelMismatchError",
    "NoCountsTableError",
]


class DownloadError(OSError):
    """A file could not be fetched (HTTP error, timeout, truncated body, bad URL)."""


class ChecksumMismatchError(DownloadError):
    """A downloaded file's sha256 differs from the expected one; the bad file was deleted."""


class DataFormatError(ValueError):
    """A data file or API answer is malformed (delimiter, header, non-numeric cell, bad JSON)."""


class NoCountsTableError(DataFormatError):
    """An OSDR study lists no unnormalised counts table."""


class LabelMismatchError(ValueError):
    """The study table's spaceflight factor disagrees with the arm token in a sample name."""
