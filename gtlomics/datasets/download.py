"""Download cache: atomic, resume-safe, checksum-verified fetching of remote or mirrored files.

A file is fetched from ``http(s)://`` into the cache directory, or read in place from a
``file://`` URL or a plain path (directory mirrors). Downloads are written to a temporary file in
the cache folder and moved into place with :func:`os.replace` only after the whole body arrived and
its sha256 matched, so an interrupted or bad download never looks complete.

The cache directory is, in order: the ``cache_dir`` argument, ``$GTLOMICS_CACHE``,
``~/.cache/gtlomics``.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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
    "sha256_file",
    "to_local_path",
]

CACHE_ENV = "GTLOMICS_CACHE"
_RETRY_HTTP_CODES = frozenset({408, 429, 500, 502, 503, 504})


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
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "gtlomics"


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
    text = str(base).rstrip("/")
    return "/".join([text, *(p.strip("/") for p in parts)])


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
        Expected hex digest (a ``sha256:`` prefix is accepted). A remote file that does not match
        is deleted and :class:`ChecksumMismatchError` is raised.
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
    if target.is_file():
        cached = _check_cached(target, url, expected)
        if cached is not None:
            return cached
    digest = _download_with_retries(url, target, config, progress)
    _verify(digest, expected, target, url)
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
    digest = sha256_file(path)
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


def _check_cached(target: Path, url: str, expected: str | None) -> FetchedFile | None:
    digest = sha256_file(target)
    if expected is None or digest == expected:
        return FetchedFile(target, url, digest, expected is not None, in_cache=True)
    target.unlink()  # a stale or damaged cache entry: fetch it again
    return None


def _verify(digest: str, expected: str | None, target: Path, url: str) -> None:
    if expected is None or digest == expected:
        return
    target.unlink(missing_ok=True)
    raise ChecksumMismatchError(
        f"checksum mismatch for {target.name} downloaded from {url}: expected sha256 {expected}, "
        f"got {digest}; the download was deleted. Retry later, or check the checksum table."
    )


def _download_with_retries(url: str, target: Path, config: DownloadConfig, progress: bool) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    return _with_retries(url, config, lambda: _download_once(url, target, config, progress))


def _with_retries(url: str, config: DownloadConfig, attempt_fn):
    for attempt in range(config.retries + 1):
        try:
            return attempt_fn()
        except _TransientError as exc:
            if attempt == config.retries:
                raise DownloadError(
                    f"giving up on {url} after {attempt + 1} attempt(s): {exc}; check the network "
                    "or the mirror, or raise DownloadConfig(timeout_s=..., retries=...)"
                ) from exc
            time.sleep(config.backoff_s * 2**attempt)
    raise AssertionError("unreachable")


class _TransientError(Exception):
    """A failure worth retrying."""


def _open(url: str, config: DownloadConfig):
    request = urllib.request.Request(url, headers={"User-Agent": f"gtlomics/{__version__}"})
    try:
        return urllib.request.urlopen(request, timeout=config.timeout_s)  # follows redirects
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code in _RETRY_HTTP_CODES:
            raise _TransientError(f"HTTP {exc.code} {exc.reason}") from exc
        raise DownloadError(
            f"{url} answered HTTP {exc.code} {exc.reason}; check the accession or file name"
        ) from exc
    except (urllib.error.URLError, TimeoutError, OSError, http.client.HTTPException) as exc:
        raise _TransientError(f"{type(exc).__name__}: {exc}") from exc


def _stream(response, sink, config: DownloadConfig, url: str, bar) -> int:
    expected_len = response.headers.get("Content-Length")
    n_bytes = 0
    try:
        while block := response.read(config.chunk_bytes):
            sink(block)
            n_bytes += len(block)
            if bar is not None:
                bar.update(len(block))
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        raise _TransientError(f"connection broke after {n_bytes} bytes: {exc!r}") from exc
    if expected_len is not None and expected_len.isdigit() and n_bytes != int(expected_len):
        raise _TransientError(f"truncated body: got {n_bytes} of {expected_len} bytes")
    return n_bytes


def _read_all(url: str, config: DownloadConfig, max_bytes: int) -> bytes:
    chunks: list[bytes] = []

    def sink(block: bytes) -> None:
        chunks.append(block)
        if sum(map(len, chunks)) > max_bytes:
            raise DownloadError(f"{url} sent more than {max_bytes} bytes; is this an API answer?")

    with _open(url, config) as response:
        _stream(response, sink, config, url, None)
    return b"".join(chunks)


def _download_once(url: str, target: Path, config: DownloadConfig, progress: bool) -> str:
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, _open(url, config) as response:
            bar = _progress_bar(response, target.name) if progress else None
            try:
                _stream(response, lambda b: (out.write(b), digest.update(b)), config, url, bar)
            finally:
                if bar is not None:
                    bar.close()
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def _progress_bar(response, name: str):
    from tqdm.auto import tqdm

    total = response.headers.get("Content-Length")
    return tqdm(
        total=int(total) if total and total.isdigit() else None,
        unit="B",
        unit_scale=True,
        desc=name,
    )
