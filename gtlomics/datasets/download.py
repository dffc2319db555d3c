"""Download cache for OSDR and recount3 files: pooch fetches, gtlomics names and checks.

``http(s)://`` files are fetched into the cache with :func:`pooch.retrieve` (streamed to a
temporary file, moved into place once its sha256 matched); ``file://`` URLs and plain paths
(directory mirrors) are read in place. gtlomics adds the cache layout (see
:func:`resolve_cache_dir`), retries of transient failures, errors that name the URL, checksums of
decompressed mirror files, and eviction of files that do not parse.
"""

from __future__ import annotations

import logging
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pooch
import requests

from gtlomics._version import __version__
from gtlomics.datasets.errors import ChecksumMismatchError, DataFormatError, DownloadError

__all__ = [
    "DownloadConfig",
    "FetchedFile",
    "fetch",
    "is_remote",
    "join_url",
    "read_url_bytes",
    "resolve_cache_dir",
    "to_local_path",
]

CACHE_ENV = "GTLOMICS_CACHE"
_RETRY_HTTP_CODES = frozenset({408, 429, 500, 502, 503, 504})
_HEADERS = {"User-Agent": f"gtlomics/{__version__}"}


@dataclass(frozen=True)
class DownloadConfig:
    """How to fetch remote files.

    Parameters
    ----------
    timeout_s : float
        Seconds to wait for the connection and for each read before giving up.
    retries : int
        Extra attempts after a transient failure (timeout, dropped connection, HTTP 5xx/429).
        Client errors such as 404 are never retried.
    backoff_s : float
        Sleep before retry ``k`` is ``backoff_s * 2**k``.
    chunk_bytes : int
        Read size while streaming a body to disk.
    """

    timeout_s: float = 30.0
    retries: int = 2
    backoff_s: float = 0.5
    chunk_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.retries < 0 or self.backoff_s < 0 or self.chunk_bytes < 1:
            raise ValueError(
                f"invalid DownloadConfig {self}: timeout_s and chunk_bytes must be positive, "
                "retries and backoff_s non-negative"
            )


@dataclass(frozen=True)
class FetchedFile:
    """A file available on local disk.

    Attributes
    ----------
    path : Path
        Where the bytes are (in the cache, or the mirror file itself).
    url : str
        Where they came from.
    sha256 : str
        Hex digest of the bytes at ``path``.
    verified : bool
        True when an expected checksum was given and matched.
    in_cache : bool
        True when ``path`` is a download in the cache (False for mirror files read in place).
    """

    path: Path
    url: str
    sha256: str
    verified: bool
    in_cache: bool = False

    @contextmanager
    def parsing(self) -> Iterator[Path]:
        """Yield ``path``; if parsing raises :class:`DataFormatError`, evict a cached download.

        A file that downloaded intact but cannot be parsed is not kept, so a later call fetches
        it afresh instead of failing on the cached copy.
        """
        try:
            yield self.path
        except DataFormatError:
            if self.in_cache:
                self.path.unlink(missing_ok=True)
            raise


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the cache directory: the argument, ``$GTLOMICS_CACHE``, or ``~/.cache/gtlomics``."""
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "gtlomics"
    return Path(cache_dir).expanduser()


def is_remote(url: str | os.PathLike) -> bool:
    """True for ``http://`` and ``https://`` URLs."""
    return urllib.parse.urlsplit(str(url)).scheme in ("http", "https")


def to_local_path(url: str | os.PathLike) -> Path:
    """Turn a ``file://`` URL or a plain path into a :class:`~pathlib.Path`."""
    text = str(url)
    parts = urllib.parse.urlsplit(text)
    if parts.scheme == "file":
        return Path(urllib.request.url2pathname(parts.path))
    if parts.scheme and len(parts.scheme) > 1:
        raise DownloadError(
            f"unsupported URL scheme {parts.scheme!r} in {text!r}; use http(s)://, "
            "file:// or a local directory"
        )
    return Path(text)


def join_url(base: str | os.PathLike, *parts: str) -> str:
    """Join path parts onto a base URL or directory with single slashes."""
    return "/".join([str(base).rstrip("/"), *(p.strip("/") for p in parts)])


