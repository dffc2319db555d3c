"""Checked directories on disk: atomic writes, sha256 checksums and format versions.

A *checked directory* is any folder gtlomics saves (a :class:`~gtlomics.foundation.Foundation`, a
fitted :class:`~gtlomics.classifier.GTLClassifier`). It holds a ``checksums.json`` written last::

    {"format": "gtlomics.foundation", "format_version": 1, "library_version": "0.1.0",
     "algorithm": "sha256", "files": {"config.json": "<hex>", "encoder.safetensors": "<hex>", ...}}

Saving writes everything into a hidden temporary sibling folder and renames it into place, so an
interrupted save never leaves a half-written directory under the requested name. Loading checks the
format and version first, then the sha256 of every listed file (files added later are ignored).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gtlomics._version import __version__

__all__ = [
    "CHECKSUMS_FILE",
    "FoundationIntegrityError",
    "FoundationVersionError",
    "load_tensors",
    "read_checked_dir",
    "read_json",
    "save_tensors",
    "sha256_file",
    "write_checked_dir",
    "write_json",
]

CHECKSUMS_FILE = "checksums.json"
_CHUNK = 1 << 20


class FoundationIntegrityError(ValueError):
    """A saved directory is incomplete, or a file in it changed after it was saved."""


class FoundationVersionError(ValueError):
    """A saved directory was written in a format this version of gtlomics cannot read."""


def sha256_file(path: Path) -> str:
    """Return the hex sha256 digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_json(path: Path, payload: Mapping) -> None:
    """Write ``payload`` as indented, key-sorted JSON (stable bytes for the same content)."""
    Path(path).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_json(path: Path) -> dict:
    """Read a JSON object; a malformed file raises :class:`FoundationIntegrityError`."""
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FoundationIntegrityError(f"Could not read {path}: {error}.") from error
    if not isinstance(payload, dict):
        raise FoundationIntegrityError(f"{path} should hold a JSON object.")
    return payload


def save_tensors(path: Path, tensors: Mapping[str, torch.Tensor], metadata: dict | None = None):
    """Save a name → tensor mapping as safetensors (moved to CPU, contiguous, unshared)."""
    plain = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}
    save_file(plain, str(path), metadata=metadata)


def load_tensors(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a safetensors file onto ``device``; an unreadable file is an integrity error."""
    try:
        return load_file(str(path), device=str(device))
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        raise FoundationIntegrityError(
            f"Could not read {path}: {error}. The file is damaged; save or build it again."
        ) from error


def write_checked_dir(
    path: str | os.PathLike,
    write_contents: Callable[[Path], None],
    *,
    format_name: str,
    format_version: int,
    overwrite: bool = False,
) -> Path:
    """Write a checked directory atomically.

    Parameters
    ----------
    path
        Destination folder; must not exist unless ``overwrite``.
    write_contents
        Called with a fresh temporary folder; writes every file of the directory into it.
    format_name, format_version
        Recorded in ``checksums.json`` and checked by :func:`read_checked_dir`.
    overwrite
        Replace an existing directory (it is only removed once the new one is complete).

    Returns
    -------
    Path
        The destination folder.
    """
    dest = Path(path).expanduser()
    if dest.exists() and not overwrite:
        raise FileExistsError(f"{dest} already exists; pass overwrite=True to replace it.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        write_contents(staging)
        _write_checksums(staging, format_name, format_version)
        _move_into_place(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


def _write_checksums(folder: Path, format_name: str, format_version: int) -> None:
    files = {name: sha256_file(folder / name) for name in _relative_files(folder)}
    write_json(
        folder / CHECKSUMS_FILE,
        {
            "format": format_name,
            "format_version": format_version,
            "library_version": __version__,
            "algorithm": "sha256",
            "files": files,
        },
    )


def _relative_files(folder: Path) -> list[str]:
    names = (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return sorted(name for name in names if name != CHECKSUMS_FILE)


def _move_into_place(staging: Path, dest: Path) -> None:
    if not dest.exists():
        os.replace(staging, dest)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
    retired.rmdir()
    os.replace(dest, retired)
    os.replace(staging, dest)
    shutil.rmtree(retired, ignore_errors=True)


def read_checked_dir(path: str | os.PathLike, *, format_name: str, supported_version: int) -> dict:
    """Verify a checked directory and return its ``checksums.json`` record.

    Raises
    ------
    FileNotFoundError
        ``path`` is not a directory.
    FoundationVersionError
        The directory holds another format, or a format version this gtlomics cannot read.
    FoundationIntegrityError
        ``checksums.json`` is missing or malformed, a listed file is missing, or a file's sha256
        differs from the recorded one (truncated or edited).
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"No saved gtlomics directory at {folder}.")
    record = _read_checksums(folder)
    _check_format(folder, record, format_name, supported_version)
    _check_files(folder, record["files"])
    return record


def _read_checksums(folder: Path) -> dict:
    checksum_path = folder / CHECKSUMS_FILE
    if not checksum_path.is_file():
        raise FoundationIntegrityError(
            f"{folder} has no {CHECKSUMS_FILE}: it is not a complete gtlomics save (an interrupted "
            "save or a folder made by hand). Save or build it again."
        )
    record = read_json(checksum_path)
    files = record.get("files")
    if not isinstance(files, dict) or "format_version" not in record:
        raise FoundationIntegrityError(f"{checksum_path} is malformed; save or build it again.")
    return record


def _check_format(folder: Path, record: dict, format_name: str, supported: int) -> None:
    found_name = record.get("format")
    version = record.get("format_version")
    written_by = record.get("library_version", "an unknown version")
    if found_name != format_name:
        raise FoundationVersionError(
            f"{folder} holds a {found_name!r} save, not a {format_name!r} one; "
            "load it with the matching class."
        )
    if isinstance(version, bool) or not isinstance(version, int):
        raise FoundationVersionError(
            f"{folder / CHECKSUMS_FILE} is malformed: format_version must be an integer, got "
            f"{version!r}. Save or build it again."
        )
    if version > supported:
        raise FoundationVersionError(
            f"{folder} was written by gtlomics {written_by} in {format_name} format version "
            f"{version}; this gtlomics {__version__} reads version {supported}. "
            "Upgrade gtlomics (pip install -U gtlomics) to load it."
        )
    if version < supported:
        raise FoundationVersionError(
            f"{folder} was written by gtlomics {written_by} in the older {format_name} format "
            f"version {version}; this gtlomics {__version__} reads version {supported}. "
            "Rebuild it (`gtlomics foundation build ...`) or install the gtlomics that wrote it."
        )


def _check_files(folder: Path, expected: dict) -> None:
    missing = sorted(name for name in expected if not (folder / name).is_file())
    if missing:
        raise FoundationIntegrityError(
            f"{folder} is incomplete: missing {', '.join(missing)}. Save or build it again."
        )
    for name, digest in expected.items():
        if sha256_file(folder / name) != digest:
            raise FoundationIntegrityError(
                f"Checksum mismatch for {folder / name}: the file was truncated or edited after "
                "it was saved. Restore it from a backup, or save or build it again."
            )