def fetch(
    url: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    relpath: str | None = None,
    sha256: str | None = None,
    config: DownloadConfig | None = None,
    progress: bool = False,
    content_sha256: Callable[[Path], str] | None = None,
) -> FetchedFile:
    """Make ``url`` available on local disk, downloading into the cache when remote.

    Parameters
    ----------
    url : str
        ``http(s)://`` URL, ``file://`` URL or local path.
    cache_dir : path-like, optional
        Cache root (see :func:`resolve_cache_dir`).
    relpath : str, optional
        Location inside the cache; defaults to the URL's host and path.
    sha256 : str, optional
        Expected hex digest (a ``sha256:`` prefix is accepted). A cached copy that does not match
        is downloaded again; a download that does not match is deleted and
        :class:`ChecksumMismatchError` is raised.
    config : DownloadConfig, optional
        Timeouts and retries.
    progress : bool
        Show a tqdm bar while downloading.
    content_sha256 : callable, optional
        For local mirror files: alternative digest (e.g. of the decompressed content) accepted
        when the raw bytes do not match ``sha256``.

    Returns
    -------
    FetchedFile
    """
    expected = _normalise_digest(sha256)
    if not is_remote(url):
        return _use_local(url, expected, content_sha256)
    config = config or DownloadConfig()
    target = _cache_target(resolve_cache_dir(cache_dir), relpath or _default_relpath(url))
    http = pooch.HTTPDownloader(
        progressbar=progress,
        chunk_size=config.chunk_bytes,
        timeout=config.timeout_s,
        headers=_HEADERS,
    )
    fetched_digests: list[str] = []  # pooch's mismatch error does not carry the digest

    def download(url: str, output_file: str, pooch_instance) -> None:
        http(url, output_file, pooch_instance)
        fetched_digests.append(_sha256(output_file))

    try:
        _with_retries(url, config, lambda: _retrieve(url, target, expected, download))
    except ValueError as error:  # pooch: the download's sha256 is not the expected one
        if not fetched_digests or fetched_digests[-1] == expected:
            raise
        target.unlink(missing_ok=True)  # a damaged copy cached before
        raise ChecksumMismatchError(
            f"checksum mismatch for {target.name} downloaded from {url}: expected sha256 "
            f"{expected}, got {fetched_digests[-1]}; the download was deleted. Retry later, or "
            "check the checksum table."
        ) from error
    digest = expected or _sha256(target)
    return FetchedFile(target, url, digest, expected is not None, in_cache=True)


def read_url_bytes(
    url: str, *, config: DownloadConfig | None = None, max_bytes: int = 1 << 26
) -> bytes:
    """Read a small remote or local resource (an API answer) fully into memory, uncached."""
    if not is_remote(url):
        path = to_local_path(url)
        if not path.is_file():
            raise DownloadError(f"{url} does not exist; check the mirror path")
        return path.read_bytes()
    config = config or DownloadConfig()
    return _with_retries(url, config, lambda: _read_all(url, config, max_bytes))


def _normalise_digest(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    digest = sha256.strip().lower().removeprefix("sha256:")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"expected a 64-hex-digit sha256, got {sha256!r}")
    return digest


def _cache_target(root: Path, relpath: str) -> Path:
    target = (root / relpath).resolve()
    if root.resolve() not in target.parents:
        raise DownloadError(f"refusing to write {relpath!r} outside the cache directory {root}")
    return target


def _default_relpath(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query).get("file", [""])[0]
    path = parts.path.strip("/") + (f"/{query}" if query else "")
    return f"{parts.hostname or 'local'}/{path}"


def _use_local(url: str, expected: str | None, content_sha256) -> FetchedFile:
    path = to_local_path(url)
    if not path.is_file():
        raise DownloadError(f"{url} does not exist; check the mirror directory and file name")
    digest = _sha256(path)
    if expected is None or digest == expected:
        return FetchedFile(path, str(url), digest, expected is not None)
    alternative = content_sha256(path) if content_sha256 is not None else None
    if alternative == expected:
        return FetchedFile(path, str(url), digest, True)
    raise ChecksumMismatchError(
        f"checksum mismatch for mirror file {path}: expected sha256 {expected}, got {digest}"
        + (f" (decompressed content {alternative})" if alternative else "")
        + "; the mirror copy is damaged or not the catalogued version"
    )


def _retrieve(url: str, target: Path, expected: str | None, downloader) -> None:
    known_hash = None if expected is None else f"sha256:{expected}"
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)  # its hints (e.g. "use this known_hash") address pooch users
    try:
        pooch.retrieve(url, known_hash, target.name, target.parent, downloader=downloader)
    finally:
        logger.setLevel(level)


def _sha256(path: str | os.PathLike) -> str:
    return pooch.file_hash(str(path), alg="sha256")


def _with_retries(url: str, config: DownloadConfig, attempt_fn):
    """Run ``attempt_fn``, retrying timeouts, dropped connections and HTTP 408/429/5xx."""
    for attempt in range(config.retries + 1):
        try:
            return attempt_fn()
        except requests.HTTPError as exc:
            code, reason = exc.response.status_code, exc.response.reason
            if code not in _RETRY_HTTP_CODES:
                raise DownloadError(
                    f"{url} answered HTTP {code} {reason}; check the accession or file name"
                ) from exc
            failure, cause = f"HTTP {code} {reason}", exc
        except requests.exceptions.ChunkedEncodingError as exc:
            failure, cause = f"truncated body ({exc})", exc
        except requests.RequestException as exc:
            failure, cause = f"{type(exc).__name__}: {exc}", exc
        if attempt < config.retries:
            time.sleep(config.backoff_s * 2**attempt)
    raise DownloadError(
        f"giving up on {url} after {config.retries + 1} attempt(s): {failure}; check the network "
        "or the mirror, or raise DownloadConfig(timeout_s=..., retries=...)"
    ) from cause


def _read_all(url: str, config: DownloadConfig, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    with requests.get(url, headers=_HEADERS, timeout=config.timeout_s, stream=True) as response:
        response.raise_for_status()
        for block in response.iter_content(config.chunk_bytes):
            chunks.append(block)
            if sum(map(len, chunks)) > max_bytes:
                raise DownloadError(
                    f"{url} sent more than {max_bytes} bytes; is this an API answer?"
                )
    return b"".join(chunks)
